"""Per-image label-quality scores, flags and suggested labels (pure: arrays in, arrays out).

Signals, each optional except the probabilities:

* out-of-fold probabilities ``probs`` (N, C) (averaged over test-time augmentation);
* ``knn`` (N, C): label distribution of each image's nearest neighbours in the trained
  model's embedding space (same fold, other duplicate groups), see :func:`knn_label_distribution`;
* ``aum`` (N,): area under the margin (mean over training epochs of the given label's logit
  minus the largest other logit) from the folds' training runs; low or negative = suspect.

The combined score is the mean of the rank-normalised self-confidence score (1 - p(given)) and,
when present, the rank-normalised negative AUM (on the injected-flip benchmark over all of
FER2013 this ranked better than either signal alone and than the neighbour-smoothed margin;
see reports/mislabel.md). The flag count is the number
of issues confident learning estimates on the smoothed probabilities (its calibrated joint);
the images with the highest scores are flagged, never one whose most probable class is its label.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from curate.mislabel.confident import confident_learning, estimated_issue_count


def self_confidence(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """p(given label): cleanlab's default ranking (low = suspect)."""
    return np.asarray(probs)[np.arange(len(labels)), np.asarray(labels)]


def normalized_margin(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """p(given) - max p(other), in [-1, 1] (low = suspect)."""
    probs = np.asarray(probs, dtype=np.float64)
    rows = np.arange(len(labels))
    given = probs[rows, labels]
    other = probs.copy()
    other[rows, labels] = -np.inf
    return given - other.max(axis=1)


def best_other_class(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The most probable class other than the given one."""
    other = np.asarray(probs, dtype=np.float64).copy()
    other[np.arange(len(labels)), labels] = -np.inf
    return other.argmax(axis=1)


def rank01(values: np.ndarray) -> np.ndarray:
    """Ranks scaled to [0, 1] (ties share the mean rank); 0.5 everywhere for one value."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n <= 1:
        return np.full(n, 0.5)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.arange(n, dtype=np.float64)
    sorted_vals = values[order]
    _, start, counts = np.unique(sorted_vals, return_index=True, return_counts=True)
    for s, c in zip(start, counts):
        if c > 1:
            ranks[order[s:s + c]] = s + (c - 1) / 2.0
    return ranks / (n - 1)


def knn_label_distribution(embeddings: np.ndarray, labels: np.ndarray, n_classes: int, *,
                           k: int, blocks: np.ndarray | None = None,
                           groups: np.ndarray | None = None) -> np.ndarray:
    """(N, C) similarity-weighted label histogram of each image's ``k`` nearest neighbours.

    Neighbours are searched only inside the image's block (e.g. its fold, whose images share
    one model's embedding space) and never in its own duplicate group (a copy would just
    echo the label). Embeddings are cosine-compared (L2-normalised here). Rows with no
    neighbour are uniform.
    """
    import faiss

    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    blocks = np.zeros(n, dtype=np.int64) if blocks is None else np.asarray(blocks)
    groups = np.arange(n) if groups is None else np.asarray(groups)
    out = np.full((n, n_classes), 1.0 / n_classes)
    for b in np.unique(blocks):
        rows = np.flatnonzero(blocks == b)
        if len(rows) < 2:
            continue
        index = faiss.IndexFlatIP(emb.shape[1])
        index.add(emb[rows])
        extra = min(len(rows), k + 1 + 8)  # room for self and duplicates, dropped below
        sims, nbrs = index.search(emb[rows], extra)
        for i_local, row in enumerate(rows):
            cand = nbrs[i_local]
            ok = cand >= 0
            cand, sim = rows[cand[ok]], sims[i_local][ok]
            keep = groups[cand] != groups[row]
            cand, sim = cand[keep][:k], sim[keep][:k]
            if len(cand) == 0:
                continue
            weight = np.maximum(sim, 0.0) + 1e-6
            hist = np.bincount(labels[cand], weights=weight, minlength=n_classes)
            out[row] = hist / hist.sum()
    return out


@dataclass(frozen=True)
class MislabelScores:
    """Per-image outcome of the mislabel check."""

    score: np.ndarray            # (N,) in [0, 1], higher = more likely mislabelled
    flagged: np.ndarray          # (N,) bool
    suggested: np.ndarray        # (N,) class index or -1 (no suggestion)
    probs: np.ndarray            # (N, C) the probabilities the decision used
    estimated_issues: int        # confident-learning estimate of the number of wrong labels
    variant: str


def class_balanced(probs: np.ndarray, power: float) -> np.ndarray:
    """Probabilities divided by each class's mean predicted probability to the ``power``, renormalised.

    A model trained on imbalanced labels gives a rare class (FER2013's disgust: 1.5% of the
    images) tiny probabilities everywhere, so every image of that class would rank as a likely
    error and draw the wrong suggestion; dividing by the class prior (logit adjustment) undoes
    that. ``power`` 0 = unchanged.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if power <= 0:
        return probs
    prior = np.maximum(probs.mean(axis=0), 1e-12)
    adjusted = probs / prior ** float(power)
    return adjusted / adjusted.sum(axis=1, keepdims=True)


def suggestion_texts(probs: np.ndarray, labels: np.ndarray, suggested: np.ndarray,
                     classes: list[str] | tuple[str, ...], ambiguity_ratio: float,
                     among: str = "all") -> list[str | None]:
    """The suggested label per image, or ``ambiguous: a|b`` when it is not clear-cut.

    ``among="all"``: ``a`` and ``b`` are the two most probable classes, the given label included,
    and the suggestion is the image's ``suggested`` class unless they are close. ``among="others"``:
    the given label is set aside (the finding already says it is likely wrong; the question is
    which class instead), the suggestion is the likeliest other class ``a``, and ambiguous when the
    next other class ``b`` is close. Close: p(b) >= ``ambiguity_ratio`` * p(a). Images without a
    suggestion (``-1``) get None; a ratio above 1 never calls a suggestion ambiguous.
    """
    probs = np.asarray(probs, dtype=np.float64).copy()
    rows = np.arange(len(probs))
    if among == "others":
        probs[rows, np.asarray(labels, np.int64)] = -1.0
    elif among != "all":
        raise ValueError(f"among must be all or others, not {among!r}")
    order = np.argsort(-probs, axis=1, kind="stable")[:, :2]
    close = probs[rows, order[:, 1]] >= ambiguity_ratio * probs[rows, order[:, 0]]
    out: list[str | None] = []
    for i, s in enumerate(np.asarray(suggested)):
        if s < 0:
            out.append(None)
        elif close[i]:
            out.append(f"ambiguous: {classes[order[i, 0]]}|{classes[order[i, 1]]}")
        else:
            out.append(classes[int(order[i, 0] if among == "others" else s)])
    return out


def is_ambiguous(suggestion: object) -> bool:
    """True for an ``ambiguous: a|b`` suggestion."""
    return isinstance(suggestion, str) and suggestion.startswith("ambiguous: ")


def combine_probs(probs: np.ndarray, knn: np.ndarray | None, knn_weight: float) -> np.ndarray:
    """(1 - w) * probs + w * knn (rows renormalised); probs unchanged without knn."""
    probs = np.asarray(probs, dtype=np.float64)
    if knn is None or knn_weight <= 0:
        return probs
    mixed = (1.0 - knn_weight) * probs + knn_weight * np.asarray(knn, dtype=np.float64)
    return mixed / mixed.sum(axis=1, keepdims=True)


def score_variant(variant: str, probs: np.ndarray, labels: np.ndarray, *, knn: np.ndarray | None = None,
                  aum: np.ndarray | None = None, knn_weight: float = 0.3,
                  aum_weight: float = 0.5) -> MislabelScores:
    """Score, flag and suggest with one named variant.

    Variants: ``cl`` (confident-learning prune by noise rate, ranked by self-confidence:
    cleanlab's defaults), ``self_confidence`` / ``margin`` (that ranking, top-n flagged with n
    = CL estimate), ``knn`` (margin on neighbour-smoothed probabilities), ``aum`` (negative
    AUM ranking), ``combined`` (self-confidence + AUM ranks).
    """
    labels = np.asarray(labels, dtype=np.int64)
    base = np.asarray(probs, dtype=np.float64)
    use = combine_probs(base, knn, knn_weight) if variant == "knn" else base
    n = len(labels)
    if variant == "cl":
        result = confident_learning(use, labels)
        score = 1.0 - self_confidence(use, labels)
        flagged = result.issues
        estimated = int(result.estimated_issues)
    else:
        estimated = estimated_issue_count(use, labels)
        if variant == "self_confidence":
            score = 1.0 - self_confidence(use, labels)
        elif variant in ("margin", "knn"):
            score = (1.0 - normalized_margin(use, labels)) / 2.0
        elif variant == "aum":
            if aum is None:
                raise ValueError("variant 'aum' needs training-dynamics margins")
            score = rank01(-np.asarray(aum, dtype=np.float64))
        elif variant == "combined":
            confidence_rank = rank01(-self_confidence(use, labels))
            if aum is None or aum_weight <= 0:
                score = confidence_rank
            else:
                aum = np.asarray(aum, dtype=np.float64)
                aum_rank = np.where(np.isfinite(aum), rank01(-np.nan_to_num(aum, nan=0.0)), confidence_rank)
                score = (1.0 - aum_weight) * confidence_rank + aum_weight * aum_rank
        else:
            raise ValueError(f"unknown scoring variant {variant!r}")
        flagged = top_n_mask(score, estimated, eligible=use.argmax(axis=1) != labels)
    suggested = np.where(use.argmax(axis=1) != labels, use.argmax(axis=1), -1)
    suggested = np.where(flagged, best_other_class(use, labels), suggested)
    return MislabelScores(score=np.clip(score, 0.0, 1.0), flagged=flagged, suggested=suggested, probs=use,
                          estimated_issues=estimated, variant=variant)


def top_n_mask(score: np.ndarray, n: int, eligible: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the ``n`` highest scores among ``eligible`` rows (stable on ties)."""
    score = np.asarray(score, dtype=np.float64)
    eligible = np.ones(len(score), bool) if eligible is None else np.asarray(eligible, bool)
    candidates = np.flatnonzero(eligible)
    order = candidates[np.argsort(-score[candidates], kind="stable")]
    mask = np.zeros(len(score), dtype=bool)
    mask[order[:max(0, int(n))]] = True
    return mask


def evidence_text(probs: np.ndarray, labels: np.ndarray, classes: list[str] | tuple[str, ...], *,
                  knn: np.ndarray | None = None, aum: np.ndarray | None = None) -> list[str]:
    """Readable evidence per image, e.g. ``p(sad)=0.04, p(neutral)=0.81; neighbours: neutral 70%``."""
    probs = np.asarray(probs, dtype=np.float64)
    other = best_other_class(probs, labels)
    texts = []
    for i, (y, o) in enumerate(zip(labels, other)):
        parts = [f"p({classes[y]})={probs[i, y]:.2f}, p({classes[o]})={probs[i, o]:.2f}"]
        if knn is not None:
            top = int(np.argmax(knn[i]))
            parts.append(f"neighbours: {classes[top]} {100 * knn[i, top]:.0f}%")
        if aum is not None and np.isfinite(aum[i]):
            parts.append(f"AUM={aum[i]:+.2f}")
        texts.append("; ".join(parts))
    return texts


def confident_disagreement(probs: np.ndarray, labels: np.ndarray, max_given_prob: float) -> np.ndarray:
    """Flags of a judge from elsewhere: the judge gives the given label at most ``max_given_prob`` and
    another class is its most probable one. A fixed probability, unlike confident learning's estimate of the
    error count, does not grow with the judge's domain gap: on a scrape the shipped model disagrees with
    many labels for reasons of style, and the estimate flagged 12-16% of photos where a review finds 2.6-7.6%
    wrong (reports/expression-model.md)."""
    p = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    given = p[np.arange(len(labels)), labels]
    return (given <= float(max_given_prob)) & (p.argmax(axis=1) != labels)
