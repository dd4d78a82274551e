"""Can the out-of-fold model judge labels at all? A skill test before anything is flagged.

The mislabel check flags images whose held-out model disagrees with the label. That only
means something when the model knows more than the label counts: a model at chance
disagrees with most labels, and confident learning then "finds" thousands of wrong labels
that are only its own noise (the demo's 3-fold tiny recipe: 19.7% out-of-fold accuracy,
1,305 of 1,626 flagged).

The test (pure; arrays in, verdict out). The baseline ``b`` is the stronger of chance
(1 / classes present) and always answering the majority class (its share): the best
label-blind answer. "Clearly better" asks for a margin, not just a significant difference:
the model must remove at least ``min_skill`` (default 0.1) of the baseline's errors, i.e.
reach ``r = b + min_skill * (1 - b)`` (a Cohen's-kappa-like skill of 0.1 over the majority
answer). Both parts are required:

1. **Pooled**: the out-of-fold correct count, a one-sided exact binomial test of H0 "accuracy
   <= r": ``P(X >= correct | n, r) < min_skill_p`` (default 0.01). Each image is predicted by a
   model that never saw it, so the count is a sum of held-out trials (copies share a fold).
2. **Every fold**: each fold's accuracy is at least that fold's own ``r``: one lucky fold
   cannot carry the pooled count, and a fold whose model failed (diverged, collapsed to one
   class) stops the check.

A significant but tiny edge is not enough: on the bundled 1,626-image sample (balanced, so
b = 16.7%) the demo's tiny recipe reaches 19.9%, p = 0.0004 against b, yet confident
learning then estimates 80% of the labels wrong and flags 1,302 images. With min_skill 0.1
it needs 25.1% and is not judged; the 5-fold run on all of FER2013 (63.3% vs b = 25.0%,
needs 32.5%) is judged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curate.findings import NOT_JUDGED


@dataclass(frozen=True)
class SkillVerdict:
    """Outcome of :func:`skill_test`."""

    judged: bool
    accuracy: float
    baseline: float               # max(chance, majority share), pooled
    required: float               # baseline + min_skill * (1 - baseline): the H0 rate of the binomial test
    majority_class: int
    p_value: float                # P(X >= correct | n, required)
    fold_accuracy: dict[str, float] = field(default_factory=dict)
    fold_required: dict[str, float] = field(default_factory=dict)
    reason: str | None = None     # "not judged: ..." when judged is False

    @property
    def headline(self) -> str:
        """``not judged: out-of-fold accuracy X% vs majority-class Y% (p=... against the Z% needed)``."""
        return _headline(self.accuracy, self.baseline, self.required, self.p_value)

    def as_dict(self) -> dict[str, Any]:
        return {"judged": self.judged, "accuracy": round(self.accuracy, 4), "baseline": round(self.baseline, 4),
                "required": round(self.required, 4), "majority_class": self.majority_class,
                "p_value": float(f"{self.p_value:.3g}"), "fold_accuracy": self.fold_accuracy,
                "fold_required": self.fold_required, "reason": self.reason}


def _headline(accuracy: float, baseline: float, required: float, p: float) -> str:
    return (f"{NOT_JUDGED}out-of-fold accuracy {100 * accuracy:.1f}% vs majority-class {100 * baseline:.1f}% "
            f"(p={p:.2g} against the {100 * required:.1f}% needed)")


def binomial_p_greater(correct: int, n: int, rate: float) -> float:
    """One-sided binomial p-value P(X >= correct) for X ~ Binomial(n, rate)."""
    from scipy.stats import binom

    if n <= 0:
        return 1.0
    return float(min(1.0, max(0.0, binom.sf(int(correct) - 1, int(n), float(rate)))))


def _majority_share(labels: np.ndarray) -> tuple[float, int]:
    counts = np.bincount(labels)
    return float(counts.max() / counts.sum()), int(counts.argmax())


def required_rate(baseline: float, min_skill: float) -> float:
    """The accuracy that removes ``min_skill`` of the baseline's errors: ``b + min_skill * (1 - b)``."""
    return float(baseline + min_skill * (1.0 - baseline))


def skill_test(probs: np.ndarray, labels: np.ndarray, folds: np.ndarray, *, min_skill_p: float = 0.01,
               min_skill: float = 0.1, classes: list[str] | tuple[str, ...] | None = None) -> SkillVerdict:
    """Is the out-of-fold model clearly better than chance and than the majority class? (see module doc)"""
    labels = np.asarray(labels, dtype=np.int64)
    folds = np.asarray(folds, dtype=np.int64)
    pred = np.asarray(probs).argmax(axis=1)
    correct = pred == labels
    n = len(labels)
    majority, major_class = _majority_share(labels)
    chance = 1.0 / max(1, len(np.unique(labels)))
    baseline = max(chance, majority)
    required = required_rate(baseline, min_skill)
    accuracy = float(correct.mean()) if n else 0.0
    p = binomial_p_greater(int(correct.sum()), n, required)
    fold_acc: dict[str, float] = {}
    fold_req: dict[str, float] = {}
    weak = []
    for f in np.unique(folds):
        rows = folds == f
        acc_f = float(correct[rows].mean())
        base_f = max(1.0 / max(1, len(np.unique(labels[rows]))), _majority_share(labels[rows])[0])
        req_f = required_rate(base_f, min_skill)
        fold_acc[str(int(f))] = round(acc_f, 4)
        fold_req[str(int(f))] = round(req_f, 4)
        if acc_f < req_f:
            weak.append(int(f))
    judged = p < min_skill_p and not weak
    reason = None
    if not judged:
        name = classes[major_class] if classes is not None and major_class < len(classes) else str(major_class)
        per_fold = "/".join(f"{100 * v:.1f}" for v in fold_acc.values())
        needed = "/".join(f"{100 * v:.1f}" for v in fold_req.values())
        reason = (f"{_headline(accuracy, baseline, required, p)}; folds {per_fold}% vs {needed}% needed "
                  f"(min_skill {min_skill:g}, min_skill_p {min_skill_p:g}). The model is not clearly better than "
                  f"always answering '{name}', so its disagreements with the labels mean nothing: 0 flagged. "
                  "Use a stronger recipe, more epochs or more images.")
    return SkillVerdict(judged=bool(judged), accuracy=accuracy, baseline=baseline, required=required,
                        majority_class=major_class, p_value=p, fold_accuracy=fold_acc, fold_required=fold_req,
                        reason=reason)
