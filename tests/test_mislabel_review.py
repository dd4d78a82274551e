"""Class balance, ambiguous suggestions, reviewer rescoring, the review benchmark and the split policy."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from curate.mislabel.feedback import CORRECT, ERROR, UNKNOWN, outcomes_from_decisions, rescore
from curate.mislabel.review_bench import average_precision, ranking_figures, read_review, review_truth
from curate.mislabel.scoring import class_balanced, score_variant, suggestion_texts
from curate.split import policy
from curate.train.metrics import reviewed_accuracy

CL = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def imbalanced_probs(seed=0):
    """A model that learned a rare class (1) badly: tiny p(1) everywhere, also on its own images."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.full(50, 1), rng.choice([0, 2, 3, 4, 5, 6], 950)]
    logits = rng.normal(0, 1, (1000, 7))
    logits[np.arange(1000), y] += 2.5
    logits[:, 1] -= 4.0
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True), y


def test_class_balance_stops_a_rare_class_filling_the_top():
    probs, y = imbalanced_probs()
    raw_top = np.argsort(-score_variant("self_confidence", probs, y).score)[:50]
    balanced = class_balanced(probs, 1.0)
    bal_top = np.argsort(-score_variant("self_confidence", balanced, y).score)[:50]
    assert (y[raw_top] == 1).mean() > 0.8          # without balance: the rare class is the top
    assert (y[bal_top] == 1).mean() < 0.3
    np.testing.assert_allclose(balanced.sum(1), 1.0)
    np.testing.assert_array_equal(class_balanced(probs, 0.0), probs)


def test_suggestions_say_ambiguous_when_the_top_two_are_close():
    probs = np.array([[0.05, 0.0, 0.0, 0.0, 0.45, 0.0, 0.50],    # neutral 0.50 vs sad 0.45: close
                      [0.05, 0.0, 0.0, 0.85, 0.05, 0.0, 0.05]])  # happy, clear
    texts = suggestion_texts(probs, np.array([0, 0]), np.array([6, 3]), CL, 0.5)
    assert texts == ["ambiguous: neutral|sad", "happy"]
    assert suggestion_texts(probs, np.array([0, 0]), np.array([-1, 3]), CL, 1.01) == [None, "happy"]


def test_outcomes_from_decisions():
    out = outcomes_from_decisions(["relabel", "keep", "exclude", None, "relabel"],
                                  ["sad", None, None, None, "happy"], ["happy", "sad", "fear", "sad", "happy"])
    assert out.tolist() == [ERROR, CORRECT, UNKNOWN, UNKNOWN, CORRECT]


def test_rescore_moves_pairs_the_reviewer_rejected():
    n = 400
    y = np.zeros(n, np.int64)
    other = np.where(np.arange(n) % 2 == 0, 2, 5)       # pairs angry->fear and angry->surprise
    score = np.linspace(0.99, 0.5, n)
    outcome = np.full(n, UNKNOWN)
    outcome[:40] = np.where(other[:40] == 2, CORRECT, ERROR)   # reviewer: angry->fear flags were right labels
    result = rescore(score, y, other, outcome, 7, strength=5.0)
    assert result.decided == 40
    assert (result.score[:40][other[:40] == 5] == 1).all() and (result.score[:40][other[:40] == 2] == 0).all()
    rest = np.arange(40, n)
    fear, surprise = rest[other[rest] == 2], rest[other[rest] == 5]
    assert result.score[surprise].mean() > score[surprise].mean()
    assert result.score[fear].mean() < score[fear].mean()
    unchanged = rescore(score, y, other, np.full(n, UNKNOWN), 7, strength=5.0)
    np.testing.assert_array_equal(unchanged.score, score)
    no_shift = rescore(score, y, other, outcome, 7)          # default: decided images move, the rest do not
    np.testing.assert_array_equal(no_shift.score[40:], score[40:])


def test_rescore_carries_a_decision_to_the_duplicates():
    score = np.array([0.9, 0.3, 0.2, 0.8, 0.5])
    y = np.array([4, 4, 3, 4, 4])                 # images 0-2 are one face; 3 and 4 are others
    groups = np.array([7, 7, 7, 8, 9])
    outcome = np.array([ERROR, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN])
    reviewer_class = np.array([3, -1, -1, -1, -1])   # the reviewer: image 0 shows happy (3), not sad (4)
    result = rescore(score, y, np.zeros(5, np.int64), outcome, 7, groups=groups, reviewer_class=reviewer_class)
    assert result.group_class.tolist() == [3, 3, 3, -1, -1]
    order = np.argsort(-result.score).tolist()
    assert order[:2] == [0, 1]                    # its sad-labelled copy goes right under the confirmed error
    assert order[-1] == 2                         # its happy-labelled copy is right: bottom
    assert result.score[3] == 0.8 and result.score[4] == 0.5


def review_frame():
    return pd.DataFrame({"image_id": ["a", "b", "c", "d", "e", "f"],
                         "label": ["happy", "sad", "fear", "neutral", "angry", "sad"],
                         "parts": ["random", "random", "random+top", "test", "random", "top"],
                         "verdict": ["right", "wrong", "ambiguous", "ambiguous", "unusable", "wrong"],
                         "shows": ["", "neutral", "surprise|sad", "neutral|sad", "", "happy"]})


def test_review_truth_and_figures(tmp_path):
    review = review_frame()
    path = tmp_path / "review.csv"
    review.to_csv(path, index=False)
    assert len(read_review(path, CL)) == 6
    truth = review_truth(review)
    assert truth["error"].tolist() == [False, True, True, False, False, True]
    assert truth["outcome"].tolist() == [0, 1, 1, 0, -1, 1]
    assert average_precision(np.array([True, False, True]), np.array([0.9, 0.8, 0.1])) == pytest.approx((1 + 2 / 3) / 2)
    score = np.array([0.1, 0.9, 0.8, 0.2, 0.5, 0.95])
    suggestions = [None, "neutral", "ambiguous: surprise|fear", None, None, "happy"]
    figures = ranking_figures(score, score > 0.5, suggestions, np.arange(6), truth)
    assert figures["ap_random"] == pytest.approx(1.0)
    assert figures["suggestion_right"] == pytest.approx(1.0) and figures["confident_right"] == pytest.approx(1.0)
    bad = review.assign(verdict=["right", "maybe", "right", "right", "right", "right"])
    bad.to_csv(path, index=False)
    with pytest.raises(Exception, match="row 3: verdict 'maybe'"):
        read_review(path, CL)


def test_reviewed_accuracy_uses_the_reviewers_classes():
    pred = pd.DataFrame({"image_id": list("abcdef"), "pred": ["happy", "sad", "sad", "neutral", "angry", "sad"]})
    out = reviewed_accuracy(pred, review_frame())
    assert out["n"] == 5                      # the unusable image is left out
    assert out["accuracy"] == pytest.approx(3 / 5)   # a right, c (pair), d (pair)
    assert out["accuracy_given_labels"] == pytest.approx(4 / 5)   # a, b, d, f


def ledger_and_findings():
    manifest = pd.DataFrame({"image_id": [f"i{k}" for k in range(6)], "split": ["train"] * 5 + ["test"],
                             "label": ["sad", "sad", "fear", "happy", "angry", "sad"]})
    ledger = policy.new_ledger(manifest)
    ledger.loc[4, "protected"] = True
    findings = pd.DataFrame({"image_id": [f"i{k}" for k in range(6)], "check": "mislabel",
                             "score": 0.9, "flagged": [True, True, True, False, True, True],
                             "suggested_label": ["neutral", "neutral", "ambiguous: surprise|fear", None, "sad", "happy"],
                             "evidence": ""})
    confidence = pd.Series({"i0": 0.95, "i1": 0.6, "i4": 0.99, "i5": 0.99})
    return ledger, findings, confidence


def test_split_mislabel_policy_relabels_only_confident_suggestions():
    ledger, findings, confidence = ledger_and_findings()
    counts = policy.apply_mislabel(ledger, findings, confidence, confident="relabel", other="exclude",
                                   min_probability=0.8, clean_test=False)
    assert counts == {"relabelled": 1, "excluded_confident": 0, "excluded_other": 2, "kept": 0}
    assert ledger.loc[0, "label"] == "neutral" and ledger.loc[0, "status"] == "kept"
    assert ledger.loc[1, "status"] == "removed" and ledger.loc[2, "status"] == "removed"   # below the bar, ambiguous
    assert ledger.loc[3, "status"] == "kept"                               # not flagged
    assert ledger.loc[4, "label"] == "angry" and ledger.loc[4, "status"] == "kept"   # reviewer kept it
    assert ledger.loc[5, "label"] == "sad" and ledger.loc[5, "status"] == "kept"     # test split untouched
    ledger2, findings, confidence = ledger_and_findings()
    keep = policy.apply_mislabel(ledger2, findings, confidence, confident="keep", other="keep",
                                 min_probability=0.8, clean_test=False)
    assert keep["kept"] == 3 and (ledger2["status"] == "kept").all()
    with pytest.raises(ValueError, match="mislabel.other"):
        policy.apply_mislabel(ledger2, findings, confidence, confident="keep", other="relabel",
                              min_probability=0.8, clean_test=False)


def test_rescore_command_path_uses_the_reviewers_decisions(sample_ws):
    """OOF outputs written as `curate mislabel` writes them, then decisions, then --rescore."""
    from curate.findings import read_findings
    from curate.mislabel.api import labelled_rows, rescore_mislabel, save_oof
    from curate.mislabel.oof import save_fold
    from curate.review.decisions import append_decisions

    manifest = sample_ws.manifest()
    rows, classes, y = labelled_rows(manifest)
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 1, (len(y), len(classes)))
    logits[np.arange(len(y)), y] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    ids = manifest["image_id"].astype(str).to_numpy()[rows]
    folds = np.arange(len(y)) % 3
    save_oof(sample_ws, ids, folds, y, probs, classes, {"name": "fake"}, 3, float((probs.argmax(1) == y).mean()),
             judged=True)
    save_fold(sample_ws.path("mislabel") / "signals.npz", knn=probs.astype(np.float32),
              aum=rng.normal(0, 1, len(y)).astype(np.float32), folds=folds, groups=np.arange(len(y)))
    before = rescore_mislabel(sample_ws)
    assert before["decided"] == 0 and before["flagged"] == before["estimated_issues"] > 0
    first = read_findings(sample_ws).set_index("image_id")
    top = first[first["check"] == "mislabel"].sort_values("score", ascending=False).index[:6].tolist()
    given = dict(zip(ids, [classes[i] for i in y]))
    other = next(c for c in classes if c != given[top[0]])
    append_decisions(sample_ws, pd.DataFrame({"image_id": top[:3], "decision": ["relabel", "keep", "exclude"],
                                              "new_label": [other, None, None]}), reviewer="ana", source="csv")
    after = rescore_mislabel(sample_ws)
    assert after["decided"] == 2 and after["confirmed_errors"] == 1 and after["confirmed_labels"] == 1
    rows_after = read_findings(sample_ws).set_index("image_id")
    rows_after = rows_after[rows_after["check"] == "mislabel"]
    assert rows_after.at[top[0], "score"] == 1.0 and bool(rows_after.at[top[0], "flagged"])
    assert rows_after.at[top[0], "suggested_label"] == other
    assert rows_after.at[top[0], "evidence"].startswith(f"reviewer: relabel to {other}")
    assert rows_after.at[top[1], "score"] == 0.0 and not bool(rows_after.at[top[1], "flagged"])
    assert "reviewed error rate of this class pair" in rows_after.at[top[3], "evidence"]
    assert after["flagged"] == before["estimated_issues"]


def test_split_mislabel_top_share_acts_only_on_the_most_suspect():
    ledger, findings, confidence = ledger_and_findings()
    findings["score"] = [0.9, 0.95, 0.5, 0.99, 0.4, 0.3]   # ranking: i3 (not flagged), i1, i0, i2, i4, i5
    counts = policy.apply_mislabel(ledger, findings, confidence, confident="relabel", other="exclude",
                                   min_probability=0.8, clean_test=False, top_share=0.5)
    # the top half of the 6 scored images is i3, i1, i0: i1 is below the bar (excluded), i0 relabelled;
    # i2 (flagged, ambiguous) lies outside the top half and stays with its label
    assert counts == {"relabelled": 1, "excluded_confident": 0, "excluded_other": 1, "kept": 0}
    assert ledger.loc[0, "label"] == "neutral" and ledger.loc[1, "status"] == "removed"
    assert ledger.loc[2, "status"] == "kept" and ledger.loc[2, "label"] == "fear"
    with pytest.raises(ValueError, match="top_share"):
        policy.apply_mislabel(ledger, findings, confidence, confident="relabel", other="exclude",
                              min_probability=0.8, clean_test=False, top_share=0)


def test_soft_targets_mix_the_label_with_out_of_fold_probabilities():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    targets, has = policy.soft_targets(["a", "b", "c"], ["sad", "happy", "sad"], ["happy", "sad"], probs,
                                       ["b", "a"], ["happy", "sad", "fear"], 0.5)
    # a: its probabilities (happy 0.1, sad 0.1 -> 0.5 / 0.5 over the split's classes) mixed with sad
    np.testing.assert_allclose(targets[0], [0.25, 0.75])
    np.testing.assert_allclose(targets[1], [0.5 + 0.5 * 0.7 / 0.9, 0.5 * 0.2 / 0.9], rtol=1e-6)
    np.testing.assert_allclose(targets[2], [0.0, 1.0])          # no probabilities: the label alone
    assert has.tolist() == [True, True, False]
    with pytest.raises(ValueError, match="label_weight"):
        policy.soft_targets(["a"], ["sad"], ["happy", "sad"], probs, ["b", "a"], ["happy", "sad", "fear"], 1.5)
    with pytest.raises(ValueError, match="not among the classes"):
        policy.soft_targets(["a"], ["fear"], ["happy", "sad"], probs, ["b", "a"], ["happy", "sad", "fear"], 0.5)


def test_split_soft_labels_reach_the_trainer(sample_ws):
    """`curate split --set soft_labels.apply=true` writes targets.parquet from the OOF outputs and
    `curate train-eval` trains on them; a later split without soft labels removes the file."""
    from curate.mislabel.api import labelled_rows, save_oof
    from curate.split.api import build_split
    from curate.train.api import train_eval

    manifest = sample_ws.manifest()
    rows, classes, y = labelled_rows(manifest)
    probs = np.zeros((len(y), len(classes)))
    probs[np.arange(len(y)), (y + 1) % len(classes)] = 1.0     # all the mass on the next class
    ids = manifest["image_id"].astype(str).to_numpy()[rows]
    save_oof(sample_ws, ids, np.arange(len(y)) % 3, y, probs, classes, {"name": "fake"}, 3, 0.0, judged=True)
    summary = build_split(sample_ws, name="soft", overrides=["soft_labels.apply=true", "soft_labels.label_weight=0.6"],
                          quiet=True)
    targets = pd.read_parquet(sample_ws.path("splits/soft/targets.parquet"))
    split_rows = pd.read_parquet(sample_ws.path("splits/soft/manifest.parquet"))
    train = split_rows[split_rows["split"] == "train"]
    assert sorted(targets["image_id"]) == sorted(train["image_id"])
    assert summary["steps"]["soft_labels"]["with_oof_probabilities"] == len(train)
    t = targets.set_index("image_id").loc[train["image_id"]]
    label_mass = t.to_numpy()[np.arange(len(train)), [summary["classes"].index(c) for c in train["label"]]]
    np.testing.assert_allclose(label_mass, 0.6, atol=1e-6)       # 0.6 x one-hot + 0.4 x (0 on the label)
    np.testing.assert_allclose(t.sum(axis=1), 1.0, atol=1e-6)
    run = train_eval(sample_ws, "soft", recipe="demo_tiny", overrides=["epochs=1"], quiet=True)
    assert sample_ws.read_json(f"runs/{run['run']}/metrics.json")["soft_targets"] is True
    build_split(sample_ws, name="soft", quiet=True)
    assert not sample_ws.path("splits/soft/targets.parquet").exists()
