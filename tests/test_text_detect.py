"""The bundled text detector (PP-OCRv4 DB, ONNX) and the features the watermark check reads."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from curate.errors import CurateError
from curate.faces.stage import process_photo
from curate.faces.text_detect import (TEXT_DETECTOR_FEATURES, detector_input, load_session, text_box_features,
                                      text_boxes, text_detector_features)
from curate.settings import load_settings

PHOTOS = Path(__file__).parent / "fixtures" / "photos"


def _photo(rel: str) -> np.ndarray:
    return np.asarray(Image.open(PHOTOS / rel).convert("RGB"))


def test_text_boxes_keep_strong_regions_and_grow_them():
    prob = np.zeros((200, 300), np.float32)
    prob[90:100, 100:160] = 0.9      # a text line in the centre
    prob[185:192, 10:40] = 0.8       # a caption in the bottom-left corner
    prob[20:40, 200:260] = 0.35      # above the pixel threshold, below the box threshold: dropped
    prob[50:52, 50:52] = 0.95        # a speck: dropped
    prob[120:140, 10:70] = 0.2       # faint: below the pixel threshold
    boxes = text_boxes(prob)
    assert len(boxes) == 2
    order = np.argsort(boxes[:, 1])
    centre, corner = boxes[order]
    # the core box grows by area * 1.6 / perimeter on every side (cores are shrunken text)
    assert centre[0] < 100 and centre[0] + centre[2] > 160 and centre[1] < 90 and centre[1] + centre[3] > 100
    assert 0.75 < centre[4] <= 0.9 and corner[4] > 0.6   # mean over the dilated region
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 1] + boxes[:, 3] <= 200).all()

    f = text_box_features(prob, boxes)
    assert set(f) == set(TEXT_DETECTOR_FEATURES)
    assert f["text_det_boxes"] == 2 and f["text_det_centre"] == 1 and f["text_det_bottom"] == 1
    assert f["text_det_corner"] == 1 and f["text_det_edge"] == 1 and f["text_det_vertical"] == 0
    assert 0.01 < f["text_det_area"] < 0.05 and f["text_det_max_score"] == pytest.approx(centre[4])
    assert f["text_det_faint_share"] == pytest.approx(20 * 60 / prob.size)


def test_no_text_gives_zero_features():
    prob = np.full((64, 96), 0.02, np.float32)
    f = text_box_features(prob, text_boxes(prob))
    assert f["text_det_boxes"] == 0 and f["text_det_area"] == 0 and f["text_det_max_score"] == 0
    assert f["text_det_prob_mean"] == pytest.approx(0.02)


def test_detector_input_is_bgr_in_minus_one_to_one_at_multiples_of_32():
    img = np.zeros((300, 1000, 3), np.uint8)
    img[..., 0] = 255                               # pure red in RGB
    x = detector_input(img, 640)
    assert x.shape == (1, 3, 192, 640) and x.dtype == np.float32
    assert x[0, 2].min() == pytest.approx(1.0) and x[0, 0].max() == pytest.approx(-1.0)   # red is the last channel
    assert detector_input(img[:20, :30], 640).shape == (1, 3, 416, 640)                     # small photos are enlarged


def test_detector_finds_text_written_on_a_real_photo():
    clean = _photo("angry/1123276.jpg")             # reviewed: no watermark, no overlaid text
    before = text_detector_features(clean, 640)
    marked = clean.copy()
    overlay = marked.copy()
    h, w = marked.shape[:2]
    cv2.putText(overlay, "shutterstock", (int(0.18 * w), h // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 3)
    marked = cv2.addWeighted(overlay, 0.6, marked, 0.4, 0)   # a half-transparent stock mark
    after = text_detector_features(marked, 640)
    assert before["text_det_boxes"] == 0
    assert after["text_det_centre"] >= 1 and after["text_det_max_score"] > 0.6
    assert after["text_det_widest"] > 0.3, "the mark is one long line across the centre"


def test_reviewed_watermarks_show_text_boxes():
    marked = [text_detector_features(_photo(p), 640) for p in ("angry/preview.jpg", "sadv2/266987887.jpg")]
    clean = [text_detector_features(_photo(p), 640) for p in
             ("angry/1123276.jpg", "happyv2/7983-woman_girl_laugh_grass-1296x728-hea.jpg")]
    assert min(f["text_det_boxes"] for f in marked) >= 3
    assert max(f["text_det_boxes"] for f in clean) == 0


def test_a_missing_or_broken_model_is_a_clear_error(tmp_path):
    with pytest.raises(CurateError, match="nowhere.onnx: text detector model not found"):
        load_session(tmp_path / "nowhere.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(CurateError, match="bad.onnx: not a loadable ONNX model"):
        load_session(bad)


def test_face_stage_keeps_faces_when_the_text_detector_fails_or_is_off(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    faces = load_settings("ingest").faces
    photo = _photo("angry/4bc546-20190625-angry.jpg")
    res = process_photo(photo, size=48, params=dataclasses.replace(faces, text_detector_model=str(bad)))
    assert res.status == "ok" and res.main is not None
    assert "text detector error" in res.detail and "bad.onnx" in res.detail
    assert all(np.isnan(res.features[k]) for k in TEXT_DETECTOR_FEATURES)
    assert res.features["n_faces"] >= 1 and not np.isnan(res.features["strong_glyphs"])

    off = process_photo(photo, size=48, params=dataclasses.replace(faces, text_detector_side=0))
    assert off.status == "ok" and "text detector" not in off.detail
    assert all(np.isnan(off.features[k]) for k in TEXT_DETECTOR_FEATURES)
    on = process_photo(photo, size=48, params=faces)
    assert all(np.isfinite(on.features[k]) for k in TEXT_DETECTOR_FEATURES)
