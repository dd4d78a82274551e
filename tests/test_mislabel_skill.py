"""A mislabel check whose out-of-fold model cannot beat the majority class flags nothing and says so."""
from __future__ import annotations

import json

import numpy as np
import pytest

from curate.findings import NOT_JUDGED, read_findings
from curate.mislabel import api as mislabel_api
from curate.mislabel import oof as oof_module
from curate.mislabel.skill import binomial_p_greater, skill_test


def _probs_for(pred: np.ndarray, c: int, confidence: float = 0.7) -> np.ndarray:
    probs = np.full((len(pred), c), (1.0 - confidence) / (c - 1))
    probs[np.arange(len(pred)), pred] = confidence
    return probs


# -- the test itself (pure) ---------------------------------------------------------------------

def test_binomial_p_value_exact_small_case():
    # P(X >= 3 | n=3, p=0.5) = 1/8 ; P(X >= 0) = 1
    assert binomial_p_greater(3, 3, 0.5) == pytest.approx(0.125)
    assert binomial_p_greater(0, 10, 0.3) == pytest.approx(1.0)


def test_random_labels_are_not_judged():
    rng = np.random.default_rng(0)
    n, c = 1626, 7
    labels = rng.choice(c, n, p=[0.14, 0.02, 0.14, 0.25, 0.17, 0.11, 0.17])
    folds = rng.integers(0, 3, n)
    pred = rng.choice(c, n)                                   # a model that learnt nothing
    v = skill_test(_probs_for(pred, c), labels, folds, classes=list("abcdefg"))
    assert not v.judged and v.p_value > 0.5
    assert v.baseline == pytest.approx(np.bincount(labels).max() / n)
    assert v.reason.startswith(f"{NOT_JUDGED}out-of-fold accuracy {100 * v.accuracy:.1f}% vs majority-class "
                               f"{100 * v.baseline:.1f}% (p=")
    assert "'d'" in v.reason                                  # names the majority class


def test_predicting_the_majority_class_is_not_skill():
    rng = np.random.default_rng(1)
    labels = rng.choice(3, 3000, p=[0.6, 0.3, 0.1])
    v = skill_test(_probs_for(np.zeros(3000, int), 3), labels, rng.integers(0, 5, 3000))
    assert not v.judged and abs(v.accuracy - v.baseline) < 1e-12


def test_real_signal_is_judged():
    rng = np.random.default_rng(2)
    n, c = 1626, 7
    labels = rng.choice(c, n, p=[0.14, 0.02, 0.14, 0.25, 0.17, 0.11, 0.17])
    pred = np.where(rng.random(n) < 0.4, labels, rng.choice(c, n))  # ~49% accuracy vs 25% majority
    v = skill_test(_probs_for(pred, c), labels, rng.integers(0, 3, n))
    assert v.judged and v.reason is None and v.p_value < 1e-10


def test_one_failed_fold_stops_the_check():
    rng = np.random.default_rng(3)
    n, c = 3000, 4
    labels = rng.integers(0, c, n)
    folds = np.repeat([0, 1, 2], n // 3)
    pred = np.where(rng.random(n) < 0.6, labels, rng.integers(0, c, n))
    pred[folds == 2] = rng.integers(0, c, (folds == 2).sum())    # fold 3's model collapsed to noise
    v = skill_test(_probs_for(pred, c), labels, folds)
    assert v.p_value < 1e-10 and not v.judged                    # the pooled count alone would pass
    assert v.fold_accuracy["2"] < v.fold_required["2"] and v.fold_accuracy["0"] > v.fold_required["0"]


def test_a_significant_but_tiny_edge_is_not_skill():
    """The demo's case: 7 balanced classes, ~20% vs a 16.7% majority share over 1,626 images."""
    rng = np.random.default_rng(4)
    n, c = 1626, 7
    labels = np.repeat(np.arange(c), n // c + 1)[:n]
    labels[:40] = 0                                               # class 0 the largest (~16.7%)
    pred = np.where(rng.random(n) < 0.07, labels, rng.integers(0, c, n))
    folds = rng.integers(0, 3, n)
    v = skill_test(_probs_for(pred, c), labels, folds)
    assert 0.18 < v.accuracy < 0.23 and v.baseline == pytest.approx(np.bincount(labels).max() / n)
    assert v.required == pytest.approx(v.baseline + 0.1 * (1 - v.baseline))
    assert binomial_p_greater(int((pred == labels).sum()), n, v.baseline) < 0.01   # beats the majority share ...
    assert not v.judged                                           # ... but not clearly: not judged
    assert skill_test(_probs_for(pred, c), labels, folds, min_skill=0.0).judged    # the margin decides


# -- the whole check on the bundled sample, with a stand-in model (fast) ------------------------

def _oracle_runner(truth: np.ndarray, n_classes: int, accuracy: float, seed: int = 0):
    """A fold runner whose "model" knows ``truth`` (the images' real classes) ``accuracy`` of the time."""
    def run(images, labels, folds, fold, **_):
        rng = np.random.default_rng(seed + fold)
        test_idx = np.flatnonzero(folds == fold)
        train_idx = np.flatnonzero(folds != fold)
        knows = rng.random(len(test_idx)) < accuracy
        pred = np.where(knows, truth[test_idx], rng.integers(0, n_classes, len(test_idx)))
        probs = _probs_for(pred, n_classes, 0.8).astype(np.float32)
        emb = np.eye(n_classes, dtype=np.float16)[pred] + rng.normal(0, 0.1, (len(pred), n_classes)).astype(np.float16)
        return {"test_idx": test_idx.astype(np.int64), "probs": probs, "embeddings": emb,
                "train_idx": train_idx.astype(np.int64), "train_aum": np.zeros(len(train_idx), np.float32),
                "seconds": np.float64(0.0)}
    return run


def _run_with(monkeypatch, ws, *, shuffle: bool, flip: float = 0.0, accuracy: float = 0.95):
    """run_mislabel where the given labels are the real ones (a share ``flip`` changed) or shuffled."""
    real = mislabel_api.labelled_rows

    state = {}

    def labelled_rows(manifest):
        rows, classes, y = real(manifest)
        rng = np.random.default_rng(7)
        given = y.copy()
        if shuffle:
            given = rng.permutation(y)
        if flip:
            idx = rng.choice(len(y), int(flip * len(y)), replace=False)
            given[idx] = (y[idx] + rng.integers(1, len(classes), len(idx))) % len(classes)
        state.update(truth=y, given=given, classes=classes)
        return rows, classes, given

    monkeypatch.setattr(mislabel_api, "labelled_rows", labelled_rows)
    real_run_oof = oof_module.run_oof

    def run_oof(images, labels, folds, **kw):
        kw["fold_runner"] = _oracle_runner(state["truth"], len(state["classes"]), accuracy)
        return real_run_oof(images, labels, folds, **kw)

    monkeypatch.setattr(oof_module, "run_oof", run_oof)
    summary = mislabel_api.run_mislabel(ws, overrides={"folds": 3, "tta": False}, seed=0, quiet=True)
    rows = read_findings(ws)
    return summary, rows[rows["check"] == "mislabel"].reset_index(drop=True), state


def test_random_labels_flag_nothing_and_say_why(monkeypatch, sample_ws):
    summary, rows, _ = _run_with(monkeypatch, sample_ws, shuffle=True)
    assert summary["judged"] is False and summary["flagged"] == 0
    assert summary["reason"].startswith("not judged: out-of-fold accuracy ")
    assert summary["skill"]["accuracy"] < summary["skill"]["baseline"]
    assert len(rows) == summary["images"] and not rows["flagged"].any()
    assert rows["suggested_label"].isna().all()
    assert rows["score"].between(0, 1).all() and rows["score"].nunique() > 1    # scores still written
    head = f"not judged: out-of-fold accuracy {100 * summary['skill']['accuracy']:.1f}% vs majority-class "
    assert rows["evidence"].str.startswith(head).all() and rows["evidence"].str.contains(r" \| p\(").all()
    meta = sample_ws.read_json("oof_meta.json")
    assert meta["judged"] is False and meta["reason"] == summary["reason"]
    # the report shows the message instead of a gallery, and warns on the noise section
    from curate.report.api import build_report

    build_report(sample_ws, top_n=4)
    html = sample_ws.path("report/index.html").read_text()
    assert "mislabel <span class=\"count\">not judged of" in html
    assert html.count("not judged: out-of-fold accuracy") >= 2
    runs = [r for r in json.loads(sample_ws.path("workspace.json").read_text())["runs"] if r["command"] == "mislabel"]
    assert runs[-1]["counts"] == {"images": summary["images"], "flagged": 0, "judged": False}


def test_real_signal_still_flags_the_flipped_labels(monkeypatch, sample_ws):
    summary, rows, state = _run_with(monkeypatch, sample_ws, shuffle=False, flip=0.05, accuracy=0.98)
    assert summary["judged"] is True and summary["reason"] is None
    assert summary["skill"]["accuracy"] > 0.8
    flipped = state["given"] != state["truth"]
    flagged = rows["flagged"].to_numpy()
    assert (flagged & flipped).sum() > 0.9 * flipped.sum()      # finds the flipped labels
    assert (flagged & flipped).sum() / flagged.sum() > 0.6      # and mostly those (the rest: the model's errors)
    assert rows.loc[rows["flagged"], "suggested_label"].notna().all()
    assert not rows["evidence"].str.startswith(NOT_JUDGED).any()


def test_cli_prints_the_reason(monkeypatch, sample_ws):
    from typer.testing import CliRunner

    from curate.cli import app

    reason = "not judged: out-of-fold accuracy 20.0% vs majority-class 25.0% (p=0.99); ..."

    def fake(ws, log=None, **kw):
        mislabel_api.logger.warning(f"warning: mislabel {reason}")  # as run_mislabel says it
        return {"mode": "oof", "variant": "combined", "images": 10, "folds": 3, "oof_accuracy": 0.2,
                "trained_folds": [0], "skipped_folds": [], "estimated_issues": 0, "flagged": 0, "judged": False,
                "reason": reason}

    monkeypatch.setattr(mislabel_api, "run_mislabel", fake)
    runner = CliRunner(mix_stderr=False) if "mix_stderr" in CliRunner.__init__.__code__.co_varnames else CliRunner()
    for args in (["--json", "--quiet"], ["--json"], []):
        res = runner.invoke(app, ["mislabel", "-w", str(sample_ws.root), *args])
        assert res.exit_code == 0, res.output
        assert res.stderr.count("warning: mislabel not judged: out-of-fold accuracy 20.0%") == 1, args
        if "--json" in args:
            assert json.loads(res.stdout)["reason"] == reason
        else:
            assert "flagged 0: not judged" in res.stdout
