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


def histograms(images: np.ndarray) -> np.ndarray:
    """(N, 256) int64 grey-level counts of uint8 images (one bincount over the whole batch)."""
    x = np.asarray(images).reshape(len(images), -1)
    if x.dtype != np.uint8:
        x = x.astype(np.int64)
    ids = (np.arange(len(x), dtype=np.int64)[:, None] * 256 + x).ravel()
    return np.bincount(ids, minlength=len(x) * 256).reshape(len(x), 256)


def distinct_levels(images: np.ndarray) -> np.ndarray:
    """Number of distinct grey levels per image."""
    return (histograms(images) > 0).sum(axis=1)


def laplacian(images: np.ndarray) -> np.ndarray:
    """(N, H, W) float32 4-neighbour Laplacian of uint8 images, borders reflected (``BORDER_REFLECT_101``):
    equal to ``cv2.Laplacian(image, cv2.CV_32F, ksize=1)`` image by image (integer sums, exact in float32),
    computed for the whole batch at once."""
    x = np.asarray(images).astype(np.int32)
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="reflect")
    lap = p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:] - 4 * x
    return lap.astype(np.float32)


def sharpness(images: np.ndarray) -> np.ndarray:
    """Std of the Laplacian divided by the image's own contrast (std + 4): ~0 for a smooth blur.

    Normalising by contrast keeps a dim or low-contrast but sharp face from looking blurry.
    """
    lap = laplacian(images) if len(images) and min(np.shape(images)[1:3]) > 1 else \
        np.stack([cv2.Laplacian(np.ascontiguousarray(im), cv2.CV_32F, ksize=1) for im in images])
    return lap.reshape(len(images), -1).std(axis=1) / (pixel_std(images) + 4.0)


def dominant_fraction(images: np.ndarray, hist: np.ndarray | None = None) -> np.ndarray:
    """Share of pixels within +-4 grey levels of the most common level (1.0 for a flat image).

    The best sum of 9 neighbouring histogram bins (a window cut by the ends of the grey scale never beats
    a whole one beside it), over the pixel count, in float32. ``hist``: :func:`histograms` of the images
    when already computed.
    """
    x = np.asarray(images).reshape(len(images), -1)
    counts = histograms(x) if hist is None else hist
    cum = np.zeros((len(x), 257), np.int64)
    np.cumsum(counts, axis=1, out=cum[:, 1:])
    best = (cum[:, 9:] - cum[:, :-9]).max(axis=1, initial=0)
    return best.astype(np.float32) / np.float32(x.shape[1])
