"""Face and eye detection with the Haar cascades shipped inside opencv-python-headless.

48x48 crops are padded (edge-replicated border) and upscaled before detection, which is
where the cascades work. Results are expressed in the coordinates of the original crop.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

_LOCAL = threading.local()


def _cascade(name: str) -> cv2.CascadeClassifier:
    """The cascade ``name``, loaded once per thread (a CascadeClassifier is not safe to share between
    threads running detections side by side)."""
    cache = getattr(_LOCAL, "cascades", None)
    if cache is None:
        cache = _LOCAL.cascades = {}
    if name not in cache:
        path = cv2.data.haarcascades + name
        casc = cv2.CascadeClassifier(path)
        if casc.empty():
            raise RuntimeError(f"cannot load Haar cascade {path}")
        cache[name] = casc
    return cache[name]


@dataclass
class FaceBox:
    """Detection result for one crop (crop pixel coordinates)."""

    found: bool
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = 0.0
    weight: float = float("nan")   # cascade level weight of the best box (higher = surer)
    roll: float = float("nan")     # eye-line angle in degrees (NaN when two eyes were not found)

    def offset(self, side: int) -> tuple[float, float]:
        """Box centre minus crop centre, as a fraction of the crop side."""
        return ((self.x + self.w / 2) - side / 2) / side, ((self.y + self.h / 2) - side / 2) / side

    def scale(self, side: int) -> float:
        """Box width as a fraction of the crop side."""
        return self.w / side


def detect_face(img: np.ndarray, *, upscale: float = 2.0, border: float = 0.25, min_face: float = 0.4,
                cascade: str = "haarcascade_frontalface_alt2.xml", eyes: bool = True) -> FaceBox:
    """Best frontal face box in a grey crop and, inside it, the eye-line roll."""
    side = img.shape[0]
    b = int(round(side * border))
    padded = cv2.copyMakeBorder(np.ascontiguousarray(img), b, b, b, b, cv2.BORDER_REPLICATE)
    big = cv2.resize(padded, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_LINEAR)
    big = cv2.equalizeHist(big)
    m = int(side * upscale * min_face)
    boxes, _, weights = _cascade(cascade).detectMultiScale3(big, scaleFactor=1.1, minNeighbors=3, minSize=(m, m),
                                                            outputRejectLevels=True)
    if len(boxes) == 0:
        return FaceBox(found=False)
    k = int(np.argmax(np.asarray(weights).ravel()))
    x, y, w, h = (float(v) / upscale for v in boxes[k])
    box = FaceBox(True, x - b, y - b, w, h, float(np.asarray(weights).ravel()[k]))
    if eyes:
        box.roll = _eye_roll(big, boxes[k])
    return box


def _eye_roll(big: np.ndarray, box) -> float:
    x, y, w, h = (int(v) for v in box)
    upper = big[y:y + h * 6 // 10, x:x + w]
    if upper.size == 0:
        return float("nan")
    found = _cascade("haarcascade_eye.xml").detectMultiScale(upper, scaleFactor=1.1, minNeighbors=3,
                                                             minSize=(max(4, w // 8), max(4, w // 8)),
                                                             maxSize=(w // 2, w // 2))
    if len(found) < 2:
        return float("nan")
    centres = sorted(((ex + ew / 2, ey + eh / 2) for ex, ey, ew, eh in found), key=lambda c: c[0])
    (x1, y1), (x2, y2) = centres[0], centres[-1]
    if x2 - x1 < w * 0.2:
        return float("nan")
    return float(np.degrees(np.arctan2(y2 - y1, x2 - x1)))


def describe_box(box: FaceBox, side: int) -> str:
    """Readable evidence for a detection."""
    if not box.found:
        return "no face box found"
    dx, dy = box.offset(side)
    text = (f"face box {box.w:.0f}x{box.h:.0f} at ({box.x:.0f},{box.y:.0f}), centre offset "
            f"({dx:+.0%},{dy:+.0%}), scale {box.scale(side):.2f} of crop, detector weight {box.weight:.2f}")
    if not np.isnan(box.roll):
        text += f", eye-line roll {box.roll:+.0f} deg"
    return text
