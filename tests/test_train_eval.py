"""train-eval on the sample workspace: outputs, metrics contract, resume, compare; metrics by hand."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.errors import CurateError
from curate.split.api import build_split
from curate.train.api import compare_runs, render_compare, train_eval
from curate.train.metrics import confusion_matrix, metrics_from_confusion

TINY = ["epochs=1", "num_threads=1", "model_args.width=0.25"]


def test_metrics_on_hand_computed_confusion():
    cm = np.array([[5, 1, 0],
                   [2, 4, 0],
                   [0, 0, 0]])  # class c: no support, never predicted
    m = metrics_from_confusion(cm, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(9 / 12)
    pa, ra = 5 / 7, 5 / 6
    pb, rb = 4 / 5, 4 / 6
    fa, fb = 2 * pa * ra / (pa + ra), 2 * pb * rb / (pb + rb)
    assert m["per_class"]["a"] == pytest.approx({"precision": pa, "recall": ra, "f1": fa, "support": 6})
    assert m["per_class"]["b"] == pytest.approx({"precision": pb, "recall": rb, "f1": fb, "support": 6})
    assert m["macro_f1"] == pytest.approx((fa + fb) / 2)  # c excluded: no support, no predictions
    with_pred = metrics_from_confusion(np.array([[5, 1, 0], [2, 3, 1], [0, 0, 0]]), ["a", "b", "c"])
    assert with_pred["per_class"]["c"]["precision"] == 0  # predicted once, wrongly: counts in macro-F1
    assert with_pred["macro_f1"] == pytest.approx(
        (with_pred["per_class"]["a"]["f1"] + with_pred["per_class"]["b"]["f1"]) / 3)
    cm2 = np.array([[2, 0], [1, 0]])  # class 1 never predicted: precision 0, counts in macro-F1
    m2 = metrics_from_confusion(cm2, ["x", "y"])
    assert m2["per_class"]["y"]["precision"] == 0 and m2["macro_f1"] == pytest.approx((0.8 + 0) / 2)
    y_true = np.array([0, 0, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 0])
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, 3), [[1, 1, 0], [0, 2, 0], [1, 0, 0]])


def test_train_eval_writes_contract_outputs_and_compare(sample_ws):
    ws = sample_ws
    build_split(ws, quiet=True)
    build_split(ws, raw=True, quiet=True)
    a = train_eval(ws, "cleaned", recipe="demo_tiny", overrides=TINY, name="c", quiet=True)
    b = train_eval(ws, "raw", recipe="demo_tiny", overrides=TINY, name="r", quiet=True)
    out = ws.path("runs/c")
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "per_class", "confusion", "classes", "split", "recipe", "seed",
                "images_per_s", "seconds"):
        assert key in metrics, key
    cm = np.array(metrics["confusion"])
    n_test = int((ws.manifest()["split"] == "test").sum())
    assert cm.shape == (7, 7) and cm.sum() == n_test == a["n_eval"]
    assert metrics["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert metrics["split"] == "cleaned" and metrics["recipe"]["name"] == "demo_tiny" and metrics["seed"] == 0
    for f in ("confusion.png", "curves.png", "predictions.parquet", "model.pt", "model.json",
              "checkpoints/last.pt", "checkpoints/last.json", "history.json"):
        assert (out / f).exists(), f
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    table = compare_runs(ws)
    assert [r["run"] for r in table["runs"]] == ["c", "r"]
    text = render_compare(table)
    assert "c " in text and "acc" in text and f"{b['accuracy']:.3f}" in text
    with pytest.raises(CurateError, match="exists"):
        train_eval(ws, "cleaned", recipe="demo_tiny", overrides=TINY, name="c", quiet=True)
    # resume of a finished run: nothing to train again, same model, same metrics
    again = train_eval(ws, "cleaned", recipe="demo_tiny", overrides=TINY, name="c", quiet=True, resume=True)
    assert again["accuracy"] == a["accuracy"]
    with pytest.raises(CurateError, match="different"):
        train_eval(ws, "cleaned", recipe="demo_tiny", overrides=TINY + ["lr=0.01"], name="c", quiet=True,
                   resume=True)


def test_cleaned_split_trains_as_many_steps_as_before_cleaning(sample_ws):
    """Default ``min_steps: raw``: a split whose cleaning removed half of train trains twice the epochs;
    the raw split keeps the recipe's; an explicit min_steps 0 turns it off."""
    import math

    from curate.findings import make_findings, write_findings

    ws = sample_ws
    m = ws.manifest()
    train_ids = m.loc[m["split"] == "train", "image_id"]
    gone = list(train_ids.iloc[::2])
    write_findings(ws, make_findings(gone, "blank", np.ones(len(gone)), np.ones(len(gone), bool), ["std 0"] * len(gone)))
    build_split(ws, name="half", quiet=True)
    build_split(ws, raw=True, quiet=True)
    half = train_eval(ws, "half", recipe="demo_tiny", overrides=TINY, name="h", quiet=True)
    raw = train_eval(ws, "raw", recipe="demo_tiny", overrides=TINY, name="r", quiet=True)
    off = train_eval(ws, "half", recipe="demo_tiny", overrides=TINY + ["min_steps=0"], name="h0", quiet=True)
    steps = math.ceil(len(train_ids) / 64)  # demo_tiny: batch 64, TINY: 1 epoch
    h = json.loads(ws.path("runs/h/metrics.json").read_text())
    assert h["min_steps_from"] == {"min_steps": "raw", "train_images": len(train_ids) - len(gone),
                                   "removed_by_cleaning": len(gone), "steps": steps}
    assert half["epochs_run"] == math.ceil(steps / math.ceil((len(train_ids) - len(gone)) / 64)) == 2
    assert raw["epochs_run"] == 1 and off["epochs_run"] == 1
    assert json.loads(ws.path("runs/h0/metrics.json").read_text())["min_steps_from"] is None


def test_train_eval_and_compare_cli(sample_ws):
    build_split(sample_ws, quiet=True)
    runner = CliRunner()
    root = str(sample_ws.root)
    res = runner.invoke(app, ["train-eval", "-w", root, "--split", "cleaned", "--recipe", "demo_tiny",
                              "--model", "five_layer_cnn", "--set", "epochs=1", "--set", "num_threads=1",
                              "--name", "cli", "--json", "-q"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["model"] == "five_layer_cnn" and summary["epochs_run"] == 1
    res = runner.invoke(app, ["compare", "-w", root, "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["runs"][0]["run"] == "cli"
    report = sample_ws.root.parent / "out" / "compare.md"
    res = runner.invoke(app, ["compare", "cli", "-w", root, "--report", str(report), "--json"])
    assert res.exit_code == 0, res.output
    text = report.read_text()
    acc = json.loads(res.stdout)["runs"][0]["accuracy"]
    assert f"{acc:.2%}" in text and "| cli | cleaned | demo_tiny | five_layer_cnn |" in text
    assert "curate train-eval -w" in text and "--name cli" in text  # the recorded command
    assert "`cleaned`: " in text and "test " in text
    assert (report.parent / "figures" / "compare" / "cli-confusion.png").stat().st_size > 1000
    # train-bench adds its own section; a rewrite of the comparison keeps it, a second bench replaces it
    res = runner.invoke(app, ["train-bench", "--recipe", "demo_tiny", "--batches", "2", "--set", "num_threads=1",
                              "--report", str(report), "--json", "-q"])
    assert res.exit_code == 0, res.output
    bench = json.loads(res.stdout)
    assert bench["cpu_train_images_per_s"] > 0 and bench["forward_mflops_per_image"] > 0
    assert "<!-- section:train-bench-demo_tiny -->" in report.read_text()
    assert "curate train-bench --recipe demo_tiny --batches 2" in report.read_text()
    res = runner.invoke(app, ["compare", "cli", "-w", root, "--report", str(report), "-q"])
    assert res.exit_code == 0, res.output
    runner.invoke(app, ["train-bench", "--recipe", "demo_tiny", "--batches", "2", "--set", "num_threads=1",
                        "--report", str(report), "-q"])
    text = report.read_text()
    assert text.count("<!-- section:train-bench-demo_tiny -->") == 1 and "| cli | cleaned |" in text
    res = runner.invoke(app, ["train-eval", "-w", root, "--split", "missing", "-q"])
    assert res.exit_code == 1 and "no split named" in res.output
    res = runner.invoke(app, ["train-eval", "-w", root, "--split", "cleaned", "--recipe", "nope", "-q"])
    assert res.exit_code == 2 and "unknown recipe" in res.output


def test_report_sections_are_replaced_in_place_and_found_again():
    from curate.report.sections import marked_sections, put_section

    text = put_section("# Report\n\nbody\n", "gpu", "## GPU\n\nfirst")
    text = put_section(text, "other", "## Other")
    text = put_section(text, "gpu", "## GPU\n\nsecond")
    assert text.startswith("# Report\n\nbody\n") and "first" not in text
    assert text.index("second") < text.index("## Other")
    assert [b.splitlines()[0] for b in marked_sections(text)] == ["<!-- section:gpu -->", "<!-- section:other -->"]
    with pytest.raises(ValueError, match="section key"):
        put_section(text, "bad key", "x")
