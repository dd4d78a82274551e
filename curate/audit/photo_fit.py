"""Fitting a learned photo check on reviewed photos (pure: frames and labels in, a scorer out).

Used by ``curate photos-bench`` (fitting the shipped scorers, measuring them across scrapes) and by
``curate audit`` when a reviewer's verdicts teach a check (``learn_from_review: refit``):

- :func:`fit_check`: out-of-fold log-odds (stratified folds grouped by duplicate cluster, so copies
  never straddle folds), the final trees on all photos, their Platt calibration on the out-of-fold
  log-odds, and the probability threshold chosen on the out-of-fold probabilities so that the
  scrape it suits worst does best (:func:`robust_threshold`);
- :func:`refit_with_review`: the same on the fitting photos plus a reviewer's verdicts on photos of
  a new scrape, which count several times.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from curate.audit.label_shift import calibrate
from curate.audit.photo_model import PhotoScorer, calibrated, fit_scorer, transform

TARGETS = {"no_face": (0.95, 0.90), "cartoon": (0.85, 0.85), "watermark": (0.75, 0.85), "multiple_faces": (0.80, 0.80)}
"""(recall, precision) each check should reach on reviewed photos of a scrape it was not fitted on (issue 29)."""


def pr(y: np.ndarray, flagged: np.ndarray) -> dict[str, float]:
    """Precision, recall and counts of a flag against the truth."""
    y, flagged = np.asarray(y, bool), np.asarray(flagged, bool)
    tp = int((y & flagged).sum())
    return {"precision": tp / max(int(flagged.sum()), 1), "recall": tp / max(int(y.sum()), 1),
            "flagged": int(flagged.sum()), "positives": int(y.sum()), "tp": tp, "n": int(len(y))}


def _f1(m: dict[str, float]) -> float:
    return 2 * m["precision"] * m["recall"] / max(m["precision"] + m["recall"], 1e-9)


def target_key(m: dict[str, float], recall: float, precision: float) -> tuple[float, float]:
    """Sort key of a flag's figures ``m``: meeting both targets first (then the most recall),
    else the best F1."""
    meets = m["recall"] >= recall and m["precision"] >= precision
    return (1.0 + m["recall"] if meets else 0.0, _f1(m))


def choose_threshold(y: np.ndarray, score: np.ndarray, recall: float, precision: float) -> float:
    """The threshold meeting both targets with the most recall; else the best F1."""
    return robust_threshold(y, score, np.zeros(len(y), int), recall, precision)


def robust_threshold(y: np.ndarray, score: np.ndarray, scrape: np.ndarray, recall: float, precision: float,
                     min_positives: int = 10) -> float:
    """The threshold whose *worst* scrape does best (:func:`target_key` of each scrape's figures,
    the minimum over the scrapes with at least ``min_positives`` positives, or all of them when
    none has): a threshold that only suits the scrape with most photos is not chosen."""
    y, score, scrape = np.asarray(y, bool), np.asarray(score, np.float64), np.asarray(scrape)
    groups = [g for g in np.unique(scrape) if y[scrape == g].sum() >= min_positives] or list(np.unique(scrape))
    best_t, best_key = 0.5, (-1.0, -1.0)
    for t in np.unique(np.round(score[np.isfinite(score)], 4)):
        keys = [target_key(pr(y[scrape == g], score[scrape == g] >= t), recall, precision) for g in groups]
        key = min(keys)
        if key > best_key:
            best_key, best_t = key, float(t)
    return best_t


@dataclass
class FittedCheck:
    """A calibrated scorer and the out-of-fold calibrated probabilities of the photos it was fitted on."""

    scorer: PhotoScorer
    oof: np.ndarray


def oof_log_odds(check: str, frame: pd.DataFrame, y: np.ndarray, groups: np.ndarray, features: tuple[str, ...],
                 folds: int, seed: int, sample_weight: np.ndarray | None = None) -> np.ndarray:
    """Out-of-fold log-odds of the check's trees (stratified folds grouped by ``groups``)."""
    from sklearn.model_selection import StratifiedGroupKFold

    out = np.zeros(len(y))
    k = max(2, min(folds, int(y.sum()), int(len(y) - y.sum())))
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for train, test in splitter.split(frame, y, groups):
        model = fit_scorer(check, frame.iloc[train].reset_index(drop=True), y[train], features=features, seed=seed,
                           sample_weight=None if sample_weight is None else sample_weight[train])
        out[test] = model.raw(_x(model, frame.iloc[test]))
    return out


def _x(scorer: PhotoScorer, frame: pd.DataFrame) -> np.ndarray:
    return transform(frame.reset_index(drop=True), scorer.features)


def fit_check(check: str, frame: pd.DataFrame, y: np.ndarray, groups: np.ndarray, scrape: np.ndarray,
              features: tuple[str, ...], *, folds: int = 5, seed: int = 0,
              sample_weight: np.ndarray | None = None) -> FittedCheck:
    """The shipped form of one check fitted on ``frame`` (see the module docstring)."""
    y = np.asarray(y, int)
    raw = oof_log_odds(check, frame, y, groups, features, folds, seed, sample_weight)
    final = fit_scorer(check, frame.reset_index(drop=True), y, features=features, seed=seed,
                       sample_weight=sample_weight)
    provisional = calibrated(final, raw, y, 0.5)
    oof = calibrate(raw, provisional.slope, provisional.offset)
    t = robust_threshold(y, oof, scrape, *TARGETS[check])
    return FittedCheck(calibrated(final, raw, y, t), oof)


def refit_with_review(check: str, source: pd.DataFrame, y_source: np.ndarray, groups: np.ndarray,
                      reviewed: pd.DataFrame, y_reviewed: np.ndarray, features: tuple[str, ...], *,
                      weight: float = 5.0, folds: int = 5, seed: int = 0) -> PhotoScorer:
    """The check refitted on its fitting photos plus a reviewer's verdicts on ``reviewed`` photos of a
    new scrape (each counting ``weight`` times; a group of their own), calibrated and thresholded as
    :func:`fit_check` does, the reviewed photos forming a scrape of their own for the threshold."""
    copies = max(1, int(round(weight)))   # repeated rows: the trees' binning stays unweighted (and fast)
    reviewed = reviewed.reset_index(drop=True)
    rep = np.repeat(np.arange(len(reviewed)), copies)
    frame = pd.concat([source, reviewed.iloc[rep]], ignore_index=True)
    y = np.concatenate([np.asarray(y_source, int), np.asarray(y_reviewed, int)[rep]])
    g = np.concatenate([groups, [f"reviewed/{k}" for k in rep]])
    scrape = np.concatenate([np.zeros(len(source), int), np.ones(len(rep), int)])
    return fit_check(check, frame, y, g, scrape, features, folds=folds, seed=seed).scorer
