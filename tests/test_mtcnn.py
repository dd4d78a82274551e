"""MTCNN (the face stage's default detector) and the multiple_faces score built on it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from curate.audit.checks_photo import second_face_scores
from curate.errors import CurateError
from curate.faces import detect
from curate.faces.mtcnn import detect_mtcnn, load_weights, nms

FIXTURES = Path(__file__).parent / "fixtures" / "photos"


def _photo(name: str) -> np.ndarray:
    return np.asarray(Image.open(FIXTURES / name).convert("RGB"))


def test_mtcnn_finds_both_people_and_places_landmarks_inside_their_boxes():
    img = _photo("happyv2/7983-woman_girl_laugh_grass-1296x728-hea.jpg")   # reviewed: two faces
    found = detect_mtcnn(img)
    sure = found.scores >= 0.85
    assert sure.sum() == 2
    h, w = img.shape[:2]
    for (x, y, bw, bh), marks in zip(found.boxes[sure], found.landmarks[sure]):
        assert 0 <= x + bw / 2 <= w and 0 <= y + bh / 2 <= h and 10 < bw < w / 2
        assert ((marks[:, 0] > x - 0.1 * bw) & (marks[:, 0] < x + 1.1 * bw)).all()
        assert ((marks[:, 1] > y - 0.1 * bh) & (marks[:, 1] < y + 1.1 * bh)).all()
        assert marks[0, 1] < marks[2, 1] < marks[3, 1], "eyes above the nose above the mouth"
    again = detect_mtcnn(img)
    np.testing.assert_array_equal(found.boxes, again.boxes)   # deterministic


def test_mtcnn_finds_no_face_in_a_drawing_or_an_empty_sky():
    assert (detect_mtcnn(_photo("angry/Angry-Face-Emoji.png")).scores >= 0.85).sum() == 0
    sky = np.full((480, 640, 3), (120, 160, 200), np.uint8)
    assert len(detect_mtcnn(sky).scores) == 0
    assert len(detect_mtcnn(np.zeros((8, 8, 3), np.uint8)).scores) == 0   # smaller than the 12-px window


def test_stage_faces_carry_dlib_landmarks_and_mtcnn_probabilities():
    img = _photo("angry/4bc546-20190625-angry.jpg")
    faces = detect.find_faces(img)
    assert faces and all(f.detector == "mtcnn" and 0.85 <= f.score <= 1 for f in faces)
    main = faces[0]
    left, right = main.eyes
    assert left[0] < right[0] and main.landmarks.shape == (5, 2)
    assert main.y < left[1] < main.nose[1] < main.y + main.h


def test_hog_is_the_fallback_when_mtcnn_finds_nothing(monkeypatch):
    img = _photo("angry/1123276.jpg")
    monkeypatch.setattr(detect, "mtcnn_faces", lambda *a, **k: [])
    faces = detect.find_faces(img, max_side=480, upsample=1, min_score=0.0)
    assert faces and all(f.detector == "hog" for f in faces)
    assert detect.find_faces(img, fallback="none") == []
    with pytest.raises(ValueError, match="unknown face detector"):
        detect.find_faces(img, detector="cnn")


def test_min_width_skips_faces_too_small_to_use_and_keeps_the_others():
    img = _photo("happyv2/7983-woman_girl_laugh_grass-1296x728-hea.jpg")   # two faces, 33 and 39 px wide here
    every = detect.mtcnn_faces(img)
    widths = sorted(f.w for f in every)
    assert len(every) == 2
    # a floor below both faces finds the same two; the pyramid starts smaller, so boxes move by a few px only
    floored = detect.mtcnn_faces(img, min_width=0.6 * widths[0])
    assert len(floored) == 2
    for a, b in zip(every, floored):
        assert abs(a.x - b.x) < 0.1 * a.w and abs(a.w - b.w) < 0.15 * a.w
    # a floor above both: nothing is looked for at their size
    assert detect.mtcnn_faces(img, min_width=2.5 * widths[1]) == []
    # find_faces passes it on (and the fallback stays off when asked)
    assert len(detect.find_faces(img, mtcnn_min_width=0.6 * widths[0], fallback="none")) == 2


def test_missing_weight_file_is_a_clear_error(tmp_path):
    with pytest.raises(CurateError, match="MTCNN weight file not found"):
        load_weights(tmp_path / "none.npz")


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [2, 2, 6, 6]], float)
    scores = np.array([0.9, 0.95, 0.5, 0.8])
    assert nms(boxes, scores, 0.5).tolist() == [1, 3, 2]
    assert nms(boxes, scores, 0.7, mode="min").tolist() == [1, 2]   # the small box lies inside the big one


def test_second_face_scores():
    eyes = [[30, 40], [40, 40], [60, 40], [70, 40]]
    front, profile = eyes + [[50, 60]], eyes + [[90, 60]]      # nose between the eyes, or far past them
    faces = pd.DataFrame([
        ("two", 0, 100.0, 0.99, "mtcnn", front), ("two", 1, 60.0, 0.91, "mtcnn", front),
        ("small_second", 0, 100.0, 0.99, "mtcnn", front), ("small_second", 1, 35.0, 0.99, "mtcnn", front),
        ("one", 0, 100.0, 0.99, "mtcnn", front),
        ("weak_main", 0, 100.0, 0.87, "mtcnn", front), ("weak_main", 1, 90.0, 0.86, "mtcnn", front),
        ("turned", 0, 100.0, 0.99, "mtcnn", front), ("turned", 1, 95.0, 0.99, "mtcnn", profile),
        ("hog", 0, 100.0, 1.5, "hog", front), ("hog", 1, 80.0, 0.7, "hog", front),
    ], columns=["image_id", "face_index", "w", "score", "detector", "landmarks"])
    ids = ["two", "small_second", "one", "weak_main", "turned", "hog", "none"]
    # a second face >= 40 px and half the main face's width, of any pose, with a main face of p >= 0.9
    np.testing.assert_allclose(second_face_scores(faces, ids), [0.91, 0, 0, 0, 0.99, 0, 0])
    np.testing.assert_allclose(second_face_scores(faces, ids, min_width_px=30, min_relative_width=0.3),
                               [0.91, 0.99, 0, 0, 0.99, 0, 0])
    np.testing.assert_allclose(second_face_scores(faces, ids, min_relative_width=0.7), [0, 0, 0, 0, 0.99, 0, 0])
    np.testing.assert_allclose(second_face_scores(faces, ids, main_face_score=0.85), [0.91, 0, 0, 0.86, 0.99, 0, 0])
    np.testing.assert_allclose(second_face_scores(faces, ids, max_yaw=0.4), [0.91, 0, 0, 0, 0, 0, 0])   # profile out
    assert second_face_scores(faces.drop(columns="detector"), ids).sum() == 0   # tables from before MTCNN
