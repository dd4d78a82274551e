"""Learned checks: non_face, misaligned, watermark, cartoon, occlusion.

All five read one shared :class:`~curate.audit.defect_net.DefectModel`, obtained once per run
(by default the model bundled with the package, adapted to the workspace only when that helps;
see :func:`~curate.audit.defect_model.defect_model_for`); the score is the model's probability
for the check's class. Rows whose score reaches ``evidence_min`` (a fraction of the threshold)
also get detector evidence: a Haar face box (offset, scale, eye-line roll) or the largest
text-like stroke region, so a reviewer can see why an image was flagged.
"""
from __future__ import annotations

import cv2
import numpy as np

from curate.audit.base import AuditContext, Check
from curate.audit.defect_model import defect_model_for
from curate.audit.engine_work import predict_defects
from curate.audit.faces import FaceBox, describe_box, detect_face
from curate.errors import CurateError


def defect_probs(ctx: AuditContext) -> np.ndarray:
    """(N, classes) defect-model probabilities for every image of the run (computed once).

    A model that cannot be had (a missing or corrupt weights file, a bad ``model.*`` setting)
    raises the same CurateError on every later call without retrying.
    """
    failed = ctx.cache.get("defect_model_error")
    if failed is not None:
        raise failed

    def compute():
        # what the model learns as "clean" comes only from real face crops (photos the face
        # stage found no face in are left out), and it scores every image
        clean = ctx.images if ctx.photo is None else np.asarray(ctx.images)[ctx.crop_rows]
        model = ctx.shared("defect_model", lambda: defect_model_for(clean, ctx.config.model,
                                                                   seed=ctx.seed, quiet=ctx.quiet))
        return predict_defects(model, ctx.images, quiet=ctx.quiet)  # on the engine (locally: predict_proba)

    try:
        return ctx.shared("defect_probs", compute)
    except CurateError as exc:
        ctx.cache["defect_model_error"] = exc
        raise


def _detect_box(ctx: AuditContext, row: int) -> FaceBox:
    """Haar face box of one crop with the audit's detector settings (uncached)."""
    p = ctx.config.detector
    return detect_face(np.asarray(ctx.images[row]), upscale=p.upscale, border=p.border, min_face=p.min_face)


def face_box(ctx: AuditContext, row: int) -> FaceBox:
    """Haar face box of one crop (cached per run)."""
    cache = ctx.cache.setdefault("face_boxes", {})
    if row not in cache:
        cache[row] = _detect_box(ctx, row)
    return cache[row]


def face_boxes(ctx: AuditContext, rows: np.ndarray) -> None:
    """Detect the Haar face boxes of ``rows`` not yet cached, side by side on curate's threads (one OpenCV
    thread each: a detection on a 144 px image parallelises poorly inside OpenCV; measured 1.5x faster
    on 2 cores). Each box is what :func:`face_box` computes for that row alone."""
    from concurrent.futures import ThreadPoolExecutor

    from curate.threads import resolve_threads

    cache = ctx.cache.setdefault("face_boxes", {})
    todo = [int(r) for r in np.unique(np.asarray(rows, np.int64)) if int(r) not in cache]
    workers = min(resolve_threads(), len(todo) // 16)
    if workers < 2:
        return  # few rows: face_box detects them one by one
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:  # OpenCV releases the GIL while detecting
            for row, box in zip(todo, pool.map(lambda r: _detect_box(ctx, r), todo, chunksize=64)):
                cache[row] = box
    finally:
        cv2.setNumThreads(previous)


def text_region(img: np.ndarray, min_contrast: int = 40) -> str:
    """Largest thin-stroke (text-like) region of a crop, as readable text."""
    img = np.ascontiguousarray(img)
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
    strokes = np.maximum(cv2.morphologyEx(img, cv2.MORPH_TOPHAT, k), cv2.morphologyEx(img, cv2.MORPH_BLACKHAT, k))
    mask = (strokes >= min_contrast).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (5, 3)))
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return "no text-like strokes"
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h, area = (int(v) for v in stats[best])
    return f"text-like region {w}x{h} at ({x},{y}), {area} stroke px"


class _LearnedCheck(Check):
    cls_name = ""
    setup_error: CurateError | None = None
    uses_face_box = False
    """True when :meth:`evidence` reads the Haar face box (detected for all such rows at once first)."""

    def _column(self, ctx: AuditContext) -> int:
        return list(ctx.shared("defect_model", lambda: None).classes).index(self.cls_name)

    def score(self, ctx: AuditContext, rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
        try:
            probs = defect_probs(ctx)
        except CurateError as exc:
            self.setup_error = exc
            raise
        scores = probs[rows, self._column(ctx)].astype(np.float64)
        scores = self.adjust(ctx, rows, scores)
        need = scores >= self.params.evidence_min * self.threshold
        if self.uses_face_box:
            face_boxes(ctx, rows[need])
        evidence = [self.evidence(ctx, int(r), float(s)) if n else f"model p={s:.2f}"
                    for r, s, n in zip(rows, scores, need)]
        return scores, evidence

    def flag(self, scores: np.ndarray) -> np.ndarray:
        # The run isolates failing images (an unreadable image gets an "error:" row); a model that
        # cannot be loaded is no image's fault, so it stops the run here, with its own message.
        if self.setup_error is not None:
            raise self.setup_error
        return super().flag(scores)

    def adjust(self, ctx: AuditContext, rows: np.ndarray, scores: np.ndarray) -> np.ndarray:
        return scores

    def evidence(self, ctx: AuditContext, row: int, score: float) -> str:
        return f"model p={score:.2f}"


FUSION_FEATURES = ("model_logit", "low_information", "blank")
"""Inputs of the non_face fusion, in order: logit of the (detector-adjusted) model probability and the
low_information and blank scores of the crop."""


def non_face_features(model_scores: np.ndarray, crops: np.ndarray) -> np.ndarray:
    """(N, 3) fusion inputs (:data:`FUSION_FEATURES`) for model scores and their uint8 crops."""
    from curate.audit import quality as q

    p = np.clip(np.asarray(model_scores, np.float64), 1e-9, 1 - 1e-9)
    crops = np.asarray(crops)
    return np.stack([np.log(p / (1 - p)), 1.0 - q.entropy_bits(crops, bins=64) / 6.0,
                     q.dominant_fraction(crops).astype(np.float64)], axis=1)


def fuse_non_face(features: np.ndarray, weights: dict) -> np.ndarray:
    """Logistic fusion: sigmoid(bias + sum of weight x feature)."""
    z = float(weights.get("bias", 0.0)) + features @ np.array([float(weights[k]) for k in FUSION_FEATURES])
    return 1.0 / (1.0 + np.exp(-z))


class NonFace(_LearnedCheck):
    name = "non_face"
    cls_name = "non_face"
    judges_photos = False
    uses_face_box = True
    description = ("Face crops: the crop is not a face (object, texture, scenery, placeholder, sign); photos are "
                   "judged by no_face instead. The defect model's probability, "
                   "lowered where OpenCV's Haar detector finds a face filling the crop (among the highest-scored "
                   "face_check_share), then fused with the crop's low_information and blank statistics by a "
                   "logistic model fitted on the benchmark's tuning half (fusion_weights; fusion: false = the "
                   "model alone).")

    def adjust(self, ctx, rows, scores):
        scores = self._detector(ctx, rows, scores)
        if not self.params.fusion or len(scores) == 0:
            return scores
        features = non_face_features(scores, np.asarray(ctx.images[rows]))
        return fuse_non_face(features, self.params.fusion_weights)

    def _detector(self, ctx, rows, scores):
        factor, share = self.params.face_found_factor, self.params.face_check_share
        if factor >= 1.0 or share <= 0 or len(scores) == 0:
            return scores
        all_scores = np.asarray(defect_probs(ctx)[:, self._column(ctx)], np.float64)
        floor = np.quantile(all_scores, 1.0 - share)  # the same candidates whatever the chunking
        out = scores.copy()
        face_boxes(ctx, rows[scores >= floor])
        for i in np.flatnonzero(scores >= floor):
            box = face_box(ctx, int(rows[i]))
            if box.found and box.scale(ctx.images.shape[1]) >= self.params.face_min_scale:
                out[i] = scores[i] * factor
        return out

    def evidence(self, ctx, row, score):
        box = face_box(ctx, row)
        if not box.found:
            return f"no face found by the Haar cascade; model p={score:.2f}"
        return f"{describe_box(box, ctx.images.shape[1])}; model p={score:.2f}"


class _FaceBoxEvidence:
    """Evidence of a check judged on the face's position: the Haar face box (offset, scale, eye-line roll)."""

    uses_face_box = True

    def evidence(self, ctx, row, score):
        return f"{describe_box(face_box(ctx, row), ctx.images.shape[1])}; model p={score:.2f}"


class Misaligned(_FaceBoxEvidence, _LearnedCheck):
    name = "misaligned"
    cls_name = "misaligned"
    description = ("Face shifted, wrongly scaled, rotated or cut off in the crop: defect-model probability; evidence "
                   "gives the Haar face box offset/scale and the eye-line roll from the eye cascade.")


class Watermark(_LearnedCheck):
    name = "watermark"
    cls_name = "watermark"
    description = "Text or logo overlay (watermark, caption, stamp): defect-model probability; evidence locates strokes."

    def evidence(self, ctx, row, score):
        return f"{text_region(np.asarray(ctx.images[row]))}; model p={score:.2f}"


class Cartoon(_LearnedCheck):
    name = "cartoon"
    cls_name = "cartoon"
    description = ("Cartoon, drawing, sketch or clip-art instead of a photo: defect-model probability "
                   "(flat regions, few grey levels, inked edges).")

    def evidence(self, ctx, row, score):
        img = np.asarray(ctx.images[row])
        levels = np.unique(img).size
        return f"{levels} distinct grey levels; model p={score:.2f}"


class Occlusion(_FaceBoxEvidence, _LearnedCheck):
    name = "occlusion"
    cls_name = "occlusion"
    description = ("Hand or object over the face: defect-model probability learnt from synthetic hand-shaped "
                   "occluders (no hand/landmark model ships in the installed packages).")


LEARNED_CHECKS = (NonFace, Misaligned, Watermark, Cartoon, Occlusion)
