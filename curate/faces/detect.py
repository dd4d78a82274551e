"""Face detection with landmarks: dlib's HOG frontal-face detector and 5-point shape predictor.

Pure functions on arrays: an RGB or grey uint8 image in, :class:`Face` records out, in the
image's own pixel coordinates. The weights come with the project's dependencies
(``dlib-bin`` carries the HOG detector, ``face-recognition-models`` the landmark predictor);
nothing is downloaded. A detector object is not shared between threads: :func:`detector`
keeps one per thread.
"""
from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from curate.errors import CurateError

LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
_LOCAL = threading.local()


@dataclass
class Face:
    """One detected face: box (x, y, w, h) and 5 landmarks (x, y) in original pixels.

    Landmark order is dlib's 5-point model: two corners of the image-left eye, two of the
    image-right eye, then the bottom of the nose.
    """

    x: float
    y: float
    w: float
    h: float
    score: float
    landmarks: np.ndarray = field(repr=False)

    @property
    def eyes(self) -> tuple[np.ndarray, np.ndarray]:
        """Centres of the image-left and image-right eye."""
        p = self.landmarks
        a, b = p[0:2].mean(0), p[2:4].mean(0)
        return (a, b) if a[0] <= b[0] else (b, a)

    @property
    def area(self) -> float:
        return float(self.w * self.h)


def models_dir(override: str | None = None) -> Path:
    """Folder of the landmark model file (``face-recognition-models``, or ``override``)."""
    if override:
        path = Path(override).expanduser()
    else:
        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or not spec.submodule_search_locations:
            raise CurateError("the face stage needs the package face-recognition-models "
                              "(pip install face-recognition-models); it ships the landmark model")
        path = Path(list(spec.submodule_search_locations)[0]) / "models"
    if not (path / LANDMARKS_FILE).is_file():
        raise CurateError(f"{path / LANDMARKS_FILE}: landmark model file not found")
    return path


def detector(model_dir: str | None = None):
    """(HOG detector, 5-point predictor) of this thread, loaded once per thread."""
    key = str(model_dir or "")
    cached = getattr(_LOCAL, "models", None)
    if cached is None or cached[0] != key:
        try:
            import dlib
        except ImportError:
            raise CurateError("the face stage needs dlib (pip install dlib-bin)") from None
        predictor = dlib.shape_predictor(str(models_dir(model_dir) / LANDMARKS_FILE))
        cached = (key, dlib.get_frontal_face_detector(), predictor)
        _LOCAL.models = cached
    return cached[1], cached[2]


def detect_faces(image: np.ndarray, *, max_side: int = 480, upsample: int = 1, min_score: float = -0.3,
                 model_dir: str | None = None) -> list[Face]:
    """Every face in ``image`` (uint8 grey or RGB), largest first, in original pixels.

    The image is shrunk so that its longer side is at most ``max_side`` before detection
    (HOG finds faces of about 40 px and more at ``upsample=1``); ``min_score`` is the HOG
    detector's adjust threshold (lower finds more, with more false boxes).
    """
    import dlib

    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise ValueError(f"expected a uint8 grey or RGB image, got {arr.dtype} {arr.shape}")
    if arr.ndim == 3 and arr.shape[2] != 3:
        arr = arr[..., :3]
    h, w = arr.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    small = arr
    if scale < 1.0:
        import cv2

        small = cv2.resize(arr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    small = np.ascontiguousarray(small)
    hog, predictor = detector(model_dir)
    rects, scores, _ = hog.run(small, upsample, min_score)
    faces = []
    for rect, score in zip(rects, scores):
        shape = predictor(small, rect)
        pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64) / scale
        faces.append(Face(x=rect.left() / scale, y=rect.top() / scale, w=rect.width() / scale,
                          h=rect.height() / scale, score=float(score), landmarks=pts))
    faces.sort(key=lambda f: -f.area)
    return faces


def pick_main(faces: list[Face], width: int, height: int) -> int | None:
    """Index of the main face: the largest, preferring confident boxes near the centre."""
    if not faces:
        return None
    centre = np.array([width / 2, height / 2])
    diag = float(np.hypot(width, height)) or 1.0

    def merit(f: Face) -> float:
        off = np.hypot(*(np.array([f.x + f.w / 2, f.y + f.h / 2]) - centre)) / diag
        return np.sqrt(f.area) * (1.0 + 0.25 * np.tanh(f.score)) * (1.0 - 0.5 * off)

    return int(np.argmax([merit(f) for f in faces]))
