"""Batched perceptual hashes (pHash, dHash, wHash) equal bit for bit to ``imagehash``.

``imagehash`` resizes each grey image with PIL's LANCZOS filter and then transforms it.
Here the resize is PIL's own fixed-point separable convolution (22-bit integer
coefficients, horizontal pass, clip to uint8, vertical pass) written as two float64
matrix products: every product and sum is an integer below 2**53, so the float
arithmetic is exact and the result equals PIL's pixel for pixel. pHash needs only the
8x8 low-frequency corner of the 2-D DCT-II, computed as ``D @ X @ D.T``; images whose
coefficients sit within rounding noise of their median (blank or near-constant images,
where imagehash's bits depend on FFT round-off) are recomputed with imagehash's exact
``scipy.fftpack.dct`` path. Hashes are returned packed as uint8 (N, hash_size**2 / 8),
the layout faiss binary indexes expect.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from curate.errors import ConfigError

PRECISION_BITS = 22
"""PIL's fixed-point precision for 8-bit resampling (32 - 8 - 2)."""

HASH_METHODS = ("phash", "dhash", "whash")


def _lanczos(x: float) -> float:
    def sinc(v: float) -> float:
        if v == 0.0:
            return 1.0
        v *= math.pi
        return math.sin(v) / v

    return sinc(x) * sinc(x / 3.0) if -3.0 <= x < 3.0 else 0.0


@lru_cache(maxsize=64)
def lanczos_matrix(in_size: int, out_size: int) -> np.ndarray:
    """PIL's integer LANCZOS coefficients for ``in_size -> out_size`` as a float64 (in, out) matrix.

    Mirrors ``precompute_coeffs`` and ``normalize_coeffs_8bpc`` of Pillow's Resample.c.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 3.0 * filterscale
    mat = np.zeros((in_size, out_size), np.float64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        ss = 1.0 / filterscale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        weights = [_lanczos((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        total = sum(weights)
        for x, w in enumerate(weights):
            if total != 0.0:
                w /= total
            mat[xmin + x, xx] = int(-0.5 + w * (1 << PRECISION_BITS)) if w < 0 else int(0.5 + w * (1 << PRECISION_BITS))
    return mat


def _fixed_to_u8(acc: np.ndarray) -> np.ndarray:
    """PIL's ``clip8`` in place: add the rounding half, shift right by PRECISION_BITS, clip to 0..255."""
    acc += float(1 << (PRECISION_BITS - 1))
    acc *= 1.0 / (1 << PRECISION_BITS)
    np.floor(acc, out=acc)
    return np.clip(acc, 0, 255, out=acc)


def _resize_rnc(images: np.ndarray, width: int, height: int) -> np.ndarray:
    """LANCZOS resize in the (row, image, column) layout: float64 (height, N, width).

    Working row-major over all images lets both passes be single large matrix products
    without transposing float data.
    """
    n, h, w = images.shape
    x = np.empty((h, n, w), np.float64)
    x[...] = images.transpose(1, 0, 2)
    x = x.reshape(h * n, w)
    if width != w:
        x = _fixed_to_u8(x @ lanczos_matrix(w, width))
    x = x.reshape(h, n * width)
    if height != h:
        x = _fixed_to_u8(np.ascontiguousarray(lanczos_matrix(h, height).T) @ x)
    return x.reshape(height, n, width)


def resize_lanczos(images: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize grey uint8 images (N, H, W) to (N, height, width) exactly as PIL LANCZOS does.

    Returns float64 holding integer values 0..255.
    """
    return _resize_rnc(np.asarray(images, np.uint8), width, height).transpose(1, 0, 2)


@lru_cache(maxsize=8)
def _dct_rows(size: int, keep: int) -> np.ndarray:
    """First ``keep`` rows of the unnormalised DCT-II matrix used by ``scipy.fftpack.dct``."""
    k = np.arange(keep)[:, None]
    n = np.arange(size)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * n + 1) / (2 * size))


TIE_MARGIN = 1e-9
"""Relative distance to the median under which round-off could flip a bit (exact path used)."""


def _phash_from_rnc(small: np.ndarray, hash_size: int) -> np.ndarray:
    """pHash bits from resized images in (row, image, column) layout."""
    import scipy.fftpack

    size, n, _ = small.shape
    dct = _dct_rows(size, hash_size)
    rows = (dct @ small.reshape(size, -1)).reshape(hash_size * n, size)
    low = (rows @ dct.T).reshape(hash_size, n, hash_size).transpose(1, 0, 2).reshape(n, -1)
    med = np.median(low, axis=1, keepdims=True)
    bits = low > med
    margin = np.abs(low - med).min(axis=1) / (np.abs(low).max(axis=1) + 1.0)
    for i in np.flatnonzero(margin < TIE_MARGIN):  # imagehash's exact path for near-ties
        full = scipy.fftpack.dct(scipy.fftpack.dct(small[:, i, :].astype(np.uint8), axis=0), axis=1)
        corner = full[:hash_size, :hash_size].reshape(-1)
        bits[i] = corner > np.median(corner)
    return bits


def _symmetric(in_size: int, out_size: int) -> bool:
    mat = lanczos_matrix(in_size, out_size)
    return bool((mat[::-1, ::-1] == mat).all())


def phash_bits(images: np.ndarray, hash_size: int = 8, highfreq_factor: int = 4,
               mirror: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Unpacked pHash bits (N, hash_size**2) of grey uint8 images (N, H, W), and of their mirrors.

    PIL's LANCZOS kernel is symmetric, so the mirrored image's resize is the mirrored resize.
    """
    size = hash_size * highfreq_factor
    small = _resize_rnc(images, size, size)
    mirrored = None
    if mirror:
        flipped = (small[:, :, ::-1] if _symmetric(images.shape[2], size)
                   else _resize_rnc(images[:, :, ::-1], size, size))
        mirrored = _phash_from_rnc(np.ascontiguousarray(flipped), hash_size)
    return _phash_from_rnc(small, hash_size), mirrored


def dhash_bits(images: np.ndarray, hash_size: int = 8,
               mirror: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Unpacked dHash bits (N, hash_size**2): column-difference signs of a (hash_size+1) x hash_size resize."""
    def bits(small: np.ndarray) -> np.ndarray:
        return (small[:, :, 1:] > small[:, :, :-1]).transpose(1, 0, 2).reshape(small.shape[1], -1)

    small = _resize_rnc(images, hash_size + 1, hash_size)
    mirrored = None
    if mirror:
        flipped = (small[:, :, ::-1] if _symmetric(images.shape[2], hash_size + 1)
                   else _resize_rnc(images[:, :, ::-1], hash_size + 1, hash_size))
        mirrored = bits(flipped)
    return bits(small), mirrored


def _whash_from_pixels(pixels: np.ndarray, hash_size: int, ll_max_level: int) -> np.ndarray:
    import pywt

    dwt_level = ll_max_level - int(np.log2(hash_size))
    coeffs = list(pywt.wavedec2(pixels, "haar", level=ll_max_level, axes=(1, 2)))
    coeffs[0] = coeffs[0] * 0
    pixels = pywt.waverec2(coeffs, "haar", axes=(1, 2))
    low = pywt.wavedec2(pixels, "haar", level=dwt_level, axes=(1, 2))[0].reshape(len(pixels), -1)
    return low > np.median(low, axis=1, keepdims=True)


def whash_bits(images: np.ndarray, hash_size: int = 8,
               mirror: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Unpacked Haar wHash bits (N, hash_size**2) with imagehash's defaults (remove_max_haar_ll=True)."""
    n, h, w = images.shape
    image_scale = max(2 ** int(np.log2(min(h, w))), hash_size)
    ll_max_level = int(np.log2(image_scale))
    if hash_size & (hash_size - 1) or hash_size > image_scale:
        raise ConfigError(f"wHash needs a power-of-two hash_size <= {image_scale}, got {hash_size}")
    small = resize_lanczos(images, image_scale, image_scale).astype(np.uint8) / 255.0
    mirrored = _whash_from_pixels(small[:, :, ::-1], hash_size, ll_max_level) if mirror else None
    if mirror and not _symmetric(w, image_scale):
        flipped = resize_lanczos(images[:, :, ::-1], image_scale, image_scale).astype(np.uint8) / 255.0
        mirrored = _whash_from_pixels(flipped, hash_size, ll_max_level)
    return _whash_from_pixels(small, hash_size, ll_max_level), mirrored


_BITS = {"phash": phash_bits, "dhash": dhash_bits, "whash": whash_bits}


@dataclass(frozen=True, eq=False)
class HashBlocks:
    """Engine factory of the hash pass: block ``start`` of ``images`` -> its packed hashes (and mirrored
    ones, and its quality scores when asked); picklable, so Ray workers run it on their copy of the store."""

    images: np.ndarray
    method: str
    hash_size: int
    mirror: bool
    quality: bool
    batch_size: int

    def __call__(self):
        return self.block

    def block(self, start: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        from curate.dedupe.quality import block_quality

        block = np.ascontiguousarray(self.images[start:start + self.batch_size], dtype=np.uint8)
        bits, bits_m = _BITS[self.method](block, hash_size=self.hash_size, mirror=self.mirror)
        return (np.packbits(bits, axis=1), np.packbits(bits_m, axis=1) if self.mirror else None,
                block_quality(block) if self.quality else None)


def hash_images(images: np.ndarray, method: str = "phash", *, hash_size: int = 8, mirror: bool = False,
                batch_size: int = 512, workers: int = 2,
                quality_out: np.ndarray | None = None, engine=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Packed hashes uint8 (N, hash_size**2 // 8) of grey uint8 images (N, H, W).

    Returns ``(hashes, mirrored)``; ``mirrored`` holds the horizontally flipped images'
    hashes when ``mirror`` is true, else None. Batches run on the ``engine``
    (:class:`curate.engine.Engine`; None = this process) - locally on ``workers`` threads with
    single-threaded BLAS each (numpy and BLAS release the GIL). ``quality_out`` (float32,
    length N), when given, is filled with :func:`curate.dedupe.quality.block_quality` of each
    batch while it is in memory. The arithmetic is exact, so the engine never changes a bit.
    """
    from threadpoolctl import threadpool_limits

    from curate.engine import LocalEngine
    from curate.perf import keep_freed_memory

    keep_freed_memory()
    if method not in _BITS:
        raise ConfigError(f"unknown hash method {method!r}; choose one of {', '.join(HASH_METHODS)}")
    images = np.asarray(images) if not isinstance(images, np.memmap) else images
    if images.ndim != 3:
        raise ValueError(f"expected grey images (N, H, W), got shape {images.shape}")
    n, nbytes = len(images), hash_size * hash_size // 8
    out = np.zeros((n, nbytes), np.uint8)
    out_m = np.zeros((n, nbytes), np.uint8) if mirror else None
    if quality_out is not None and len(quality_out) != n:
        raise ValueError(f"quality_out holds {len(quality_out)} values for {n} images")
    engine = engine or LocalEngine()
    if not engine.is_local:  # the workers get the store itself, not a memory map of a driver file
        images = np.ascontiguousarray(images)
    work = HashBlocks(images, method, hash_size, mirror, quality_out is not None, batch_size)
    starts = list(range(0, n, batch_size))
    with threadpool_limits(1, "blas"):
        pool = 1 if workers <= 1 or n <= batch_size else workers
        results = engine.map_items(work, starts, batch_size=1, workers=pool, threads=1)
        for start, (packed, packed_m, quality) in zip(starts, results):
            stop = start + len(packed)
            out[start:stop] = packed
            if mirror:
                out_m[start:stop] = packed_m
            if quality_out is not None:
                quality_out[start:stop] = quality
    return out, out_m


def to_hex(packed: np.ndarray) -> list[str]:
    """Hex strings of packed hashes, the same text as ``str(imagehash.ImageHash)``."""
    return [row.tobytes().hex() for row in packed]
