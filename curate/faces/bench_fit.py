"""Measuring the learned photo checks across reviewed scrapes (pure: frames in, figures out).

Fitting is :mod:`curate.audit.photo_fit` (shared with the audit, which refits on a reviewer's verdicts).

- :func:`transfer_figures`: a scorer fitted on one scrape measured on another, at its own
  threshold, with the fitted prior and with the prior re-estimated on the other scrape's photos;
- :func:`learning_curve`: the same after a reviewer's verdicts on n photos of the other scrape
  taught it (refitted with them, :func:`curate.audit.photo_fit.refit_with_review`, or recalibrated,
  :func:`curate.audit.label_shift.fit_recalibration`), measured on the rest.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from curate.audit.label_shift import em_prior, fit_recalibration, logit
from curate.audit.photo_fit import pr
from curate.audit.photo_model import PhotoScorer


def ranking(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """AUROC and average precision of a score (NaN where the truth has one class only)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y, score = np.asarray(y, int), np.nan_to_num(np.asarray(score, np.float64), nan=-1.0)
    if not 0 < y.sum() < len(y):
        return {"auroc": float("nan"), "ap": float("nan")}
    return {"auroc": float(roc_auc_score(y, score)), "ap": float(average_precision_score(y, score))}


def transfer_figures(fitted: PhotoScorer, target: pd.DataFrame, y: np.ndarray,
                     target_all: pd.DataFrame | None = None) -> dict[str, Any]:
    """``fitted`` on another scrape's reviewed photos at its own threshold: with the fitted prior,
    and with the prior re-estimated on all of that scrape's photos (``target_all``) by EM."""
    p = fitted.predict(target.reset_index(drop=True))
    out = {"fitted_prior": {**pr(y, p >= fitted.threshold), **ranking(y, p)}}
    if target_all is not None and len(target_all):
        est, q_all = em_prior(fitted.predict(target_all.reset_index(drop=True)), fitted.prior)
        q = pd.Series(q_all, index=target_all["image_id"].astype(str).to_numpy()).reindex(
            target["image_id"].astype(str).to_numpy()).to_numpy()
        out["workspace_prior"] = {**pr(y, q >= fitted.threshold), "prior_fitted": fitted.prior,
                                  "prior_estimated": est.prior, "prior_reviewed": float(np.mean(y))}
    return out


def learning_curve(fitted: PhotoScorer, target: pd.DataFrame, y: np.ndarray, *, sizes=(0, 25, 50, 100, 200),
                   repeats: int = 20, strength: float = 20.0, review_min: int = 10, seed: int = 0,
                   order: str = "queue", refit=None) -> list[dict]:
    """Precision/recall on the rest of ``target``'s reviewed photos after a reviewer judged ``n`` of
    them, for each ``n`` of ``sizes``. ``order``: ``queue`` = the n highest-scored photos (the
    reviewer works down the check's queue in the App), ``random`` = n drawn at random (mean over
    ``repeats`` draws). The reviewer's verdicts recalibrate the scorer
    (:func:`curate.audit.label_shift.fit_recalibration`), or, with ``refit(frame, y) -> scorer``,
    refit it with the reviewed photos added."""
    y = np.asarray(y, int)
    target = target.reset_index(drop=True)
    p = fitted.predict(target)
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        if n >= len(y):
            continue
        stats = []
        for _ in range(repeats if (n and order == "random") else 1):
            if order == "queue":
                drawn = np.argsort(-p, kind="stable")[:n]
            else:
                drawn = rng.choice(len(y), size=n, replace=False) if n else np.zeros(0, int)
            rest = np.setdiff1d(np.arange(len(y)), drawn)
            q, t = p, fitted.threshold
            if n >= review_min and refit is not None:
                scorer = refit(target.iloc[drawn], y[drawn])
                q, t = scorer.predict(target), scorer.threshold
            elif n >= review_min:
                q = fit_recalibration(p[drawn], y[drawn], strength=strength).apply(p)
            stats.append(pr(y[rest], q[rest] >= t))
        rows.append({"reviewed": int(n), "draws": len(stats),
                     "precision": float(np.mean([s["precision"] for s in stats])),
                     "recall": float(np.mean([s["recall"] for s in stats])),
                     "flagged": float(np.mean([s["flagged"] for s in stats])),
                     "precision_sd": float(np.std([s["precision"] for s in stats]))})
    return rows


def calibrated_log_odds(scorer: PhotoScorer, frame: pd.DataFrame) -> np.ndarray:
    """The scorer's calibrated log-odds of each row of ``frame``."""
    return logit(scorer.predict(frame.reset_index(drop=True)))
