"""Operating points that survive another mix, and a reviewer teaching the photo checks (issue 29)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from curate.audit.label_shift import em_prior, fit_platt, fit_recalibration, shift_posterior, sigmoid
from curate.audit.photo_fit import fit_check, pr, refit_with_review, robust_threshold
from curate.check_feedback import (append_feedback, feedback_rows, latest_feedback, read_feedback,
                                   verdicts_from_tags)
from curate.workspace import Workspace


def _scores(n: int, prior: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A calibrated classifier's posteriors (at prior 0.5) on a set with ``prior`` positives."""
    y = rng.random(n) < prior
    z = np.where(y, 1.5, -1.5) + rng.normal(0, 1.2, n)
    return sigmoid(2 * 1.5 * z / 1.2 ** 2), y     # the exact posterior of two Gaussians at equal priors


def test_em_recovers_a_new_prior_and_keeps_precision():
    rng = np.random.default_rng(0)
    for prior in (0.05, 0.3, 0.7):
        p, y = _scores(20000, prior, rng)
        est, q = em_prior(p, 0.5)
        assert est.converged and abs(est.prior - prior) < 0.03, (prior, est)
        # flagged at the adjusted posterior 0.5 precision stays high whatever the mix; at the fitted
        # prior's 0.5 it falls with the share of positives
        assert pr(y, q >= 0.5)["precision"] > 0.7
        if prior == 0.05:
            assert pr(y, p >= 0.5)["precision"] < 0.5


def test_shift_posterior_is_bayes_rule():
    p = np.array([0.1, 0.5, 0.9])
    same = shift_posterior(p, 0.3, 0.3)
    np.testing.assert_allclose(same, p)
    lower = shift_posterior(p, 0.5, 0.1)
    assert (lower < p).all() and lower[1] == pytest.approx(0.1)


def test_platt_fit_on_separable_scores_stays_finite():
    raw = np.r_[np.full(50, -30.0), np.full(50, 30.0)]
    y = np.r_[np.zeros(50), np.ones(50)]
    slope, offset = fit_platt(raw, y)
    assert np.isfinite(slope) and np.isfinite(offset) and slope > 0


def test_recalibration_needs_both_classes_for_a_slope_and_shrinks_with_strength():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.05, 0.95, 200)
    y = (rng.random(200) < p * 0.3).astype(int)        # the scorer says 3x too much
    weak = fit_recalibration(p, y, strength=1000.0)
    strong = fit_recalibration(p, y, strength=1.0)
    assert abs(weak.offset) < abs(strong.offset) and strong.offset < 0
    only_negatives = fit_recalibration(p[:30], np.zeros(30), strength=5.0)
    assert only_negatives.slope == pytest.approx(1.0) and only_negatives.offset < 0


def test_robust_threshold_serves_the_worst_scrape():
    rng = np.random.default_rng(2)
    a_p, a_y = _scores(2000, 0.6, rng)
    b_p, b_y = _scores(2000, 0.05, rng)
    score, y = np.r_[a_p, b_p], np.r_[a_y, b_y]
    scrape = np.r_[np.zeros(2000, int), np.ones(2000, int)]
    pooled = robust_threshold(y, score, np.zeros(4000, int), 0.5, 0.9)
    robust = robust_threshold(y, score, scrape, 0.5, 0.9)
    assert robust >= pooled
    assert pr(b_y, b_p >= robust)["precision"] >= pr(b_y, b_p >= pooled)["precision"]


def _frame(n: int, shift: float, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """Photos whose issue shows in ``main_score``; on the shifted scrape the style feature
    ``sat_mean`` is high for everything, which the source scrape taught as a sign of the issue."""
    y = rng.random(n) < 0.3
    frame = pd.DataFrame({"main_score": np.where(y, 0.2, 0.95) + rng.normal(0, 0.1, n),
                          "sat_mean": np.where(y, 0.8, 0.2) + rng.normal(0, 0.1, n) + shift})
    return frame, y.astype(int)


def test_refit_with_a_reviewers_verdicts_removes_false_alarms_on_a_new_style():
    rng = np.random.default_rng(3)
    src, y_src = _frame(600, 0.0, rng)
    tgt, y_tgt = _frame(600, 0.6, rng)
    feats = ("main_score", "sat_mean")
    groups = np.array([f"s/{k}" for k in range(len(src))])
    fitted = fit_check("no_face", src, y_src, groups, np.zeros(len(src), int), feats).scorer
    before = pr(y_tgt, fitted.predict(tgt) >= fitted.threshold)
    drawn = rng.choice(len(tgt), 60, replace=False)
    rest = np.setdiff1d(np.arange(len(tgt)), drawn)
    taught = refit_with_review("no_face", src, y_src, groups, tgt.iloc[drawn], y_tgt[drawn], feats, weight=5)
    after = pr(y_tgt[rest], taught.predict(tgt.iloc[rest]) >= taught.threshold)
    assert before["precision"] < 0.8 and after["precision"] >= before["precision"] + 0.05, (before, after)


def test_verdict_tags_and_decisions():
    v, problems = verdicts_from_tags(["is:cartoon", "NOT:no_face", "keep", "is:nose"])
    assert v == {"cartoon": True, "no_face": False} and len(problems) == 1 and "nose" in problems[0]
    v, problems = verdicts_from_tags(["is:watermark", "not:watermark"])
    assert v == {} and problems == ["both is:watermark and not:watermark"]
    rows, _ = feedback_rows(["a", "b"], [["relabel:happy"], ["is:cartoon"]], ["relabel", None])
    got = {(r.image_id, r.check): r.verdict for r in rows.itertuples()}
    assert got == {("a", "no_face"): False, ("a", "cartoon"): False, ("b", "cartoon"): True}


def test_feedback_is_append_only(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.root.mkdir(parents=True, exist_ok=True)
    first = pd.DataFrame({"image_id": ["a", "b"], "check": ["no_face", "cartoon"], "verdict": [True, False]})
    assert len(append_feedback(ws, first, reviewer="r1", source="app", timestamp="2026-01-01T00:00:00Z")) == 2
    again = append_feedback(ws, first, reviewer="r1", source="app", timestamp="2026-01-01T00:01:00Z")
    assert len(again) == 0
    changed = pd.DataFrame({"image_id": ["a"], "check": ["no_face"], "verdict": [False]})
    append_feedback(ws, changed, reviewer="r2", source="app", timestamp="2026-01-02T00:00:00Z")
    every, latest = read_feedback(ws), latest_feedback(read_feedback(ws))
    assert len(every) == 3 and dict(zip(zip(latest["image_id"], latest["check"]), latest["verdict"])) == {
        ("a", "no_face"): False, ("b", "cartoon"): False}


FIXTURES = Path(__file__).parent / "fixtures" / "photos"


@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> Path:
    from curate.audit.api import audit
    from curate.ingest.api import ingest

    root = tmp_path_factory.mktemp("teach") / "ws"
    ws = Workspace(root)
    ingest(ws, [FIXTURES], quiet=True)
    audit(ws, checks=["no_face", "cartoon", "watermark", "multiple_faces"], quiet=True)
    return root


def test_a_reviewers_verdicts_are_final_and_refit_the_check(audited, tmp_path):
    from curate.audit.api import audit
    from curate.findings import read_findings

    root = tmp_path / "ws"
    shutil.copytree(audited, root)
    ws = Workspace(root)
    before = read_findings(ws)
    nf = before[before["check"] == "no_face"].set_index("image_id")
    flagged, clear = nf.index[nf["flagged"]].tolist(), nf.index[~nf["flagged"]].tolist()
    assert flagged and clear
    # the reviewer disagrees with the check on one photo each way, and confirms the rest
    verdicts = [(i, "no_face", i not in flagged[:1]) for i in flagged] + [(i, "no_face", i in clear[:1]) for i in clear]
    append_feedback(ws, pd.DataFrame(verdicts, columns=["image_id", "check", "verdict"]), reviewer="t", source="csv")
    summary = audit(ws, checks=["no_face"], overrides=["no_face.review_min=5"], quiet=True)
    after = read_findings(ws)
    nf2 = after[after["check"] == "no_face"].set_index("image_id")
    assert not nf2.loc[flagged[0], "flagged"] and nf2.loc[clear[0], "flagged"]
    assert nf2.loc[flagged[0], "evidence"].startswith("reviewer: no")
    assert set(nf2["score"].loc[[flagged[0], clear[0]]]) == {0.0, 1.0}
    assert summary["photo_adjustments"]["no_face"]["refitted_on"] == len(verdicts)


def test_app_tags_and_csv_cells_become_verdicts(audited, tmp_path):
    from curate.review.api import import_review, pull_review

    root = tmp_path / "ws"
    shutil.copytree(audited, root)
    ws = Workspace(root)
    ids = ws.manifest()["image_id"].astype(str).tolist()
    annotations = pd.DataFrame({"image_id": ids[:3], "tags": [["is:cartoon"], ["keep"], ["not:watermark", "is:nope"]],
                                "review_label": [None, None, None]})
    summary = pull_review(ws, reviewer="ann", annotations=annotations)
    latest = latest_feedback(read_feedback(ws))
    got = {(r.image_id, r.check): r.verdict for r in latest.itertuples()}
    assert got == {(ids[0], "cartoon"): True, (ids[1], "no_face"): False, (ids[1], "cartoon"): False,
                   (ids[2], "watermark"): False}
    assert any("nope" in c["reason"] for c in summary["conflicts"])
    sheet = tmp_path / "review.csv"
    pd.DataFrame({"image_id": [ids[0], ids[4]], "decision": ["", "exclude"],
                  "check_verdicts": ["not:cartoon", "is:no_face; is:watermark"]}).to_csv(sheet, index=False)
    out = import_review(ws, sheet, reviewer="bob")
    assert out["check_verdicts"]["appended"] == 3
    latest = latest_feedback(read_feedback(ws)).set_index(["image_id", "check"])["verdict"]
    assert not latest[(ids[0], "cartoon")] and latest[(ids[4], "no_face")] and latest[(ids[4], "watermark")]
