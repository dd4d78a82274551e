"""Overlaid text found by a learned text detector, as image-level features of a photo.

The detector is PaddleOCR's PP-OCRv4 DB text detector (ONNX, 4.7 MB, Apache-2.0, bundled as
``curate/faces/models/ppocr-v4-det.onnx``; see the NOTICE there) run with onnxruntime on the
CPU: it maps a photo to a per-pixel "text here" probability. Stock-photo marks, site logos
and URLs that the hand-made stroke statistics of :mod:`curate.faces.features` miss (faint,
tiled, small) show up in it as boxes; their count, size, position and strength feed the
``watermark`` check (:data:`TEXT_DETECTOR_FEATURES`).

- :func:`detector_input` and :func:`text_boxes` / :func:`text_box_features` are pure
  (arrays in, arrays or numbers out);
- :func:`load_session` reads the model file (cached per path, one thread per run call, so
  the face stage's worker threads share one session);
- :func:`detect_text` runs the whole thing on one photo: the features and the boxes in the
  photo's pixels (``text_boxes.parquet``, drawn in the report and the App).
"""
from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from curate.errors import CurateError

BUNDLED_MODEL = Path(__file__).resolve().parent / "models" / "ppocr-v4-det.onnx"

TEXT_DETECTOR_FEATURES: tuple[str, ...] = (
    "text_det_boxes", "text_det_area", "text_det_largest", "text_det_widest", "text_det_max_score",
    "text_det_mean_score", "text_det_centre", "text_det_centre_area", "text_det_edge", "text_det_bottom",
    "text_det_corner", "text_det_vertical", "text_det_similar", "text_det_prob_mean", "text_det_faint_share",
)
"""Columns of photo_features.parquet written from the text detector (NaN when it is off or failed)."""

BINARY_THRESHOLD = 0.3
"""A pixel is text when its probability reaches this (the detector's own post-processing value)."""
BOX_THRESHOLD = 0.5
"""A connected text region is kept when its mean probability reaches this."""
UNCLIP_RATIO = 1.6
"""The detector predicts shrunken text cores; boxes grow by area * ratio / perimeter."""

_SESSIONS: dict[str, object] = {}
_LOCK = threading.Lock()


def load_session(model: str | Path | None = None):
    """The onnxruntime session of ``model`` (default: the bundled detector), cached per path."""
    path = Path(model) if model else BUNDLED_MODEL
    key = str(path.resolve())
    with _LOCK:
        if key not in _SESSIONS:
            if not path.is_file():
                raise CurateError(f"{path}: text detector model not found")
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            try:
                _SESSIONS[key] = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
            except Exception as exc:  # noqa: BLE001 - a file that is not an ONNX model
                raise CurateError(f"{path}: not a loadable ONNX model ({type(exc).__name__}: {exc})"[:300]) from None
        return _SESSIONS[key]


def text_detector_side(shape: tuple[int, int], side: int, enlarge: float) -> int:
    """The longer side the detector sees for a photo of ``shape`` (H, W): its own longer side
    times ``enlarge``, at most ``side`` and at least 64 px. Small web photos are seen near their
    own size instead of being blown up to ``side`` (the detector's cost grows with the area)."""
    return int(max(64, min(side, round(max(shape) * enlarge))))


def detector_input(rgb: np.ndarray, side: int) -> np.ndarray:
    """(1, 3, H, W) float32 input: the photo resized so its longer side is ``side`` (both sides
    rounded to multiples of 32, as the detector needs), BGR, scaled to [-1, 1]."""
    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    nh, nw = (max(32, int(round(v * scale / 32)) * 32) for v in (h, w))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    img = cv2.resize(np.ascontiguousarray(rgb[..., :3]), (nw, nh), interpolation=interp)
    x = img[..., ::-1].astype(np.float32) * (2.0 / 255.0) - 1.0
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def text_boxes(prob: np.ndarray, *, threshold: float = BINARY_THRESHOLD, box_threshold: float = BOX_THRESHOLD,
               unclip_ratio: float = UNCLIP_RATIO, min_side: int = 3) -> np.ndarray:
    """Text boxes of a (H, W) probability map: (K, 5) rows ``x, y, w, h, score`` in map pixels.

    Pixels at or above ``threshold`` are joined (a 2x2 dilation, then 8-connected regions);
    a region is kept when its mean probability reaches ``box_threshold`` and its box is at
    least ``min_side`` px on both sides, then grown by ``unclip_ratio`` (the detector's DB
    post-processing, with axis-aligned boxes)."""
    prob = np.asarray(prob, np.float32)
    mask = cv2.dilate((prob >= threshold).astype(np.uint8), np.ones((2, 2), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return np.zeros((0, 5))
    sums = np.bincount(labels.ravel(), weights=prob.ravel(), minlength=n)[1:]
    x, y, w, h, area = (stats[1:, k].astype(np.float64) for k in range(5))
    score = sums / np.maximum(area, 1)
    keep = (score >= box_threshold) & (w >= min_side) & (h >= min_side)
    x, y, w, h, score = x[keep], y[keep], w[keep], h[keep], score[keep]
    grow = w * h * unclip_ratio / np.maximum(2 * (w + h), 1)
    H, W = prob.shape
    x0, y0 = np.maximum(x - grow, 0), np.maximum(y - grow, 0)
    x1, y1 = np.minimum(x + w + grow, W), np.minimum(y + h + grow, H)
    return np.stack([x0, y0, x1 - x0, y1 - y0, score], axis=1)


def text_box_features(prob: np.ndarray, boxes: np.ndarray) -> dict[str, float]:
    """:data:`TEXT_DETECTOR_FEATURES` of a probability map and its :func:`text_boxes`: how many
    boxes, how much of the photo they cover, how strong, and where (centre, edges, bottom strip,
    corners), vertical runs (IDs along an edge) and repeated same-size boxes (tiled marks).
    Areas are fractions of the photo, positions fractions of its sides."""
    prob = np.asarray(prob, np.float32)
    H, W = prob.shape
    total = float(H * W) or 1.0
    feats = {name: 0.0 for name in TEXT_DETECTOR_FEATURES}
    feats["text_det_prob_mean"] = float(prob.mean()) if prob.size else 0.0
    feats["text_det_faint_share"] = float(((prob >= 0.1) & (prob < BINARY_THRESHOLD)).mean()) if prob.size else 0.0
    if len(boxes) == 0:
        return feats
    x, y, w, h, score = (boxes[:, k] for k in range(5))
    area = w * h / total
    cx, cy = (x + w / 2) / W, (y + h / 2) / H
    centre = (cx > 0.2) & (cx < 0.8) & (cy > 0.25) & (cy < 0.75)
    edge = (cx < 0.12) | (cx > 0.88) | (cy < 0.12) | (cy > 0.88)
    corners = [((cx < 0.3) if left else (cx > 0.7)) & ((cy < 0.2) if top else (cy > 0.8))
               for left in (True, False) for top in (True, False)]
    similar = 0
    if len(boxes) >= 2:
        rw = np.abs(w[:, None] / w[None, :] - 1) < 0.2
        rh = np.abs(h[:, None] / h[None, :] - 1) < 0.2
        same = rw & rh
        np.fill_diagonal(same, False)
        similar = int(same.any(1).sum())
    feats.update(
        text_det_boxes=float(len(boxes)), text_det_area=float(min(area.sum(), 1.0)), text_det_largest=float(area.max()),
        text_det_widest=float((w / W).max()), text_det_max_score=float(score.max()),
        text_det_mean_score=float(np.average(score, weights=area)), text_det_centre=float(centre.sum()),
        text_det_centre_area=float(area[centre].sum()), text_det_edge=float(edge.sum()),
        text_det_bottom=float((cy > 0.85).sum()), text_det_corner=float(max(c.sum() for c in corners)),
        text_det_vertical=float(((h > 1.5 * w) & (h / H > 0.05)).sum()), text_det_similar=float(similar))
    return feats


def text_probability(rgb: np.ndarray, side: int, model: str | Path | None = None) -> np.ndarray:
    """The detector's (H, W) text probability map of a photo seen at ``side`` px."""
    session = load_session(model)
    x = detector_input(rgb, side)
    out = session.run(None, {session.get_inputs()[0].name: x})[0]
    return np.asarray(out, np.float32).reshape(out.shape[-2:])


MAX_BOXES = 64
"""At most this many text boxes per photo are kept for display (the largest); the features count all."""


def text_detector_features(rgb: np.ndarray, side: int, model: str | Path | None = None) -> dict[str, float]:
    """:data:`TEXT_DETECTOR_FEATURES` of one RGB photo, its longer side seen at ``side`` px."""
    return detect_text(rgb, side, model)[0]


def detect_text(rgb: np.ndarray, side: int, model: str | Path | None = None) -> tuple[dict[str, float], np.ndarray]:
    """(:data:`TEXT_DETECTOR_FEATURES`, the (K, 5) boxes ``x, y, w, h, score`` in the photo's own
    pixels, at most :data:`MAX_BOXES`, largest first) of one RGB photo seen at ``side`` px."""
    prob = text_probability(rgb, side, model)
    boxes = text_boxes(prob)
    feats = text_box_features(prob, boxes)
    return feats, to_photo_pixels(boxes, prob.shape, rgb.shape[:2])


def to_photo_pixels(boxes: np.ndarray, map_shape: tuple[int, int], photo_shape: tuple[int, int]) -> np.ndarray:
    """Boxes of a probability map of ``map_shape`` as boxes of the photo (``photo_shape`` = (H, W)),
    the :data:`MAX_BOXES` largest, largest first."""
    if len(boxes) == 0:
        return np.zeros((0, 5))
    sy, sx = photo_shape[0] / map_shape[0], photo_shape[1] / map_shape[1]
    out = boxes * np.array([sx, sy, sx, sy, 1.0])
    order = np.argsort(-(out[:, 2] * out[:, 3]), kind="stable")[:MAX_BOXES]
    return out[order]


def missing_features() -> dict[str, float]:
    """The text detector's columns when it is off or failed (NaN: not measured)."""
    return {name: float("nan") for name in TEXT_DETECTOR_FEATURES}
