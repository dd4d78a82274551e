"""Operating points that survive a different mix of photos (pure functions, arrays in and out).

A learned photo check is fitted on reviewed scrapes where, say, 44% of the photos are drawings;
a user's scrape may hold 3% or 60%. Its raw scores keep their ranking on the new scrape, but a
fixed score threshold does not keep its precision: with fewer positives, more of the flagged
photos are false alarms. Three steps keep the meaning of the decision:

- :func:`calibrate`: the scorer's log-odds mapped to a probability by a logistic fit on
  out-of-fold scores of the fitting data (Platt scaling), so ``p`` means P(issue | photo) at the
  fitting data's prior;
- :func:`em_prior`: the prior of the workspace's own photos re-estimated without labels by
  expectation-maximisation (Saerens, Latinne & Decaestecker, "Adjusting the outputs of a
  classifier to new a priori probabilities", Neural Computation 14, 2002), and every
  probability adjusted to it (:func:`shift_posterior`);
- :func:`fit_recalibration`: with photos a reviewer judged in this workspace, a logistic
  correction of the adjusted log-odds, shrunk towards "no correction" (a Gaussian prior on its
  slope and offset) so that a few dozen reviewed photos move it only as far as they justify.

The check is flagged where the adjusted probability reaches the check's posterior threshold.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)), with p clipped to [1e-6, 1 - 1e-6]."""
    p = np.clip(np.asarray(p, np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))


RAW_CLIP = 12.0
"""Tree log-odds are clipped to +-this before calibration (a fully separated leaf says +-30)."""


def calibrate(raw: np.ndarray, slope: float, offset: float) -> np.ndarray:
    """Probability of the issue from the scorer's log-odds ``raw`` (Platt: sigmoid(slope * raw + offset))."""
    return sigmoid(slope * np.clip(np.asarray(raw, np.float64), -RAW_CLIP, RAW_CLIP) + offset)


def fit_platt(raw: np.ndarray, y: np.ndarray, *, l2: float = 1.0) -> tuple[float, float]:
    """(slope, offset) of the logistic fit of labels ``y`` on log-odds ``raw`` (out-of-fold scores,
    clipped to +-:data:`RAW_CLIP`), with a Gaussian prior of precision ``l2`` around (1, 0) so that
    separable scores keep a finite slope."""
    return _logistic_fit(np.clip(np.asarray(raw, np.float64), -RAW_CLIP, RAW_CLIP), np.asarray(y, np.float64),
                         prior_mean=(1.0, 0.0), prior_precision=l2)


def shift_posterior(p: np.ndarray, train_prior: float, new_prior: float) -> np.ndarray:
    """Posteriors ``p`` made under ``train_prior`` re-weighted to ``new_prior`` (Bayes' rule)."""
    p = np.clip(np.asarray(p, np.float64), EPS, 1 - EPS)
    a = (new_prior / train_prior) * p
    b = ((1 - new_prior) / (1 - train_prior)) * (1 - p)
    return a / (a + b)


@dataclass(frozen=True)
class PriorEstimate:
    """What :func:`em_prior` found: the new prior, its iterations, and whether it converged."""

    prior: float
    train_prior: float
    iterations: int
    converged: bool


def em_prior(p: np.ndarray, train_prior: float, *, max_iter: int = 500, tol: float = 1e-7,
             bounds: tuple[float, float] = (0.002, 0.998)) -> tuple[PriorEstimate, np.ndarray]:
    """The prior of the photos whose calibrated posteriors are ``p`` (EM of Saerens et al. 2002) and
    the posteriors adjusted to it. ``bounds`` keep the estimate off 0 and 1 (a workspace with no
    positive at all still gets a small prior, so a strong photo can still be flagged)."""
    p = np.asarray(p, np.float64)
    p = p[np.isfinite(p)] if p.size else p
    if p.size == 0:
        return PriorEstimate(train_prior, train_prior, 0, True), p
    prior, converged, it = float(train_prior), False, 0
    for it in range(1, max_iter + 1):
        new = float(np.clip(shift_posterior(p, train_prior, prior).mean(), *bounds))
        if abs(new - prior) < tol:
            prior, converged = new, True
            break
        prior = new
    return PriorEstimate(prior, float(train_prior), it, converged), shift_posterior(p, train_prior, prior)


@dataclass(frozen=True)
class Recalibration:
    """A logistic correction of adjusted log-odds learnt from reviewed photos of one workspace:
    ``p' = sigmoid(slope * logit(p) + offset)``; ``n`` reviewed photos (``positives`` of them with the issue)."""

    slope: float = 1.0
    offset: float = 0.0
    n: int = 0
    positives: int = 0

    def apply(self, p: np.ndarray) -> np.ndarray:
        return sigmoid(self.slope * logit(p) + self.offset)


def fit_recalibration(p: np.ndarray, y: np.ndarray, *, strength: float = 20.0) -> Recalibration:
    """The correction of probabilities ``p`` that best explains a reviewer's verdicts ``y`` (1 = the
    issue is there), shrunk towards no correction with a Gaussian prior whose precision is
    ``strength`` (about that many photos' worth of evidence for "no correction"). Verdicts of one
    class only move the offset (the slope needs both)."""
    p, y = np.asarray(p, np.float64), np.asarray(y, np.float64)
    ok = np.isfinite(p)
    p, y = p[ok], y[ok]
    if len(y) == 0:
        return Recalibration()
    slope, offset = _logistic_fit(logit(p), y, prior_mean=(1.0, 0.0), prior_precision=strength,
                                  fit_slope=bool(0 < y.sum() < len(y)))
    return Recalibration(slope=slope, offset=offset, n=int(len(y)), positives=int(y.sum()))


def _logistic_fit(x: np.ndarray, y: np.ndarray, *, prior_mean: tuple[float, float], prior_precision: float,
                  fit_slope: bool = True, iters: int = 100) -> tuple[float, float]:
    """MAP (slope, offset) of ``P(y=1) = sigmoid(slope * x + offset)`` with a Gaussian prior of
    ``prior_precision`` around ``prior_mean`` (Newton's method; a few parameters, so exact)."""
    w = np.array(prior_mean, np.float64)
    mu = w.copy()
    lam = np.array([prior_precision if fit_slope else 1e12, prior_precision])
    X = np.stack([x, np.ones_like(x)], axis=1)
    for _ in range(iters):
        z = np.clip(X @ w, -35, 35)
        q = 1.0 / (1.0 + np.exp(-z))
        grad = X.T @ (q - y) + lam * (w - mu)
        hess = (X * (q * (1 - q))[:, None]).T @ X + np.diag(lam)
        step = np.linalg.solve(hess, grad)
        step = step * min(1.0, 5.0 / max(float(np.max(np.abs(step))), 1e-12))   # damped: no overshoot
        w = w - step
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(w[0]), float(w[1])
