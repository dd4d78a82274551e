"""The batch forms of the quality statistics equal their image-by-image definitions on real crops."""
from __future__ import annotations

import cv2
import numpy as np

from curate.audit import quality as q


def _crops(sample_ws_path) -> np.ndarray:
    from curate.workspace import Workspace

    real = np.asarray(Workspace.open(sample_ws_path).pixels()[:200])
    flat = np.full((3, 48, 48), 255, np.uint8)  # white frames: the window touches the end of the grey scale
    flat[1] = 0
    flat[2, :, :10] = 7
    return np.concatenate([real, flat])


def test_laplacian_equals_opencv(sample_ws_path):
    images = _crops(sample_ws_path)
    ref = np.stack([cv2.Laplacian(np.ascontiguousarray(im), cv2.CV_32F, ksize=1) for im in images])
    assert np.array_equal(q.laplacian(images), ref)


def test_histogram_statistics_equal_per_image_loops(sample_ws_path):
    images = _crops(sample_ws_path)
    flat = images.reshape(len(images), -1)
    hists = np.stack([np.bincount(r, minlength=256) for r in flat])
    assert np.array_equal(q.histograms(images), hists)
    assert np.array_equal(q.distinct_levels(images), np.array([len(np.unique(r)) for r in flat]))
    windows = np.stack([np.convolve(h.astype(np.float32), np.ones(9, np.float32), mode="same") for h in hists])
    expected = (windows.max(axis=1) / flat.shape[1]).astype(np.float32)
    assert np.allclose(q.dominant_fraction(images), expected, atol=1e-6)
    assert np.allclose(q.dominant_fraction(images)[-3:], [1.0, 1.0, 38 / 48])  # 10 of 48 columns dark
