"""Aligned face crops: eyes level, FER2013-like framing, grey and colour.

FER2013's framing was measured with the same landmark model on 455 of its crops (upscaled
4x): the eye centres sit at x = 0.312 and 0.682 of the width, y = 0.396 of the height
(median). :func:`align` maps a face's eye centres there with a similarity transform.
"""
from __future__ import annotations

import cv2
import numpy as np

FER_LEFT_EYE = (0.312, 0.396)
FER_RIGHT_EYE = (0.682, 0.396)


def eye_transform(left_eye: np.ndarray, right_eye: np.ndarray, size: int,
                  targets: tuple[tuple[float, float], tuple[float, float]] = (FER_LEFT_EYE, FER_RIGHT_EYE)) -> np.ndarray:
    """2x3 similarity matrix taking the two eye centres to their target positions in a size x size crop."""
    src = np.array([left_eye, right_eye], dtype=np.float64)
    dst = np.array(targets, dtype=np.float64) * size
    s_vec, d_vec = src[1] - src[0], dst[1] - dst[0]
    s_len = float(np.hypot(*s_vec)) or 1.0
    scale = float(np.hypot(*d_vec)) / s_len
    angle = np.arctan2(d_vec[1], d_vec[0]) - np.arctan2(s_vec[1], s_vec[0])
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    shift = dst[0] - rot @ src[0]
    return np.hstack([rot, shift[:, None]])


def align(image: np.ndarray, left_eye: np.ndarray, right_eye: np.ndarray, size: int) -> np.ndarray:
    """The aligned size x size crop of ``image`` (grey or RGB uint8); borders replicate the edge."""
    m = eye_transform(left_eye, right_eye, size)
    arr = np.ascontiguousarray(image)
    # Shrinking a lot: blur first in proportion, so the crop is not aliased.
    shrink = 1.0 / max(np.hypot(m[0, 0], m[0, 1]), 1e-9)
    if shrink > 2.0:
        sigma = 0.5 * (shrink - 1.0) ** 0.5
        arr = cv2.GaussianBlur(arr, (0, 0), sigma)
    return cv2.warpAffine(arr, m, (size, size), flags=cv2.INTER_AREA if shrink > 1 else cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REPLICATE)


def roll_degrees(left_eye: np.ndarray, right_eye: np.ndarray) -> float:
    """In-plane rotation of the eye line in degrees (0 = level)."""
    d = np.asarray(right_eye, float) - np.asarray(left_eye, float)
    return float(np.degrees(np.arctan2(d[1], d[0])))


def centre_square(image: np.ndarray, size: int) -> np.ndarray:
    """Fallback crop when no face is found: the centred square of the image, resized."""
    h, w = image.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    sq = np.ascontiguousarray(image[y0:y0 + side, x0:x0 + side])
    return cv2.resize(sq, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_CUBIC)
