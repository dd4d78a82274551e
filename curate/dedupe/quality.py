"""Image quality for picking a cluster's representative: contrast plus sharpness, from exact integer sums.

:func:`block_quality` scores a block of images; :func:`quality_score` scores chosen rows of a
stack on two threads. The hash pass (:func:`curate.dedupe.hashing.hash_images` with
``quality_out``) also calls :func:`block_quality` on each block it has just read, so a
dedupe reads every image once.
"""
from __future__ import annotations

import numpy as np

CACHE_PIXELS = 2**18
"""Pixels per sub-block (128 images of 48x48): the uint16 temporaries stay in L2 cache."""


def block_quality(images: np.ndarray) -> np.ndarray:
    """Contrast (grey std) plus half the sharpness (std of a 4-neighbour Laplacian) of uint8 images (N, H, W).

    Higher is better. The Laplacian runs on each image's flat pixel row: the neighbours of flat
    position p are p-1, p+1, p-w and p+w; positions in the first or last column would mix two
    image rows and are zeroed, which leaves the sums over the (h-2) x (w-2) interior. It is
    computed in uint16 straight from the pixels: the arithmetic wraps modulo 2**16 and the true
    value (|lap| <= 1,020) is the int16 view of the result.
    """
    images = np.asarray(images, np.uint8)
    n, h, w = images.shape
    if h < 3 or w < 3:
        raise ValueError(f"quality needs images of at least 3x3 pixels, got {h}x{w}")
    flat = images.reshape(n, h * w)
    col = np.arange(w + 1, h * w - w - 1) % w
    wrapped = np.flatnonzero((col == 0) | (col == w - 1))
    centre = slice(w + 1, h * w - w - 1)
    sides = (slice(1, h * w - 2 * w - 1), slice(2 * w + 1, h * w - 1), slice(w, h * w - w - 2), slice(w + 2, h * w - w))
    out = np.empty(n, np.float32)
    step = max(1, CACHE_PIXELS // (h * w))
    for s in range(0, n, step):
        x = flat[s:s + step]
        lap = np.multiply(x[:, centre], 4, dtype=np.uint16)
        for side in sides:
            np.subtract(lap, x[:, side], out=lap, dtype=np.uint16)
        lap = lap.view(np.int16)
        lap[:, wrapped] = 0
        out[s:s + len(x)] = _row_std(x, h * w) + 0.5 * _row_std(lap, (h - 2) * (w - 2))
    return out


def quality_score(images: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """:func:`block_quality` of ``images[rows]`` (all images when ``rows`` is None), on two threads."""
    from concurrent.futures import ThreadPoolExecutor

    rows = np.arange(len(images)) if rows is None else np.asarray(rows, np.int64)
    out = np.zeros(len(rows), np.float32)
    if len(rows) == 0:
        return out
    step = max(1, CACHE_PIXELS // int(np.prod(np.shape(images)[1:3])))

    def score(start: int, stop: int) -> None:
        for s in range(start, stop, step):
            out[s:min(s + step, stop)] = block_quality(np.asarray(images[rows[s:min(s + step, stop)]]))

    half = -(-len(rows) // 2)
    with ThreadPoolExecutor(max_workers=2) as pool:  # two halves; numpy releases the GIL
        list(pool.map(score, (0, half), (half, len(rows))))
    return out


def _row_std(a: np.ndarray, count: int) -> np.ndarray:
    """Standard deviation over ``count`` values of each row of a uint8 or int16 array (zero padding allowed).

    Exact integer sums: squares are summed in int32 over column blocks short enough that no
    block can overflow (|value| <= 1,020 for a Laplacian of 8-bit pixels), then in int64.
    """
    total = a.sum(axis=1, dtype=np.int32 if a.shape[1] < 2**21 else np.int64).astype(np.int64)
    squares = np.zeros(len(a), np.int64)
    block = 2048  # 2,048 * 1,020**2 < 2**31
    for c in range(0, a.shape[1], block):
        part = a[:, c:c + block]
        squares += np.einsum("ij,ij->i", part, part, dtype=np.int32)
    mean = total / count
    return np.sqrt(np.maximum(squares / count - mean * mean, 0.0)).astype(np.float32)
