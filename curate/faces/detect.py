"""Face detection with landmarks: MTCNN (the default, :mod:`curate.faces.mtcnn`), and dlib's
HOG frontal-face detector with its 5-point shape predictor (the fallback, or the detector).

Pure functions on arrays: an RGB or grey uint8 image in, :class:`Face` records out, in the
image's own pixel coordinates. The weights come with the project (MTCNN's, bundled) or its
dependencies (``dlib-bin`` carries the HOG detector, ``face-recognition-models`` the landmark
predictor); nothing is downloaded. A dlib object is not shared between threads:
:func:`detector` keeps one per thread.
"""
from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from curate.errors import CurateError

LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
MMOD_FILE = "mmod_human_face_detector.dat"
_LOCAL = threading.local()


@dataclass
class Face:
    """One detected face: box (x, y, w, h) and 5 landmarks (x, y) in original pixels.

    Landmarks come from dlib's 5-point model whichever ``detector`` ("mtcnn" or "hog") found
    the box: two corners of the image-left eye, two of the image-right eye, then the bottom of
    the nose (the model FER2013's framing was measured with). ``score``: MTCNN's face
    probability (0-1), or the HOG detector's margin (about -1..3).
    """

    x: float
    y: float
    w: float
    h: float
    score: float
    landmarks: np.ndarray = field(repr=False)
    detector: str = "hog"

    @property
    def eyes(self) -> tuple[np.ndarray, np.ndarray]:
        """Centres of the image-left and image-right eye."""
        p = self.landmarks
        a, b = p[0:2].mean(0), p[2:4].mean(0)
        return (a, b) if a[0] <= b[0] else (b, a)

    @property
    def nose(self) -> np.ndarray:
        return self.landmarks[4]

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


def find_faces(image: np.ndarray, *, detector: str = "mtcnn", mtcnn_side: int = 640, mtcnn_min_face: float = 15.0,
               mtcnn_min_width: float = 0.0, mtcnn_min_score: float = 0.85, mtcnn_pad_retry: float = 0.0,
               fallback: str = "hog", **hog) -> list[Face]:
    """Every face in ``image`` (uint8 grey or RGB), largest first, in original pixels.

    ``detector="mtcnn"``: MTCNN on the image shrunk to ``mtcnn_side`` px (longer side; never
    enlarged), faces of at least ``mtcnn_min_face`` px there and face probability
    ``mtcnn_min_score``, and never narrower than ``mtcnn_min_width`` px of ``image`` itself (faces too
    small to be used are not looked for: the image pyramid starts smaller); when it finds none and
    ``mtcnn_pad_retry`` > 0, MTCNN again on the image framed by a grey border of that fraction of its
    longer side (close-ups whose face fills or overflows the frame have no context around the face
    otherwise, and MTCNN misses them);
    when that finds none either, ``fallback``: ``"hog"`` (:func:`detect_faces` with
    the ``hog`` keyword arguments), ``"mmod"`` (HOG, then dlib's CNN detector) or ``"none"``.
    ``detector="hog"``: :func:`detect_faces` alone (its own ``fallback``: ``none`` or ``mmod``).
    """
    if detector not in ("mtcnn", "hog"):
        raise ValueError(f"unknown face detector {detector!r} (mtcnn or hog)")
    faces = []
    if detector == "mtcnn":
        faces = mtcnn_faces(image, side=mtcnn_side, min_face=mtcnn_min_face, min_width=mtcnn_min_width,
                            min_score=mtcnn_min_score, model_dir=hog.get("model_dir"))
        if not faces and mtcnn_pad_retry > 0:
            faces = _padded_mtcnn_faces(image, mtcnn_pad_retry, side=mtcnn_side, min_face=mtcnn_min_face,
                                        min_width=mtcnn_min_width, min_score=mtcnn_min_score,
                                        model_dir=hog.get("model_dir"))
        if faces or fallback == "none":
            return faces
    return detect_faces(image, fallback="mmod" if fallback == "mmod" else "none", **hog)


def mtcnn_faces(image: np.ndarray, *, side: int = 640, min_face: float = 15.0, min_width: float = 0.0,
                min_score: float = 0.85, model_dir: str | None = None) -> list[Face]:
    """MTCNN's faces of probability >= ``min_score`` in ``image``, largest first, in its pixels,
    with dlib's 5 landmarks placed in each MTCNN box (the same landmarks as HOG faces get).
    Faces are looked for from ``min_face`` px of the shrunk image or ``min_width`` px of ``image``,
    whichever is larger."""
    import cv2
    import dlib

    from curate.faces.mtcnn import detect_mtcnn

    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise ValueError(f"expected a uint8 grey or RGB image, got {arr.dtype} {arr.shape}")
    h, w = arr.shape[:2]
    scale = min(1.0, side / max(h, w))
    small = arr if scale >= 1.0 else cv2.resize(arr, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                interpolation=cv2.INTER_AREA)
    small = np.ascontiguousarray(small)
    found = detect_mtcnn(small, min_face=max(float(min_face), float(min_width) * scale))
    _, predictor = detector(model_dir)
    faces = []
    for (x, y, bw, bh), score in zip(found.boxes, found.scores):
        if score < min_score:
            continue
        # dlib's predictor was trained on HOG boxes: square, a little lower and wider than MTCNN's
        # (medians over 162 faces both found: same centre x, centre y + 0.045 h, side 1.088 w).
        cx, cy, half = x + bw / 2, y + bh * 0.545, 0.544 * bw
        shape = predictor(small, dlib.rectangle(int(round(cx - half)), int(round(cy - half)),
                                                int(round(cx + half)), int(round(cy + half))))
        pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
        faces.append(Face(x=x / scale, y=y / scale, w=bw / scale, h=bh / scale, score=float(score),
                          landmarks=pts / scale, detector="mtcnn"))
    faces.sort(key=lambda f: -f.area)
    return faces


CLOSE_UP_MIN_SHARE = 0.3
"""The grey-frame retry looks only for faces at least this share of the photo's shorter side wide
(close-ups: the faces it exists for), which keeps its image pyramid short."""


def _padded_mtcnn_faces(image: np.ndarray, fraction: float, *, side: int = 640, min_face: float = 15.0,
                        min_width: float = 0.0, **kwargs) -> list[Face]:
    """:func:`mtcnn_faces` of ``image`` framed by a mid-grey border of ``fraction`` of its longer
    side, looking for faces of at least :data:`CLOSE_UP_MIN_SHARE` of its shorter side; boxes and
    landmarks moved back to the image's own pixels (they may reach past its edges)."""
    import cv2

    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    h, w = arr.shape[:2]
    pad = int(round(fraction * max(h, w)))
    framed = cv2.copyMakeBorder(np.ascontiguousarray(arr[..., :3]), pad, pad, pad, pad, cv2.BORDER_CONSTANT,
                                value=(127, 127, 127))
    shrink = min(1.0, side / max(framed.shape[:2]))
    close_up = max(float(min_face), float(min_width) * shrink, CLOSE_UP_MIN_SHARE * min(h, w) * shrink)
    faces = mtcnn_faces(framed, side=side, min_face=close_up, **kwargs)
    for f in faces:
        f.x, f.y = f.x - pad, f.y - pad
        f.landmarks = f.landmarks - pad
    return faces


def detect_faces(image: np.ndarray, *, max_side: int = 480, upsample: int = 1, min_score: float = -0.5,
                 max_enlarge: float = 2.0, rotations: tuple[float, ...] = (), fallback: str = "none",
                 model_dir: str | None = None) -> list[Face]:
    """Every face dlib's HOG detector finds in ``image`` (uint8 grey or RGB), largest first, in
    original pixels.

    The image is resized so that its longer side is ``max_side`` before detection (shrunk,
    or enlarged up to ``max_enlarge`` times for small web images, whose faces are often
    30-40 px); HOG finds faces of about 40 px of that size at ``upsample=1``, i.e. faces
    from about 1/12 of the longer side down to ~20 px in small images. ``min_score`` is the
    HOG detector's adjust threshold (lower finds more, with more false boxes).

    When nothing is found, the image is tried again turned by each of ``rotations``
    (degrees; HOG misses tilted heads), then, with ``fallback="mmod"``, by dlib's CNN face
    detector (finds turned, tilted and half-hidden faces; about a second per image on a CPU).
    """
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise ValueError(f"expected a uint8 grey or RGB image, got {arr.dtype} {arr.shape}")
    if arr.ndim == 3 and arr.shape[2] != 3:
        arr = arr[..., :3]
    h, w = arr.shape[:2]
    scale = min(float(max_enlarge), max_side / max(h, w))
    small = arr
    if scale != 1.0:
        import cv2

        small = cv2.resize(arr, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    small = np.ascontiguousarray(small)
    hog, predictor = detector(model_dir)
    faces = _hog_faces(small, hog, predictor, upsample, min_score, scale)
    for angle in rotations:
        if faces:
            break
        faces = _hog_faces(small, hog, predictor, upsample, min_score, scale, angle=float(angle))
    if not faces and fallback == "mmod":
        faces = _mmod_faces(arr, predictor, model_dir)
    faces.sort(key=lambda f: -f.area)
    return faces


def _hog_faces(small: np.ndarray, hog, predictor, upsample: int, min_score: float, scale: float,
               angle: float = 0.0) -> list[Face]:
    """HOG faces of ``small`` (turned by ``angle`` degrees first), mapped to original pixels."""
    import cv2

    img, back = small, None
    if angle:
        h, w = small.shape[:2]
        rot = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        img = np.ascontiguousarray(cv2.warpAffine(small, rot, (w, h), borderMode=cv2.BORDER_REPLICATE))
        back = cv2.invertAffineTransform(rot)
    rects, scores, _ = hog.run(img, upsample, min_score)
    return [_to_face(rect, float(score), predictor(img, rect), scale, back) for rect, score in zip(rects, scores)]


def _to_face(rect, score: float, shape, scale: float, back: np.ndarray | None) -> Face:
    pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
    corners = np.array([(rect.left(), rect.top()), (rect.right(), rect.top()), (rect.left(), rect.bottom()),
                        (rect.right(), rect.bottom())], dtype=np.float64)
    if back is not None:
        pts = pts @ back[:, :2].T + back[:, 2]
        corners = corners @ back[:, :2].T + back[:, 2]
    x0, y0 = corners.min(0)
    x1, y1 = corners.max(0)
    return Face(x=x0 / scale, y=y0 / scale, w=(x1 - x0) / scale, h=(y1 - y0) / scale, score=score,
                landmarks=pts / scale)


def _mmod_faces(arr: np.ndarray, predictor, model_dir: str | None, side: int = 480) -> list[Face]:
    """dlib's CNN (MMOD) face detector at ``side`` px, upsample 0 (faces from ~80 px there)."""
    import cv2
    import dlib

    cached = getattr(_LOCAL, "mmod", None)
    if cached is None:
        cached = _LOCAL.mmod = dlib.cnn_face_detection_model_v1(str(models_dir(model_dir) / MMOD_FILE))
    h, w = arr.shape[:2]
    scale = min(2.0, side / max(h, w))
    img = np.ascontiguousarray(cv2.resize(arr, (max(1, round(w * scale)), max(1, round(h * scale))),
                                          interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC))
    # MMOD confidences are about 0..1.5; shifted by -0.5 to sit on the HOG margin's scale.
    return [_to_face(d.rect, float(d.confidence) - 0.5, predictor(img, d.rect), scale, None) for d in cached(img, 0)]


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
