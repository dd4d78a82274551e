"""One photo through the face stage: detect, pick the main face, align, describe.

:func:`process_photo` is pure (an image array in, a :class:`PhotoResult` out) so that ingest
(which has the decoded original in hand) and ``curate faces`` (which re-decodes it) share it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from curate.faces.align import align, centre_square, roll_degrees
from curate.faces.detect import Face, find_faces, pick_main
from curate.faces.features import TEXT_SIDE, resize_max, art_features, face_features, face_region_features, text_features
from curate.faces.text_detect import detect_text, missing_features, text_detector_side

if TYPE_CHECKING:
    from curate.settings import FacesSettings


WORK_SIDE = TEXT_SIDE
"""Longer side of the working copy the whole-photo steps share (the text statistics' own side)."""


@dataclass
class PhotoResult:
    """What the face stage found in one photo."""

    width: int
    height: int
    faces: list[Face] = field(default_factory=list)
    main: int | None = None
    grey: np.ndarray | None = None
    rgb: np.ndarray | None = None
    features: dict[str, float] = field(default_factory=dict)
    text_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 5)))   # x, y, w, h, score (photo px)
    status: str = "ok"          # ok | no_face | error
    detail: str = ""
    seconds: float = 0.0


def as_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) view of a grey or RGB(A) array."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=2)
    return np.ascontiguousarray(arr[..., :3])


def _detected_text(rgb: np.ndarray, p: FacesSettings, res: PhotoResult) -> dict[str, float]:
    """The text detector's features (NaN when off; NaN and a note in ``res.detail`` when it fails:
    the photo keeps its faces and other features); its boxes go to ``res.text_boxes``."""
    if p.text_detector_side <= 0:
        return missing_features()
    try:
        side = text_detector_side(rgb.shape[:2], p.text_detector_side, p.text_detector_enlarge)
        feats, res.text_boxes = detect_text(rgb, side, p.text_detector_model)
        return feats
    except Exception as exc:  # noqa: BLE001 - the detector failing never loses the faces
        res.detail = f"{res.detail}; text detector error: {type(exc).__name__}: {exc}"[:300]
        return missing_features()


def process_photo(image: np.ndarray, *, size: int, params: FacesSettings) -> PhotoResult:
    """Detect every face, align the main one (grey ``size`` and colour ``params.rgb_size`` crops) and
    compute the image-level features. Never raises for a bad image: status "error" instead.
    ``params``: the ``faces`` section of the ingest settings (configs/ingest.yaml)."""
    p = params
    t0 = time.perf_counter()
    rgb = as_rgb(image)
    h, w = rgb.shape[:2]
    res = PhotoResult(width=w, height=h)
    try:
        # one copy at most WORK_SIDE px for every step that looks at the whole photo smaller than that
        # (detectors, colour/texture and text statistics): large photos are shrunk once, not four times
        work = resize_max(rgb, WORK_SIDE)
        back = w / work.shape[1]
        res.faces = find_faces(work, detector=p.detector, mtcnn_side=p.mtcnn_side, mtcnn_min_face=p.mtcnn_min_face,
                               mtcnn_min_width=p.mtcnn_min_original / back,
                               mtcnn_min_score=p.mtcnn_min_score, mtcnn_pad_retry=p.mtcnn_pad_retry,
                               fallback=p.fallback, max_side=p.max_side, upsample=p.upsample, min_score=p.min_score,
                               max_enlarge=p.max_enlarge, rotations=p.rotations, model_dir=p.model_dir)
        if back != 1.0:
            for f in res.faces:
                f.x, f.y, f.w, f.h, f.landmarks = f.x * back, f.y * back, f.w * back, f.h * back, f.landmarks * back
        res.main = pick_main(res.faces, w, h)
        rgb_size = p.rgb_size
        if res.main is None:
            res.status, res.detail = "no_face", "no face found"
            colour = centre_square(rgb, rgb_size)
            grey_src = centre_square(rgb, size)
        else:
            left, right = res.faces[res.main].eyes
            colour = align(rgb, left, right, rgb_size)
            grey_src = align(rgb, left, right, size)
            res.detail = f"{len(res.faces)} face(s); main roll {roll_degrees(left, right):+.0f} deg"
        res.rgb = colour
        res.grey = (grey_src.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).round().astype(np.uint8)
        main = res.faces[res.main] if res.main is not None else None
        res.features = {**face_features(res.faces, res.main, w, h), **face_region_features(rgb, main),
                        **art_features(work), **text_features(work), **_detected_text(work, p, res)}
        if back != 1.0 and len(res.text_boxes):
            res.text_boxes = res.text_boxes * np.array([back, back, back, back, 1.0])
    except Exception as exc:  # noqa: BLE001 - one bad image never sinks the run
        res.status, res.detail = "error", f"error: {type(exc).__name__}: {exc}"[:300]
        res.faces, res.main = [], None
        res.rgb = centre_square(rgb, p.rgb_size) if rgb.size else np.zeros((p.rgb_size,) * 2 + (3,), np.uint8)
        res.grey = res.rgb.mean(2).astype(np.uint8) if res.grey is None else res.grey
        if res.grey.shape != (size, size):
            import cv2

            res.grey = cv2.resize(res.grey, (size, size), interpolation=cv2.INTER_AREA)
    res.seconds = time.perf_counter() - t0
    return res
