"""Classification metrics from a confusion matrix (pure numpy): accuracy, macro-F1, per class."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (C, C): rows = true class, columns = predicted class."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_true)} true labels for {len(y_pred)} predictions")
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes)


def metrics_from_confusion(cm: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """accuracy, macro_f1 (over classes with support or predictions), per_class P/R/F1/support.

    A class never predicted has precision 0; a class with no support and no predictions is
    left out of the macro average (its scores are reported as 0).
    """
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm).astype(float)
    support = cm.sum(1).astype(float)
    predicted = cm.sum(0).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    active = (support > 0) | (predicted > 0)
    total = cm.sum()
    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "macro_f1": float(f1[active].mean()) if active.any() else 0.0,
        "per_class": {c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                          "support": int(support[i])} for i, c in enumerate(classes)},
        "confusion": cm.tolist(),
        "classes": list(classes),
    }


def evaluate(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Metrics of argmax predictions of ``probs`` (N, C) against ``y_true``."""
    pred = np.asarray(probs).argmax(1) if len(probs) else np.zeros(0, np.int64)
    return metrics_from_confusion(confusion_matrix(y_true, pred, len(classes)), classes)


def reviewed_accuracy(predictions: Any, review: Any) -> dict[str, Any]:
    """Accuracy of a run's test predictions against a by-eye review of the same images.

    ``predictions``: a run's predictions.parquet frame (``image_id``, ``pred``); ``review``: rows
    ``image_id, label, verdict, shows`` (see curate.mislabel.review_bench). A prediction is right
    when it is the class the reviewer saw: the given label for ``right``, ``shows`` for ``wrong``,
    either class of the pair for ``ambiguous``; ``unusable`` images are left out. Also reports the
    accuracy against the given labels on the same images.
    """
    pred = dict(zip(predictions["image_id"].astype(str), predictions["pred"].astype(str)))
    hits, given_hits, n = 0, 0, 0
    for image_id, label, verdict, shows in zip(review["image_id"].astype(str), review["label"].astype(str),
                                               review["verdict"].astype(str), review["shows"].fillna("").astype(str)):
        if verdict == "unusable" or image_id not in pred:
            continue
        fits = {label} if verdict == "right" else set(shows.split("|"))
        n += 1
        hits += pred[image_id] in fits
        given_hits += pred[image_id] == label
    return {"n": n, "accuracy": hits / n if n else float("nan"),
            "accuracy_given_labels": given_hits / n if n else float("nan")}


def photo_review_labels(review: Any, manifest: Any) -> Any:
    """A by-eye review of scraped photos (``path, usable_face, label_ok, notes``, as in
    reports/review/scraped2-reviewed.csv) as label-review rows ``image_id, label, verdict, shows`` for
    :func:`reviewed_accuracy`: ``label_ok`` 1 = ``right``; 0 = ``wrong``, the class named by ``shows X`` in
    the notes; ``?`` (can't tell which of two) and photos without a usable face = ``unusable`` (left out).
    ``label`` is the image's label in ``manifest`` (its folder's class); photos not in it are dropped."""
    import re

    import pandas as pd

    ids = manifest.set_index(manifest["source_path"].astype(str))
    rows = []
    for path, usable, ok, notes in zip(review["path"].astype(str), review["usable_face"].astype(str),
                                       review["label_ok"].astype(str), review["notes"].fillna("").astype(str)):
        if path not in ids.index:
            continue
        shown = re.search(r"shows (angry|disgust|fear|happy|sad|surprise|neutral)", notes)
        if usable == "1" and ok == "1":
            verdict, shows = "right", ""
        elif usable == "1" and ok == "0" and shown:
            verdict, shows = "wrong", shown.group(1)
        else:
            verdict, shows = "unusable", ""
        rows.append((str(ids.at[path, "image_id"]), str(ids.at[path, "label"]), verdict, shows))
    return pd.DataFrame(rows, columns=["image_id", "label", "verdict", "shows"])


def _hits(predictions: Any, review: Any) -> dict[str, tuple[bool, bool]]:
    """image_id -> (right by the reviewer's reading, right by the given label), usable reviewed images only."""
    pred = dict(zip(predictions["image_id"].astype(str), predictions["pred"].astype(str)))
    out = {}
    for image_id, label, verdict, shows in zip(review["image_id"].astype(str), review["label"].astype(str),
                                               review["verdict"].astype(str), review["shows"].fillna("").astype(str)):
        if verdict == "unusable" or image_id not in pred:
            continue
        fits = {label} if verdict == "right" else set(shows.split("|"))
        out[image_id] = (pred[image_id] in fits, pred[image_id] == label)
    return out


def paired_difference(base: list[Any], other: list[Any], review: Any, *, draws: int = 2000,
                      seed: int = 0) -> dict[str, Any]:
    """``other`` runs minus ``base`` runs on the same reviewed images, seed by seed (``base[k]`` and
    ``other[k]`` share a seed): per seed the accuracy difference and the images only one of them gets
    right (exact McNemar p); over seeds the mean difference with a 95% interval from a paired bootstrap
    over images (each image's correctness averaged over the seeds, the images resampled), against the
    reviewer's reading and against the given labels. ``base``/``other``: predictions frames."""
    from scipy.stats import binomtest

    if len(base) != len(other) or not base:
        raise ValueError("paired_difference needs as many base runs as other runs (one pair per seed)")
    hits_b, hits_o = [_hits(p, review) for p in base], [_hits(p, review) for p in other]
    common = sorted(set.intersection(*(set(h) for h in hits_b + hits_o)))
    if not common:
        raise ValueError("no reviewed image is in every run's predictions")
    out: dict[str, Any] = {"images": len(common), "seeds": len(base), "per_seed": []}
    for which, idx in (("reviewed", 0), ("given", 1)):
        b = np.array([[h[i][idx] for i in common] for h in hits_b], float)
        o = np.array([[h[i][idx] for i in common] for h in hits_o], float)
        d = (o - b).mean(0)          # per image, averaged over seeds
        rng = np.random.default_rng(seed)
        boot = np.array([d[rng.integers(0, len(d), len(d))].mean() for _ in range(draws)])
        out[which] = {"base": float(b.mean()), "other": float(o.mean()), "difference": float(d.mean()),
                      "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
                      "seed_differences": [float(x) for x in (o.mean(1) - b.mean(1))]}
    for k in range(len(base)):
        b = np.array([hits_b[k][i][0] for i in common])
        o = np.array([hits_o[k][i][0] for i in common])
        only_o, only_b = int((o & ~b).sum()), int((b & ~o).sum())
        p = float(binomtest(only_o, only_o + only_b, 0.5).pvalue) if only_o + only_b else 1.0
        out["per_seed"].append({"base_accuracy": float(b.mean()), "other_accuracy": float(o.mean()),
                                "only_other": only_o, "only_base": only_b, "mcnemar_p": p})
    return out
