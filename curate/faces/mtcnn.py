"""MTCNN face detector (Zhang et al., 2016): a cascade of three small CNNs that finds frontal,
profile and small faces (down to ~12 px) with 5 landmarks.

The weights are facenet-pytorch's conversion of the original model (MIT, see
``curate/faces/models/NOTICE``), bundled as ``curate/faces/models/mtcnn.npz`` (plain arrays,
nothing unpickled; ``tools/convert_mtcnn_weights.py`` made it). Pure functions on arrays:
:func:`detect_mtcnn` takes an RGB uint8 image and returns boxes, scores and landmarks in its
pixels. The networks run with torch on the CPU (a GPU is not worth the copies for nets this
small).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curate.errors import CurateError

WEIGHTS = Path(__file__).with_name("models") / "mtcnn.npz"
THRESHOLDS = (0.6, 0.7, 0.7)
"""Face probability each stage (P-, R-, O-net) needs to pass a window on (the paper's values)."""
_LOCK = threading.Lock()
_WEIGHTS: dict[str, dict] = {}


@dataclass
class MtcnnFaces:
    """Faces found by :func:`detect_mtcnn`, in the input image's pixels, most probable first."""

    boxes: np.ndarray      # (n, 4) x, y, w, h
    scores: np.ndarray     # (n,) O-net face probability
    landmarks: np.ndarray  # (n, 5, 2): image-left eye, image-right eye, nose, mouth left, mouth right


def load_weights(path: str | Path | None = None) -> dict:
    """The three nets' tensors from ``path`` (default: the bundled file), loaded once."""
    import torch

    key = str(path or WEIGHTS)
    with _LOCK:
        if key not in _WEIGHTS:
            if not Path(key).is_file():
                raise CurateError(f"{key}: MTCNN weight file not found")
            with np.load(key, allow_pickle=False) as z:
                _WEIGHTS[key] = {name: torch.from_numpy(z[name].copy()) for name in z.files}
        return _WEIGHTS[key]


def _layer(w: dict, x, name: str, act: str | None = None):
    """Layer ``name`` (a convolution for 4-d weights, else dense) on ``x``, then PReLU ``act``."""
    import torch.nn.functional as F

    weight, bias = w[f"{name}.weight"], w[f"{name}.bias"]
    y = F.conv2d(x, weight, bias) if weight.dim() == 4 else F.linear(x, weight, bias)
    return F.prelu(y, w[f"{act}.weight"]) if act else y


def _convs(w: dict, x, net: str, pools: tuple[int, ...]):
    """``net``'s conv1, conv2, ... each with its PReLU, each followed by a stride-2 max pool of
    the given size (0: none)."""
    import torch
    import torch.nn.functional as F

    for k, pool in enumerate(pools, start=1):
        x = _layer(w, x, f"{net}.conv{k}", f"{net}.prelu{k}")
        if pool:
            # the same values as on the default layout, 2-6x faster on the CPU in channels-last
            x = F.max_pool2d(x.contiguous(memory_format=torch.channels_last), pool, 2, ceil_mode=True).contiguous()
    return x


def _flatten(x):
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)      # the converted weights' flatten order


def _face_probability(logits):
    import torch.nn.functional as F

    return F.softmax(logits, dim=1)[:, 1]


def _pnet(w: dict, x):
    x = _convs(w, x, "pnet", (2, 0, 0))
    return _layer(w, x, "pnet.conv4_2"), _face_probability(_layer(w, x, "pnet.conv4_1"))


def _rnet(w: dict, x):
    x = _layer(w, _flatten(_convs(w, x, "rnet", (3, 3, 0))), "rnet.dense4", "rnet.prelu4")
    return _layer(w, x, "rnet.dense5_2"), _face_probability(_layer(w, x, "rnet.dense5_1"))


def _onet(w: dict, x):
    x = _layer(w, _flatten(_convs(w, x, "onet", (3, 3, 2, 0))), "onet.dense5", "onet.prelu5")
    return (_layer(w, x, "onet.dense6_2"), _layer(w, x, "onet.dense6_3"),
            _face_probability(_layer(w, x, "onet.dense6_1")))


def nms(boxes: np.ndarray, scores: np.ndarray, overlap: float, mode: str = "union") -> np.ndarray:
    """Indices kept by greedy non-maximum suppression of ``boxes`` (x1, y1, x2, y2), best first;
    ``mode="min"`` divides the intersection by the smaller box (drops boxes inside others)."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = iw * ih
        denom = np.minimum(area[i], area[rest]) if mode == "min" else area[i] + area[rest] - inter
        order = rest[inter / denom <= overlap]
    return np.asarray(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Boxes (x1, y1, x2, y2, ...) made square about their centres (side = the longer side)."""
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _refine(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Boxes moved by a net's regression offsets (fractions of the box's width and height)."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out[:, 0] += reg[:, 0] * w
    out[:, 1] += reg[:, 1] * h
    out[:, 2] += reg[:, 2] * w
    out[:, 3] += reg[:, 3] * h
    return out


def _windows(norm: np.ndarray, boxes: np.ndarray, size: int):
    """The image under each box (clipped to the image), resized to ``size`` x ``size``, as an
    (n, 3, size, size) float tensor; also the integer boxes the crops came from."""
    import cv2
    import torch

    h, w = norm.shape[:2]
    b = np.trunc(boxes[:, :4]).astype(np.int64)
    x1, y1 = np.clip(b[:, 0], 0, w - 1), np.clip(b[:, 1], 0, h - 1)
    x2, y2 = np.clip(b[:, 2], 0, w - 1), np.clip(b[:, 3], 0, h - 1)
    crops = np.empty((len(b), size, size, 3), np.float32)
    for k in range(len(b)):
        patch = norm[y1[k]:y2[k] + 1, x1[k]:x2[k] + 1]
        crops[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(crops).permute(0, 3, 1, 2).contiguous()


def _empty() -> MtcnnFaces:
    return MtcnnFaces(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2)))


def detect_mtcnn(image: np.ndarray, *, min_face: float = 20.0, factor: float = 0.709,
                 thresholds: tuple[float, float, float] = THRESHOLDS, weights: str | Path | None = None
                 ) -> MtcnnFaces:
    """Every face of at least ``min_face`` pixels in ``image`` (uint8 RGB or grey).

    ``factor``: scale step of the P-net's image pyramid (smaller is faster and misses more);
    ``thresholds``: the three stages' face probabilities (higher finds fewer, surer faces).
    Cost grows with the image's area over ``min_face`` squared: resize large photos first.
    """
    import cv2
    import torch

    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise ValueError(f"expected a uint8 grey or RGB image, got {arr.dtype} {arr.shape}")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    arr = arr[..., :3]
    h, w = arr.shape[:2]
    if min(h, w) < 12:
        return _empty()
    w8 = load_weights(weights)
    norm = (arr.astype(np.float32) - 127.5) * 0.0078125
    scale = 12.0 / float(min_face)
    found = []
    with torch.inference_mode():
        while min(h, w) * scale >= 12:
            sh, sw = int(h * scale + 1), int(w * scale + 1)
            level = cv2.resize(norm, (sw, sh), interpolation=cv2.INTER_AREA)
            reg, prob = _pnet(w8, torch.from_numpy(level).permute(2, 0, 1)[None].contiguous())
            prob, reg = prob[0].numpy(), reg[0].numpy()
            rows, cols = np.nonzero(prob >= thresholds[0])
            if rows.size:
                b = np.stack([np.floor((2 * cols + 1) / scale), np.floor((2 * rows + 1) / scale),
                              np.floor((2 * cols + 12) / scale), np.floor((2 * rows + 12) / scale),
                              prob[rows, cols], *reg[:, rows, cols]], axis=1)
                found.append(b[nms(b[:, :4], b[:, 4], 0.5)])
            scale *= factor
        if not found:
            return _empty()
        boxes = np.concatenate(found)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
        boxes = _square(np.concatenate([_refine(boxes[:, :4], boxes[:, 5:9]), boxes[:, 4:5]], axis=1))

        reg, prob = _rnet(w8, _windows(norm, boxes, 24))
        keep = prob.numpy() > thresholds[1]
        boxes = np.concatenate([boxes[keep, :4], prob.numpy()[keep, None]], axis=1)
        reg = reg.numpy()[keep]
        if not len(boxes):
            return _empty()
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
        boxes = _square(np.concatenate([_refine(boxes[pick, :4], reg[pick]), boxes[pick, 4:5]], axis=1))

        reg, points, prob = _onet(w8, _windows(norm, boxes, 48))
        prob = prob.numpy()
        keep = prob > thresholds[2]
        if not keep.any():
            return _empty()
        boxes, reg, points, prob = boxes[keep], reg.numpy()[keep], points.numpy()[keep], prob[keep]
    bw = boxes[:, 2] - boxes[:, 0] + 1
    bh = boxes[:, 3] - boxes[:, 1] + 1
    marks = np.stack([bw[:, None] * points[:, :5] + boxes[:, 0:1] - 1,
                      bh[:, None] * points[:, 5:] + boxes[:, 1:2] - 1], axis=2)
    boxes = _refine(boxes[:, :4], reg)
    pick = nms(boxes, prob, 0.7, mode="min")
    boxes, prob, marks = boxes[pick], prob[pick], marks[pick]
    xywh = np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1)
    return MtcnnFaces(xywh.astype(np.float64), prob.astype(np.float64), marks.astype(np.float64))
