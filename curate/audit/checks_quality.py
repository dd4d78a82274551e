"""Quality checks: blank, low_information, dark, light, low_contrast, blurry.

Batched over the 48x48 grey crops. When the workspace's originals are larger or colour
(``ctx.load_original`` set), the statistics are taken per image on the grey original,
shrunk so that its short side is at most ``quality_max_side`` pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from curate.audit import quality as q
from curate.audit.base import AuditContext, Check


def quality_images(ctx: AuditContext, rows: np.ndarray) -> list[np.ndarray]:
    """Batches of same-size grey images for ``rows``: one (k,48,48) batch, or one per original."""
    if ctx.load_original is None:
        return [np.asarray(ctx.images[rows])]
    cache = ctx.shared("quality_originals", lambda: {})
    limit = ctx.config.quality_max_side
    missing = [int(r) for r in rows if int(r) not in cache]
    if missing:  # decoded once per run for all six statistics, on the engine (locally: all usable cores)
        cache.update(_shrunk_originals(ctx.load_original, missing, limit))
    return [cache[int(r)][None] for r in rows]


def _shrunk_originals(load_original, rows: list[int], limit: int) -> dict[int, np.ndarray]:
    """``{row: shrunk grey original}``: files of a workspace loader (:class:`curate.audit.api.OriginalsLoader`)
    on the engine's workers, anything else (CSV pixels, another loader) in this process's threads."""
    from curate.engine import get_engine, local_engine
    from curate.threads import resolve_threads

    engine = get_engine()
    remote: list[int] = []
    if not engine.is_local and hasattr(load_original, "portable"):
        remote = [r for r in rows if load_original.location(r) is not None]
        taken = set(remote)
        rows = [r for r in rows if r not in taken]
    out: dict[int, np.ndarray] = {}
    if remote:
        out.update(zip(remote, engine.map_items(ShrunkGrey(load_original.portable(), limit), remote, batch_size=8,
                                                threads=1)))
    if rows:
        out.update(zip(rows, local_engine().map_items(ShrunkGrey(load_original, limit), rows,
                                                      workers=resolve_threads())))
    return out


@dataclass(frozen=True)
class ShrunkGrey:
    """Engine factory: row -> its grey original, short side shrunk to at most ``limit`` (picklable with a
    picklable loader, e.g. :meth:`curate.audit.api.OriginalsLoader.portable`)."""

    load_original: Callable[[int], np.ndarray]
    limit: int

    def __call__(self) -> Callable[[int], np.ndarray]:
        return self.one

    def one(self, row: int) -> np.ndarray:
        return shrink_grey(self.load_original(row), self.limit)


def shrink_grey(im: np.ndarray, limit: int) -> np.ndarray:
    """A grey version of the image ``im``, its short side shrunk to at most ``limit``."""
    if im.ndim == 3:
        im = cv2.cvtColor(np.ascontiguousarray(im[..., :3]), cv2.COLOR_RGB2GRAY)
    short = min(im.shape[:2])
    if short > limit:
        f = limit / short
        im = cv2.resize(im, (round(im.shape[1] * f), round(im.shape[0] * f)), interpolation=cv2.INTER_AREA)
    return im


class _QualityCheck(Check):
    judges_uncropped = True
    def stat(self, batch: np.ndarray) -> tuple[np.ndarray, list[str]]:
        raise NotImplementedError

    def score(self, ctx: AuditContext, rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
        scores, evidence = [], []
        for batch in quality_images(ctx, rows):
            s, e = self.stat(batch)
            scores.append(s)
            evidence += e
        return np.concatenate(scores), evidence


class Blank(_QualityCheck):
    name = "blank"
    description = "Blank or constant frame: nearly all pixels share one grey level (black, white, placeholder fill)."

    def stat(self, batch):
        hist = q.histograms(batch)
        frac = q.dominant_fraction(batch, hist)
        std = q.pixel_std(batch)
        mode = hist.argmax(axis=1).tolist()
        ev = [f"{f:.0%} of pixels within +-4 of grey {m}; pixel std {s:.1f}" for f, m, s in zip(frac, mode, std)]
        return frac.astype(np.float64), ev


class LowInformation(_QualityCheck):
    name = "low_information"
    description = "Very few distinct grey levels / low histogram entropy (placeholders, flat graphics, icons)."

    def stat(self, batch):
        bits = q.entropy_bits(batch, bins=64)
        levels = q.distinct_levels(batch)
        ev = [f"histogram entropy {b:.2f} of 6 bits; {n} distinct grey levels" for b, n in zip(bits, levels)]
        return 1.0 - bits / 6.0, ev


class Dark(_QualityCheck):
    name = "dark"
    description = "Too dark: even the brightest 5% of pixels are dim (score = 1 - p95/255)."

    def stat(self, batch):
        p95 = q.percentiles(batch, (95,))[:, 0]
        return 1.0 - p95 / 255.0, [f"95th percentile grey {v:.0f} of 255" for v in p95]


class Light(_QualityCheck):
    name = "light"
    description = "Too light / washed out: even the darkest 5% of pixels are bright (score = p5/255)."

    def stat(self, batch):
        p5 = q.percentiles(batch, (5,))[:, 0]
        return p5 / 255.0, [f"5th percentile grey {v:.0f} of 255" for v in p5]


class LowContrast(_QualityCheck):
    name = "low_contrast"
    description = "Low contrast: the 2nd-98th percentile grey range is narrow (score = 1 - range/255)."

    def stat(self, batch):
        p = q.percentiles(batch, (2, 98))
        rng = p[:, 1] - p[:, 0]
        return 1.0 - rng / 255.0, [f"grey range p2-p98 {a:.0f}-{b:.0f} ({r:.0f} levels)" for a, b, r in zip(p[:, 0], p[:, 1], rng)]


class Blurry(_QualityCheck):
    name = "blurry"
    description = ("Blurry: little high-frequency detail relative to the image's own contrast "
                   "(score = 1 - sharpness/reference, sharpness = std(Laplacian)/(std+4)).")

    def stat(self, batch):
        sharp = q.sharpness(batch)
        ref = self.params.reference_sharpness
        return 1.0 - np.minimum(sharp / ref, 1.0), [f"sharpness {v:.3f} (reference {ref:g})" for v in sharp]


QUALITY_CHECKS = (Blank, LowInformation, Dark, Light, LowContrast, Blurry)
