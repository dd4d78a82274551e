"""Confident learning (Northcutt et al., 2021) as pure functions: arrays in, arrays out.

Given out-of-fold probabilities ``probs`` (N, C) and given labels ``labels`` (N,):

* per-class thresholds ``t_j`` = mean ``p_j`` over the images labelled ``j``;
* the confident joint ``C[i, j]`` = number of images labelled ``i`` whose probability of
  ``j`` reaches ``t_j`` (the largest such ``j`` when several do), calibrated so its rows sum
  to the label counts;
* pruning by noise rate: for each off-diagonal cell ``(i, j)`` flag the ``C[i, j]`` images
  labelled ``i`` with the largest margin ``p_j - p_i``; images whose most probable class is
  their given label are never flagged.

This follows cleanlab's ``find_label_issues(filter_by="prune_by_noise_rate")`` step by step
(tests check the two agree), so our other scores can be compared with it on equal terms.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EPS = 1e-6


def _check(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if probs.ndim != 2 or labels.shape != (probs.shape[0],):
        raise ValueError(f"probs must be (N, C) and labels (N,), got {probs.shape} and {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError(f"labels must lie in [0, {probs.shape[1]})")
    return probs, labels


def per_class_thresholds(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``t_j`` = mean ``p_j`` over images labelled ``j`` (1.0 for a class nobody carries)."""
    probs, labels = _check(probs, labels)
    n_classes = probs.shape[1]
    sums = np.zeros(n_classes)
    np.add.at(sums, labels, probs[np.arange(len(labels)), labels])
    counts = np.bincount(labels, minlength=n_classes)
    return np.where(counts > 0, sums / np.maximum(counts, 1), 1.0)


def confident_class(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Per image, the class it confidently belongs to: the one class with ``p_j >= t_j``, the
    most probable class when several qualify (cleanlab's rule), or -1 when none does."""
    probs = np.asarray(probs, dtype=np.float64)
    above = probs >= np.asarray(thresholds)[None, :] - _EPS
    n_above = above.sum(axis=1)
    guess = np.where(n_above > 1, probs.argmax(axis=1), above.argmax(axis=1))
    return np.where(n_above > 0, guess, -1)


def round_preserving_row_totals(matrix: np.ndarray) -> np.ndarray:
    """Round every row to integers keeping its (rounded) total: round each cell, then move
    the cells with the largest rounding error by one until the row total matches."""
    matrix = np.asarray(matrix, dtype=np.float64)
    out = np.rint(matrix)
    for r in range(matrix.shape[0]):
        target = np.rint(matrix[r].sum())
        diff = int(target - out[r].sum())
        while diff != 0:
            step = 1 if diff > 0 else -1
            error = matrix[r] - out[r]
            order = np.argsort(error)[::-step][:min(abs(diff), matrix.shape[1])]
            out[r, order] += step
            diff = int(target - out[r].sum())
    return out.astype(np.int64)


def confident_joint(probs: np.ndarray, labels: np.ndarray, thresholds: np.ndarray | None = None,
                    calibrate: bool = True) -> np.ndarray:
    """(C, C) integer matrix: rows = given label, columns = confidently estimated true label.

    Every diagonal cell is at least 1. With ``calibrate`` rows are rescaled to the given-label
    counts and the whole to N (then rounded keeping row totals).
    """
    probs, labels = _check(probs, labels)
    n_classes = probs.shape[1]
    if thresholds is None:
        thresholds = per_class_thresholds(probs, labels)
    guess = confident_class(probs, thresholds)
    keep = guess >= 0
    joint = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(joint, (labels[keep], guess[keep]), 1)
    np.fill_diagonal(joint, np.maximum(joint.diagonal(), 1))
    if not calibrate:
        return joint
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    scaled = joint / np.maximum(joint.sum(axis=1, keepdims=True), 1e-12) * counts[:, None]
    scaled = scaled / max(scaled.sum(), 1e-12) * counts.sum()
    return round_preserving_row_totals(scaled)


def estimated_issue_count(probs: np.ndarray, labels: np.ndarray) -> int:
    """Number of label issues implied by the calibrated confident joint (its off-diagonal mass)."""
    joint = confident_joint(probs, labels).astype(np.float64)
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=joint.shape[0]).astype(np.float64)
    joint = joint / np.maximum(joint.sum(axis=1, keepdims=True), 1e-12) * counts[:, None]
    joint = joint / max(joint.sum(), 1e-12)
    return int(np.rint((1.0 - np.trace(joint)) * len(labels)))


def _keep_at_least(prune_counts: np.ndarray, n: int) -> np.ndarray:
    """cleanlab's rule: raise each diagonal term to >= n, taking the same amount evenly from
    the non-zero off-diagonal terms of its column (``prune_counts`` is the transposed joint)."""
    diag = prune_counts.diagonal().astype(np.float64)
    new_diag = np.maximum(diag, n)
    per_col = np.maximum(np.count_nonzero(prune_counts, axis=0) - 1.0, 1.0)
    out = prune_counts - (new_diag - diag) / per_col
    out[out < 0] = 0
    np.fill_diagonal(out, new_diag)
    return round_preserving_row_totals(out)


def prune_by_noise_rate(probs: np.ndarray, labels: np.ndarray, joint: np.ndarray | None = None,
                        min_examples_per_class: int = 1) -> np.ndarray:
    """Boolean mask of label issues: for each off-diagonal cell (given ``i``, true ``j``) of the
    calibrated confident joint, the images labelled ``i`` with the largest ``p_j - p_i``."""
    probs, labels = _check(probs, labels)
    n_classes = probs.shape[1]
    if joint is None:
        joint = confident_joint(probs, labels)
    prune = _keep_at_least(np.asarray(joint).T, min_examples_per_class)  # [true j, given i]
    mask = np.zeros(len(labels), dtype=bool)
    for given in range(n_classes):
        rows = np.flatnonzero(labels == given)
        if len(rows) <= min_examples_per_class:
            continue
        for true in range(n_classes):
            count = int(prune[true, given])
            if true == given or count <= 0:
                continue
            margin = probs[rows, true] - probs[rows, given]
            mask[rows[np.argsort(-margin, kind="stable")[:count]]] = True
    predicted_given = _argmax_with_tie_to_given(probs, labels) == labels
    return mask & ~predicted_given


def _argmax_with_tie_to_given(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    bumped = probs.copy()
    bumped[np.arange(len(labels)), labels] += 1e-6
    return bumped.argmax(axis=1)


@dataclass(frozen=True)
class ConfidentLearningResult:
    """Everything confident learning says about a labelled set."""

    thresholds: np.ndarray      # (C,) per-class thresholds t_j
    joint: np.ndarray           # (C, C) calibrated confident joint, rows = given label
    issues: np.ndarray          # (N,) bool, pruned by noise rate
    confident_class: np.ndarray  # (N,) class reaching its threshold (-1: none)
    estimated_issues: int       # off-diagonal mass of the calibrated joint, as a count


def confident_learning(probs: np.ndarray, labels: np.ndarray,
                       min_examples_per_class: int = 1) -> ConfidentLearningResult:
    """Run the whole confident-learning pipeline once."""
    probs, labels = _check(probs, labels)
    thresholds = per_class_thresholds(probs, labels)
    joint = confident_joint(probs, labels, thresholds)
    issues = prune_by_noise_rate(probs, labels, joint, min_examples_per_class)
    return ConfidentLearningResult(thresholds=thresholds, joint=joint, issues=issues,
                                   confident_class=confident_class(probs, thresholds),
                                   estimated_issues=estimated_issue_count(probs, labels))
