"""Re-rank mislabel candidates with a reviewer's decisions, without retraining (pure functions).

After a reviewer has decided a batch (``curate review pull``), each decided image is an outcome:
a relabel confirms a wrong label, a ``keep`` confirms the given label, an ``exclude`` says
nothing about the label. The confirmed outcomes are pooled per *class pair* (given label ->
the model's best other class), the unit in which a mislabel model errs systematically (e.g.
it may flag many ``disgust`` faces as ``angry`` that a reviewer keeps). Each pair's error rate
is shrunk towards its given class's rate and that towards the batch's overall rate (a beta
prior of ``strength`` pseudo-reviews at each level), and every undecided image's score moves
by its pair's log-odds against the overall rate. Decided images get score 1 (confirmed error)
or 0 (confirmed label).

Duplicates carry the decision further: an undecided image in the same duplicate group as a
decided one (the same face, see ``duplicates.parquet``) has the class the reviewer gave that
face, so its label is wrong unless it is that class. Such images go to the top (just under
the confirmed errors) or the bottom of the ranking. On FER2013 the class-pair shift alone did
not raise the next batch's precision (reports/mislabel.md), so it is off by default
(``strength`` 0); the duplicate evidence is the part that carries.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ERROR, CORRECT, UNKNOWN = 1, 0, -1


@dataclass(frozen=True)
class Rescored:
    """Outcome of :func:`rescore`."""

    score: np.ndarray        # (N,) new score in [0, 1]; decided images 1 (error) or 0 (label confirmed)
    pair_rate: np.ndarray    # (N,) shrunk error rate of each image's class pair
    group_class: np.ndarray  # (N,) class the reviewer gave a duplicate of the image (-1: none decided)
    overall_rate: float      # error rate among the decided images
    decided: int             # images with a usable outcome (error or correct)


def outcomes_from_decisions(decisions: list[str | None], new_labels: list[str | None],
                            given: list[str]) -> np.ndarray:
    """Per image: ERROR (relabel to another class), CORRECT (keep, or relabel to its own label),
    UNKNOWN (exclude or no decision)."""
    out = np.full(len(given), UNKNOWN, np.int64)
    for i, (decision, new, old) in enumerate(zip(decisions, new_labels, given)):
        if decision == "keep" or (decision == "relabel" and new == old):
            out[i] = CORRECT
        elif decision == "relabel":
            out[i] = ERROR
    return out


def _shrunk(errors: np.ndarray, counts: np.ndarray, prior: np.ndarray | float, strength: float) -> np.ndarray:
    return (errors + strength * prior) / (counts + strength)


def _logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def rescore(score: np.ndarray, labels: np.ndarray, other: np.ndarray, outcome: np.ndarray, n_classes: int, *,
            strength: float = 0.0, groups: np.ndarray | None = None,
            reviewer_class: np.ndarray | None = None) -> Rescored:
    """Move each undecided image's score by its class pair's reviewed error rate.

    Parameters
    ----------
    score : (N,) float in [0, 1], higher = more likely mislabelled (the mislabel findings' score).
    labels : (N,) int, given label index.
    other : (N,) int, the model's most probable class other than the given one.
    outcome : (N,) int, ERROR / CORRECT / UNKNOWN per image (see :func:`outcomes_from_decisions`).
    n_classes : int, number of classes.
    strength : float >= 0, default 0.0. Pseudo-reviews of the beta prior at the class and pair
        levels (larger = slower to trust a few decisions); 0 = no class-pair shift, only the
        decided images and their duplicates move (what helped on FER2013, reports/mislabel.md).
    groups : (N,) duplicate-group id per image, or None (no propagation).
    reviewer_class : (N,) int, the class the reviewer gave each decided image (the new label of a
        relabel, the given label of a keep; -1 otherwise). Needed with ``groups``.
    """
    score = np.asarray(score, np.float64)
    labels, other, outcome = (np.asarray(a, np.int64) for a in (labels, other, outcome))
    known = outcome != UNKNOWN
    group_class = duplicate_class(groups, reviewer_class, outcome) if groups is not None else \
        np.full(len(score), -1, np.int64)
    if not known.any():
        return Rescored(score=score.copy(), pair_rate=np.full(len(score), np.nan), overall_rate=float("nan"),
                        decided=0, group_class=group_class)
    is_error = (outcome == ERROR).astype(np.float64)
    overall = (is_error[known].sum() + 1.0) / (known.sum() + 2.0)
    class_errors = np.bincount(labels[known], weights=is_error[known], minlength=n_classes)
    class_counts = np.bincount(labels[known], minlength=n_classes).astype(np.float64)
    prior_weight = strength if strength > 0 else 5.0   # pair rates are still reported in the evidence
    class_rate = _shrunk(class_errors, class_counts, overall, prior_weight)
    pair = labels * n_classes + other
    pair_errors = np.bincount(pair[known], weights=is_error[known], minlength=n_classes * n_classes)
    pair_counts = np.bincount(pair[known], minlength=n_classes * n_classes).astype(np.float64)
    pair_prior = np.repeat(class_rate, n_classes)
    pair_rate = _shrunk(pair_errors, pair_counts, pair_prior, prior_weight)[pair]
    if strength > 0:
        new = 1.0 / (1.0 + np.exp(-(_logit(score) + _logit(pair_rate) - _logit(overall))))
    else:
        new = score.copy()
    by_duplicate = (group_class >= 0) & ~known
    wrong_by_duplicate = by_duplicate & (group_class != labels)
    new = np.where(wrong_by_duplicate, 0.999 + 0.0009 * new, new)   # under the confirmed errors, order kept
    new = np.where(by_duplicate & ~wrong_by_duplicate, 0.0009 * new, new)
    new = np.where(outcome == ERROR, 1.0, np.where(outcome == CORRECT, 0.0, new))
    return Rescored(score=new, pair_rate=pair_rate, overall_rate=float(overall), decided=int(known.sum()),
                    group_class=group_class)


def duplicate_class(groups: np.ndarray, reviewer_class: np.ndarray | None, outcome: np.ndarray) -> np.ndarray:
    """Per image: the class a reviewer gave a decided member of its duplicate group, when all such
    decisions in the group agree; -1 otherwise (no decided member, or members decided differently)."""
    n = len(outcome)
    out = np.full(n, -1, np.int64)
    if reviewer_class is None:
        return out
    groups = np.asarray(groups)
    reviewer_class = np.asarray(reviewer_class, np.int64)
    decided = (np.asarray(outcome) != UNKNOWN) & (reviewer_class >= 0)
    verdict: dict[object, int] = {}
    for g, c in zip(groups[decided], reviewer_class[decided]):
        verdict[g] = c if verdict.get(g, c) == c else -2
    for i, g in enumerate(groups):
        out[i] = max(verdict.get(g, -1), -1)
    return out
