"""Pure mislabel core: confident learning, scores, folds, neighbours, flip injection."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from curate.mislabel.bench import inject_flips, recovery_metrics
from curate.mislabel.confident import (confident_joint, confident_learning, estimated_issue_count,
                                       per_class_thresholds, round_preserving_row_totals)
from curate.mislabel.folds import assign_folds, duplicate_groups
from curate.mislabel.scoring import knn_label_distribution, normalized_margin, rank01, score_variant


def _toy():
    """3 classes x 10 images; images 0 and 1 are labelled 0 but look like class 1."""
    labels = np.repeat([0, 1, 2], 10)
    probs = np.full((30, 3), 0.1)
    probs[np.arange(30), labels] = 0.8
    probs[[0, 1]] = [0.1, 0.8, 0.1]
    return probs, labels


def test_confident_learning_on_known_flips_exact():
    probs, labels = _toy()
    np.testing.assert_allclose(per_class_thresholds(probs, labels), [0.66, 0.8, 0.8])
    np.testing.assert_array_equal(confident_joint(probs, labels, calibrate=False),
                                  [[8, 2, 0], [0, 10, 0], [0, 0, 10]])
    result = confident_learning(probs, labels)
    np.testing.assert_array_equal(result.joint, [[8, 2, 0], [0, 10, 0], [0, 0, 10]])
    assert np.flatnonzero(result.issues).tolist() == [0, 1]
    assert result.estimated_issues == 2
    assert result.confident_class[:3].tolist() == [1, 1, 0]


def test_no_issue_when_prediction_matches_label():
    probs, labels = _toy()
    probs[[0, 1]] = [0.45, 0.44, 0.11]  # still most probable as labelled
    assert not confident_learning(probs, labels).issues[[0, 1]].any()


def test_rounding_keeps_row_totals():
    m = np.array([[1.4, 1.4, 1.2], [0.5, 0.5, 0.0], [2.6, 0.2, 0.2]])
    out = round_preserving_row_totals(m)
    assert out.sum(axis=1).tolist() == [4, 1, 3]
    assert out.dtype.kind == "i"


def test_matches_cleanlab_find_label_issues_exactly():
    cleanlab_filter = pytest.importorskip("cleanlab.filter")
    from cleanlab.count import compute_confident_joint, num_label_issues

    rng = np.random.default_rng(1)
    for _ in range(8):
        n, c = int(rng.integers(200, 2000)), int(rng.integers(3, 8))
        labels = rng.integers(0, c, n)
        logits = rng.normal(size=(n, c)) * 1.5
        logits[np.arange(n), labels] += 1.5
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = cleanlab_filter.find_label_issues(labels, probs, n_jobs=1)
            expected_joint = compute_confident_joint(labels, probs)
            expected_count = num_label_issues(labels, probs, estimation_method="off_diagonal_calibrated")
        result = confident_learning(probs, labels)
        np.testing.assert_array_equal(result.issues, expected)
        np.testing.assert_array_equal(result.joint, expected_joint)
        assert estimated_issue_count(probs, labels) == expected_count


def test_variants_rank_flips_first_and_suggest_true_class():
    probs, labels = _toy()
    for variant in ("cl", "self_confidence", "margin", "knn", "combined"):
        true = labels.copy()
        true[[0, 1]] = 1                          # neighbours look like the true class
        knn = np.eye(3)[true] if variant in ("knn", "combined") else None
        s = score_variant(variant, probs, labels, knn=knn)
        assert set(np.argsort(-s.score, kind="stable")[:2]) == {0, 1}, variant
        assert np.flatnonzero(s.flagged).tolist() == [0, 1], variant
        assert s.suggested[[0, 1]].tolist() == [1, 1]
        assert (s.suggested[2:] == -1).all()
        assert ((0 <= s.score) & (s.score <= 1)).all()


def test_aum_variant_uses_margins():
    probs, labels = _toy()
    aum = np.full(30, 2.0)
    aum[5] = -3.0  # a clean-looking image that training could not fit
    s = score_variant("aum", probs, labels, aum=aum)
    assert int(np.argmax(s.score)) == 5


def test_margin_and_rank_helpers():
    probs = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]])
    np.testing.assert_allclose(normalized_margin(probs, np.array([0, 0])), [0.5, -0.3])
    np.testing.assert_allclose(rank01(np.array([3.0, 1.0, 1.0, 2.0])), [1.0, 1 / 6, 1 / 6, 2 / 3])


def test_duplicate_groups_merge_transitively_across_keys():
    digest = np.array(["a", "a", "b", "c", None, "d"], dtype=object)
    cluster = np.array([None, 7, 7, None, 9, 9], dtype=object)
    groups = duplicate_groups(6, digest, cluster)
    assert groups[0] == groups[1] == groups[2]          # a-a by digest, 1-2 by cluster
    assert groups[4] == groups[5] and groups[3] not in (groups[0], groups[4])
    assert len(set(groups.tolist())) == 3


def test_folds_keep_groups_together_stratified_and_seeded():
    rng = np.random.default_rng(0)
    n = 3000
    labels = rng.choice(7, size=n, p=[0.14, 0.02, 0.14, 0.25, 0.17, 0.11, 0.17])
    groups = np.arange(n)
    groups[100:160] = groups[100:160] // 3 * 3       # 20 clusters of 3
    groups[500:510] = 500                            # one cluster of 10
    groups = duplicate_groups(n, groups)
    folds = assign_folds(labels, groups, k=5, seed=3)
    for g in np.unique(groups):
        assert len(set(folds[groups == g].tolist())) == 1
    sizes = np.bincount(folds, minlength=5)
    assert sizes.max() - sizes.min() <= 12
    for c in range(7):
        per_fold = np.bincount(folds[labels == c], minlength=5)
        assert per_fold.max() - per_fold.min() <= 12, (c, per_fold)
    np.testing.assert_array_equal(folds, assign_folds(labels, groups, k=5, seed=3))
    assert (folds != assign_folds(labels, groups, k=5, seed=4)).any()


def test_knn_distribution_skips_own_group_and_other_blocks():
    emb = np.array([[1, 0], [1, 0.01], [0, 1], [0.01, 1], [1, 0.02]], dtype=np.float32)
    labels = np.array([0, 0, 1, 1, 1])
    groups = np.array([0, 0, 1, 2, 3])           # rows 0 and 1 are copies
    blocks = np.array([0, 0, 0, 0, 1])           # row 4 is alone in its block
    q = knn_label_distribution(emb, labels, 2, k=1, blocks=blocks, groups=groups)
    assert q[0].argmax() == 1                    # its copy (row 1) is skipped
    np.testing.assert_allclose(q[2], [0, 1], atol=1e-5)
    np.testing.assert_allclose(q[4], [0.5, 0.5])


def test_inject_flips_counts_and_pairs():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 2000)
    new, kind = inject_flips(labels, 7, 0.1, np.random.default_rng(5))
    assert (kind > 0).sum() == 200 and ((new != labels) == (kind > 0)).all()
    assert (kind == 2).sum() == 100
    pairs = {(4, 6), (6, 4), (2, 5), (5, 2), (0, 6), (6, 0), (0, 1), (1, 0), (2, 4), (4, 2), (0, 4), (4, 0),
             (3, 6), (6, 3)}
    assert all((int(a), int(b)) in pairs for a, b in zip(labels[kind == 2], new[kind == 2]))


def test_recovery_metrics_exact():
    truth = np.array([1, 1, 0, 0, 1, 0], bool)
    score = np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.3])
    flagged = np.array([1, 1, 1, 0, 0, 0], bool)
    m = recovery_metrics(score, flagged, truth, target_recall=1.0)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    # ranking: T T F F(0.3) T(0.2) F -> all three found at rank 5
    assert m["precision_at_recall_1"] == pytest.approx(3 / 5)
    assert m["average_precision"] == pytest.approx((1 + 1 + 3 / 5) / 3)


def test_suggestions_set_the_given_label_aside():
    from curate.mislabel.scoring import suggestion_texts

    classes = ["angry", "sad", "neutral"]
    # given angry; the face reads sad (0.45) and nearly as much angry (0.40): among all classes
    # that is "ambiguous: sad|angry"; set the given label aside and sad is clearly the other class
    probs = np.array([[0.40, 0.45, 0.15], [0.10, 0.46, 0.44], [0.2, 0.3, 0.5]])
    labels = np.array([0, 0, 2])
    suggested = np.array([1, 1, -1])
    assert suggestion_texts(probs, labels, suggested, classes, 0.7, among="all") == [
        "ambiguous: sad|angry", "ambiguous: sad|neutral", None]
    assert suggestion_texts(probs, labels, suggested, classes, 0.7, among="others") == [
        "sad", "ambiguous: sad|neutral", None]
    assert suggestion_texts(probs, labels, suggested, classes, 1.01, among="others") == ["sad", "sad", None]
    with pytest.raises(ValueError):
        suggestion_texts(probs, labels, suggested, classes, 0.7, among="some")
