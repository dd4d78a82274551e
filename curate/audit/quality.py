"""Image-quality statistics for small grey faces (pure numpy, batched).

Every function takes uint8 images (N, H, W) and returns float arrays (N,). The checks in
:mod:`curate.audit.checks` turn them into scores (higher = more likely an issue).
"""
from __future__ import annotations

import cv2
import numpy as np


def flat(images: np.ndarray) -> np.ndarray:
    """(N, H*W) float32 view of the images."""
    return np.asarray(images).reshape(len(images), -1).astype(np.float32)


def pixel_std(images: np.ndarray) -> np.ndarray:
    """Standard deviation of the grey levels (0 for a constant image)."""
    return flat(images).std(axis=1)


def percentiles(images: np.ndarray, qs=(2, 5, 50, 95, 98)) -> np.ndarray:
    """(N, len(qs)) grey-level percentiles."""
    return np.percentile(flat(images), qs, axis=1).T


def entropy_bits(images: np.ndarray, bins: int = 64) -> np.ndarray:
    """Shannon entropy (bits) of the grey-level histogram with ``bins`` bins (max log2(bins))."""
    x = np.asarray(images).reshape(len(images), -1)
    q = (x.astype(np.int32) * bins) // 256
    flat_ids = (np.arange(len(x))[:, None] * bins + q).ravel()
    counts = np.bincount(flat_ids, minlength=len(x) * bins).reshape(len(x), bins)
    p = counts.astype(np.float32) / x.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(p > 0, np.log2(p), 0.0)
    return -(p * logs).sum(axis=1)


def distinct_levels(images: np.ndarray) -> np.ndarray:
    """Number of distinct grey levels per image."""
    x = np.sort(np.asarray(images).reshape(len(images), -1), axis=1)
    return 1 + (np.diff(x.astype(np.int16), axis=1) != 0).sum(axis=1)


def sharpness(images: np.ndarray) -> np.ndarray:
    """Std of the Laplacian divided by the image's own contrast (std + 4): ~0 for a smooth blur.

    Normalising by contrast keeps a dim or low-contrast but sharp face from looking blurry.
    """
    lap = np.stack([cv2.Laplacian(np.ascontiguousarray(im), cv2.CV_32F, ksize=1) for im in images])
    return lap.reshape(len(images), -1).std(axis=1) / (pixel_std(images) + 4.0)


def dominant_fraction(images: np.ndarray) -> np.ndarray:
    """Share of pixels within +-4 grey levels of the most common level (1.0 for a flat image)."""
    x = np.asarray(images).reshape(len(images), -1)
    out = np.empty(len(x), np.float32)
    for i, row in enumerate(x):
        hist = np.bincount(row, minlength=256).astype(np.float32)
        window = np.convolve(hist, np.ones(9, np.float32), mode="same")
        out[i] = window.max() / row.size
    return out
