"""The audit's per-image work on the engine (:mod:`curate.engine`).

- :class:`~curate.audit.checks_quality.ShrunkGrey`: an original decoded and shrunk for the quality
  statistics (per image; it lives with those checks);
- :func:`predict_defects`: the defect model's probabilities, in chunks of whole inference
  batches (the mirror pass picks its crops from all first-view scores, in the driver, exactly
  as :meth:`~curate.audit.defect_net.DefectModel.predict_proba` does);
- :class:`PhotoCheckChunks`: a photo check's scores for a chunk of photo rows.

With the local engine each runs in this process as the audit always ran; with a remote engine
the workers get what they need in their factory (the model once per worker, the crops, the
face stage's records) and return numbers that the driver assembles and writes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from curate.audit.base import AuditContext, Check

DEFECT_CHUNK = 4096
"""Crops per remote scoring call: a multiple of the model's inference batch (512), so every batch
holds the same crops as in one local call, and the probabilities are equal bit for bit."""


def score_chunk(check: Check, ctx: AuditContext, part: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """``check.score`` of rows ``part``; a chunk that raises is retried image by image, and an image
    that still fails gets NaN and "error: ..."."""
    try:
        s, ev = check.score(ctx, part)
        return np.asarray(s, np.float64), list(ev)
    except Exception:  # isolate the failing image(s)
        scores = np.full(len(part), np.nan)
        evidence = [""] * len(part)
        for k, r in enumerate(part):
            try:
                s, ev = check.score(ctx, np.array([r]))
                scores[k], evidence[k] = float(s[0]), ev[0]
            except Exception as exc:  # noqa: BLE001 - one bad image never sinks the run
                scores[k] = np.nan
                evidence[k] = f"error: {type(exc).__name__}: {exc}"[:300]
        return scores, evidence


# -- the defect model ---------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class DefectViews:
    """Engine factory: the model (unpickled once per worker) and the crops; an item ``(rows, mirrored)``
    -> the probabilities of ``images[rows]`` (or of their mirror images)."""

    model: Any
    images: np.ndarray

    def __call__(self):
        return self.views

    def views(self, item: tuple[np.ndarray, bool]) -> np.ndarray:
        rows, mirrored = item
        return self.model._views(np.asarray(self.images[rows]), mirrored=mirrored, quiet=True, batch_size=512)


def predict_defects(model: Any, images: np.ndarray, *, quiet: bool = True, engine=None) -> np.ndarray:
    """(N, classes) probabilities of ``model`` for ``images``, equal to ``model.predict_proba(images)``.

    Locally that call itself; on a remote engine the first view in chunks of :data:`DEFECT_CHUNK`
    crops, then (``mirror_tta``) the mirror view of the crops the driver picks from all first-view
    scores (``mirror_share``), in chunks of the picked crops, averaged as ``predict_proba`` does.
    """
    from curate.engine import get_engine

    engine = engine or get_engine()
    if engine.is_local:
        return model.predict_proba(images, quiet=quiet)
    images = np.ascontiguousarray(images)
    n = len(images)
    work = DefectViews(model, images)

    def run(rows: np.ndarray, mirrored: bool) -> np.ndarray:
        items = [(rows[s:s + DEFECT_CHUNK], mirrored) for s in range(0, len(rows), DEFECT_CHUNK)]
        parts = list(engine.map_items(work, items, batch_size=1, threads=1))
        return np.concatenate(parts) if parts else np.zeros((0, len(model.classes)), np.float32)

    out = run(np.arange(n), False)
    if not model.mirror_tta or not n:
        return out
    rows = np.arange(n)
    if model.mirror_share < 1.0:  # as DefectModel.predict_proba picks the crops worth a second view
        defect = 1.0 - out[:, list(model.classes).index("clean")] if "clean" in model.classes else out.max(1)
        floor = np.quantile(defect, 1.0 - max(model.mirror_share, 0.0))
        rows = np.flatnonzero(defect >= floor)
    if len(rows):
        out[rows] = (out[rows] + run(rows, True)) / 2
    return out


# -- photo checks ------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class PhotoCheckChunks:
    """Engine factory: a photo check (its scorers load once per worker) and the face stage's records;
    an item (a chunk of run rows) -> ``(scores, evidence, the check's state after scoring)``."""

    check_cls: type
    params: Any
    config: Any
    image_ids: list[str]
    photo: Any
    seed: int = 0

    def __call__(self):
        check = self.check_cls(self.params)
        ctx = AuditContext(images=np.zeros((0, 1, 1), np.uint8), image_ids=self.image_ids, config=self.config,
                           seed=self.seed, quiet=True, photo=self.photo)

        def one(part: np.ndarray) -> tuple[np.ndarray, list[str], dict[str, Any]]:
            scores, evidence = score_chunk(check, ctx, part)
            return scores, evidence, {k: v for k, v in vars(check).items() if k != "params"}

        return one
