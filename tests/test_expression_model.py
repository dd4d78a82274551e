"""The expression model that ships with curate (issue 31): export from a train-eval run, load it back
checked against its sidecar, map its classes, refuse the images it was trained on, start a transfer
recipe from its trunk, judge a workspace's labels. The model here is a tiny one the test trains itself."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from curate.errors import CurateError
from curate.split.api import build_split
from curate.train.api import train_eval
from curate.train.expression import digest_keys, load_expression_model, seen_path, sidecar_path
from curate.train.expression_api import export_run
from curate.workspace import Workspace

from test_split_classes import make_photo_workspace

TINY = ["epochs=1", "num_threads=1", "batch_size=64", "tta=false", "augment=low", "model=vgg_fer",
        "model_args={width: 0.125, dropout: 0.0}", "input_size=40", "min_steps=0"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, sample_ws_path) -> tuple[Path, Path]:
    """A tiny expression model trained on the bundled FER2013 sample (raw split), exported."""
    root = tmp_path_factory.mktemp("expr") / "ws"
    shutil.copytree(sample_ws_path, root)
    ws = Workspace.open(root)
    build_split(ws, raw=True, quiet=True)
    train_eval(ws, "raw", recipe="cpu_fast", overrides=TINY, name="tiny", quiet=True)
    out = tmp_path_factory.mktemp("model") / "expr-test.pt"
    export_run(root, "tiny", out)
    return root, out


def test_export_writes_plain_tensors_a_sidecar_and_the_seen_digests(exported):
    root, out = exported
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["format"] == "curate-expression-model/1" and meta["model"] == "vgg_fer"
    assert meta["classes"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert meta["seed"] == 0 and meta["recipe"]["name"] == "cpu_fast" and meta["split"] == "raw"
    assert 0 < meta["test_accuracy"] <= 1 and meta["made_by"]
    state = torch.load(out, map_location="cpu", weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    ws = Workspace.open(root)
    assert meta["seen_images"] == len(set(ws.manifest()["digest"].dropna()))
    model = load_expression_model(out)
    assert model.seen(ws.manifest()["digest"].tolist()).all()
    assert not model.seen(["0" * 64, None]).any()


def test_a_changed_file_is_refused(exported, tmp_path):
    _, out = exported
    copy = tmp_path / out.name
    for p in (out, sidecar_path(out), seen_path(out)):
        shutil.copy(p, tmp_path / p.name)
    np.save(seen_path(copy), np.array([1, 2, 3], np.uint64))
    with pytest.raises(CurateError, match="sha256 differs"):
        load_expression_model(copy)
    with pytest.raises(CurateError, match="not found"):
        load_expression_model(tmp_path / "missing.pt")


def test_probabilities_map_to_a_workspace_class_subset(exported):
    _, out = exported
    model = load_expression_model(out)
    probs = model.predict_proba(np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8))
    assert probs.shape == (5, 7) and np.allclose(probs.sum(1), 1)
    sub = model.for_classes(probs, ["happy", "sad"])
    np.testing.assert_allclose(sub, probs[:, [3, 4]] / probs[:, [3, 4]].sum(1, keepdims=True))
    with pytest.raises(CurateError, match="contempt"):
        model.for_classes(probs, ["happy", "contempt"])
    assert list(digest_keys(["ff" * 32, None])) == [int("ff" * 8, 16), 0]


def test_a_recipe_starts_from_the_expression_models_trunk(exported, tmp_path):
    _, out = exported
    ws = make_photo_workspace(tmp_path / "ws")
    build_split(ws, classes=["happy", "sad", "neutral"], quiet=True)
    train_eval(ws, "cleaned", recipe="finetune_expression",
               overrides=["epochs=1", "num_threads=1", "tta=false", f"init={out}", "freeze_epochs=1", "min_steps=0"],
               name="ft", quiet=True)
    metrics = json.loads(ws.path("runs/ft/metrics.json").read_text())
    assert metrics["pretrained"]["checkpoint"] == str(out) and metrics["pretrained"]["head_left_out"]
    from curate.train.trainer import load_model

    tuned, source = load_model(ws.path("runs/ft")), load_expression_model(out).net
    assert tuned.classifier.out_features == 3
    # one epoch with everything but the head frozen: the trunk is exactly the shipped model's
    for key, value in source.state_dict().items():
        if key.startswith("trunk.") and value.is_floating_point():
            assert torch.allclose(tuned.state_dict()[key], value), key


def test_the_mislabel_check_uses_the_model_as_a_judge_but_never_on_its_training_images(exported, tmp_path):
    from curate.mislabel.api import run_mislabel

    root, out = exported
    with pytest.raises(CurateError, match="trained on"):
        run_mislabel(Workspace.open(root), overrides={"judge": "expression", "expression_model": str(out)}, quiet=True)
    ws = make_photo_workspace(tmp_path / "ws", n=60)
    summary = run_mislabel(ws, overrides={"judge": "expression", "expression_model": str(out), "folds": 3,
                                          "min_skill": 0.0, "min_skill_p": 1.0}, quiet=True)
    assert summary["judge"] == "expression" and summary["trained_folds"] == []
    assert summary["classes_judged"] == ["happy", "sad", "neutral", "fear"] or set(summary["classes_judged"]) == {
        "happy", "sad", "neutral", "fear"}
    probs = np.load(ws.path("oof_probs.npy"))
    classes = json.loads(ws.path("oof_meta.json").read_text())["classes"]
    absent = [i for i, c in enumerate(classes) if c not in summary["classes_judged"]]
    assert np.allclose(probs[:, absent], 0) and np.allclose(probs.sum(1), 1, atol=1e-5)
    findings = ws.read_parquet("findings.parquet")
    assert (findings["check"] == "mislabel").sum() == summary["images"]


def test_auto_judge_is_both_on_a_scrape_and_own_on_the_models_training_images(exported, tmp_path):
    """The default judge (auto): on images the expression model never saw, its geometric mean with the
    workspace's own folds, flagged only where that gives the label <= max_given_prob; on FER2013 the
    workspace's own folds, flagged by the confident-learning estimate as before."""
    from curate.mislabel.api import run_mislabel
    from curate.mislabel.judge import product_of_experts
    from curate.mislabel.scoring import confident_disagreement

    root, out = exported
    fast = {"expression_model": str(out), "folds": 3, "min_skill": -1.0, "min_skill_p": 1.0, "tta": False,
            "recipe_overrides": {"epochs": 1, "num_threads": 1, "model_args": {"width": 0.125, "dropout": 0.0},
                                 "min_steps": 0}}
    ws = make_photo_workspace(tmp_path / "ws", n=90)
    summary = run_mislabel(ws, overrides={**fast, "max_given_prob": 0.3}, quiet=True)
    assert summary["judge"] == "both" and summary["trained_folds"] == [0, 1, 2]
    probs = np.load(ws.path("oof_probs.npy"))
    index = ws.read_parquet("oof_index.parquet")
    classes = json.loads(ws.path("oof_meta.json").read_text())["classes"]
    y = np.array([classes.index(c) for c in index["given_label"]])
    expected = confident_disagreement(probs, y, 0.3)
    findings = ws.read_parquet("findings.parquet").set_index("image_id").loc[index["image_id"]]
    assert np.array_equal(findings["flagged"].to_numpy(), expected) and summary["flagged"] == int(expected.sum())
    fer = Workspace.open(root)
    summary = run_mislabel(fer, overrides=fast, quiet=True)
    assert summary["judge"] == "own" and "trained on" in summary["judge_auto_reason"]
    assert summary["flagged"] == summary["estimated_issues"]
    # the product of experts: a class both find probable wins; a class the shipped model gives 0 stays 0
    own = np.array([[0.6, 0.3, 0.1], [0.5, 0.5, 0.0]])
    shipped = np.array([[0.1, 0.9, 0.0], [0.9, 0.1, 0.0]])
    p = product_of_experts(own, shipped)
    assert np.allclose(p.sum(1), 1) and (p[:, 2] == 0).all() and p[0].argmax() == 1 and p[1].argmax() == 0
    assert np.allclose(product_of_experts(own, shipped, 0.0)[:, :2], own[:, :2] / own[:, :2].sum(1, keepdims=True))


def test_paired_difference_over_seeds_has_a_bootstrap_interval():
    from curate.train.metrics import paired_difference

    rng = np.random.default_rng(0)
    n = 400
    review = pd.DataFrame({"image_id": [f"i{k}" for k in range(n)], "label": "happy", "verdict": "right", "shows": ""})
    truth = np.array(["happy"] * n)

    def run(acc: float, s: int) -> pd.DataFrame:
        r = np.random.default_rng(s)
        pred = np.where(r.random(n) < acc, truth, "sad")
        return pd.DataFrame({"image_id": review["image_id"], "pred": pred})

    base = [run(0.70, s) for s in range(3)]
    better = [run(0.80, 10 + s) for s in range(3)]
    out = paired_difference(base, better, review)
    lo, hi = out["reviewed"]["ci95"]
    assert out["images"] == n and out["seeds"] == 3 and 0.05 < lo < out["reviewed"]["difference"] < hi < 0.16
    same = paired_difference(base, base, review)
    assert same["reviewed"]["difference"] == 0 and same["per_seed"][0]["mcnemar_p"] == 1.0
    with pytest.raises(ValueError):
        paired_difference(base, better[:2], review)


def test_the_bundled_model_loads_knows_the_sample_as_seen_and_reads_faces(sample_ws_path):
    """The shipped weights: checked against the sidecar, every bundled-sample image (FER2013) on its seen list,
    and far above chance on the sample's crops (it was trained on FER2013; a corrupt file would not be)."""
    model = load_expression_model(None)
    assert model.meta["format"] == "curate-expression-model/1" and model.meta["test_accuracy"] >= 0.6
    ws = Workspace.open(sample_ws_path)
    manifest = ws.manifest()
    assert model.seen(manifest["digest"].tolist()).all()
    rows = np.arange(0, len(manifest), 8)
    probs = model.predict_proba(np.asarray(ws.pixels()[rows]))
    labels = manifest["label"].iloc[rows].tolist()
    accuracy = np.mean([model.classes[i] == label for i, label in zip(probs.argmax(1), labels)])
    assert accuracy > 0.5  # 7 classes: chance 1/7, the commonest class about 1/4
