"""Photo workspaces in the App and the report: the original photo with its face boxes, the crop beside it.

A few generated images are ingested as photos (``images=photos``); the detector finds no face
in them, so ``faces.parquet`` is then written with known boxes (the contract columns) and the
App dataset and the report are checked against those boxes.
"""
from __future__ import annotations

import base64
import io
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from curate.faces.tables import coerce_faces
from curate.findings import make_findings, write_findings
from curate.workspace import Workspace

MAIN = dict(x=60.0, y=40.0, w=100.0, h=120.0, score=1.25)      # in the 320 x 240 PNG
OTHER = dict(x=220.0, y=-20.0, w=80.0, h=90.0, score=-0.12)    # partly above the image: clipped
TEXT = dict(x=20.0, y=200.0, w=180.0, h=24.0, score=0.91)       # a caption along the bottom
W, H = 320, 240


def _picture(w: int, h: int, seed: int) -> Image.Image:
    """A smooth colour picture (no face): gradients plus a little noise, mid-grey overall."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([120 + 60 * np.sin(xx / 23.0), 110 + 50 * np.cos(yy / 17.0), 100 + 40 * np.sin((xx + yy) / 31.0)], -1)
    arr += rng.normal(0, 6, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


@pytest.fixture(scope="module")
def photo_ws(tmp_path_factory) -> Workspace:
    """Three photos: a PNG a browser shows as it is, a TIFF and an EXIF-rotated JPEG (both need a copy)."""
    from curate.ingest.api import ingest

    root = tmp_path_factory.mktemp("photos")
    src = root / "src"
    (src / "happy").mkdir(parents=True)
    (src / "sad").mkdir()
    _picture(W, H, 0).save(src / "happy" / "plain.png")
    _picture(300, 200, 1).save(src / "sad" / "scan.tif")
    exif = Image.Exif()
    exif[0x0112] = 6                                            # stored sideways: shown rotated 90 degrees
    _picture(280, 180, 2).save(src / "sad" / "sideways.jpg", exif=exif.tobytes(), quality=92)
    ws = Workspace(root / "ws")
    summary = ingest(ws, [src], overrides={"images": "photos"}, quiet=True)
    assert summary["kept"] == 3 and (ws.image_kinds() == "photo").all()
    m = ws.manifest()
    plain = m.loc[m["source_path"] == "happy/plain.png", "image_id"].iat[0]
    faces = pd.DataFrame([{"image_id": plain, "face_index": 0, **MAIN, "landmarks": [[90, 80], [130, 80], [110, 100],
                                                                                      [95, 125], [125, 125]],
                           "is_main": True},
                          {"image_id": plain, "face_index": 1, **OTHER, "landmarks": [[240, 10]] * 5, "is_main": False}])
    ws.write_parquet("faces.parquet", coerce_faces(faces))
    ws.write_parquet("text_boxes.parquet", pd.DataFrame([{"image_id": plain, "box_index": 0, **TEXT}]))
    # every photo flagged by one check, the plain photo first, so the report shows all three
    score = np.where(m["image_id"] == plain, 0.9, 0.5)
    write_findings(ws, make_findings(m["image_id"], "non_face", score, np.ones(len(m), bool),
                                     ["test evidence"] * len(m)))
    return ws


def _row(ws: Workspace, source_path: str) -> int:
    return int(np.flatnonzero(ws.manifest()["source_path"].to_numpy() == source_path)[0])


def test_app_sample_is_the_original_with_face_boxes(photo_ws):
    from curate.review.app import build_review_dataset
    from curate.review.dataset import fiftyone

    ws = photo_ws
    summary = build_review_dataset(ws, quiet=True)
    fo = fiftyone()
    ds = fo.load_dataset(summary["dataset"])
    try:
        assert summary["photos"] == {"photos": 3, "originals": 1, "copies": 2, "crops_only": 0}
        m = ws.manifest()
        plain = ds.match({"image_id": m["image_id"].iat[_row(ws, "happy/plain.png")]}).first()
        assert plain.filepath == str(ws.original_path(_row(ws, "happy/plain.png")))
        assert (plain.metadata.width, plain.metadata.height) == (W, H) and plain.image_kind == "photo"
        dets = plain.faces.detections
        assert [d.label for d in dets] == ["main face", "face"]
        assert dets[0].bounding_box == pytest.approx([60 / W, 40 / H, 100 / W, 120 / H])
        assert dets[0].confidence == pytest.approx(1.25)
        assert dets[1].bounding_box == pytest.approx([220 / W, 0.0, 80 / W, 70 / H])   # clipped at the top
        assert len(plain.face_landmarks.keypoints[0].points) == 5
        (text,) = plain.text_boxes.detections                 # the text detector's box, the watermark evidence
        assert text.label == "text" and text.confidence == pytest.approx(0.91)
        assert text.bounding_box == pytest.approx([20 / W, 200 / H, 180 / W, 24 / H])
        assert "text_boxes" in ds.app_config.active_fields.paths
        assert plain.n_faces == 2 and plain.display_source == "original"
        crop = Image.open(plain.crop_filepath)
        assert crop.size == (112, 112) and crop.mode == "RGB"
        assert np.array_equal(np.asarray(crop), np.asarray(ws.colour_crops()[_row(ws, "happy/plain.png")]))
        # formats or orientations a browser would show differently get a JPEG copy in the image cache
        for path, reason in (("sad/scan.tif", "copy: format TIFF"), ("sad/sideways.jpg", "copy: EXIF rotation")):
            s = ds.match({"image_id": m["image_id"].iat[_row(ws, path)]}).first()
            assert s.display_source == reason and s.filepath.startswith(str(ws.path("images/display")))
            shown = Image.open(s.filepath)
            rec = m.iloc[_row(ws, path)]
            assert shown.format == "JPEG" and shown.size == (rec["width"], rec["height"]) == (
                s.metadata.width, s.metadata.height)
            assert s.faces is not None and len(s.faces.detections) == 0 and s.face_status == "no_face"
        assert ds.app_config.media_fields == ["filepath", "crop_filepath"]
        assert ds.app_config.grid_media_field == "filepath"
        # a rebuild (e.g. after `curate faces`) updates the boxes in place
        faces = ws.read_parquet("faces.parquet")
        moved = faces.copy()
        moved.loc[0, "x"] = 70.0
        ws.write_parquet("faces.parquet", moved)
        again = build_review_dataset(ws, quiet=True)
        assert again["updated"] == 3 and again["added"] == 0
        plain.reload()
        assert plain.faces.detections[0].bounding_box[0] == pytest.approx(70 / W)
    finally:
        fo.delete_dataset(ds.name)
        if "faces" in locals():
            ws.write_parquet("faces.parquet", faces)  # the module's workspace, as the other test expects it


def _data_images(html: str, cls: str) -> list[Image.Image]:
    found = re.findall(rf'<img class="{cls}" src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"', html)
    return [Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB") for b in found]


def test_report_shows_the_photo_with_boxes_and_the_crop(photo_ws):
    from curate.report.api import report_step
    from curate.report.photos import MAIN_COLOUR, OTHER_COLOUR, TEXT_COLOUR

    summary = report_step(photo_ws, {"photo_size": 256})
    html = photo_ws.path("report/index.html").read_text()
    assert "src=\"http" not in html and "file://" not in html
    assert html.count('<figure class="photo">') == 3 and 'class="grid photos"' in html
    originals, crops = _data_images(html, "orig"), _data_images(html, "crop")
    assert len(originals) == len(crops) == 3 and summary["thumbnails"] == 3
    assert all(c.size == (72, 72) for c in crops)
    assert 'data-faces="2" data-text-boxes="1"' in html and html.count("no face found") == 2
    # the plain photo is shown first (highest score): 256 x 192, both boxes drawn at their place
    thumb = np.asarray(originals[0], dtype=np.int16)
    assert originals[0].size == (256, 192)
    s = 256 / W

    def near(colour, x, y) -> bool:
        """Some pixel within 2 px of (x, y) has ``colour`` (JPEG: within a tolerance)."""
        patch = thumb[max(0, y - 2):y + 3, max(0, x - 2):x + 3].reshape(-1, 3)
        return bool((np.abs(patch - np.array(colour)).max(1) < 60).any())

    mid_y = round((MAIN["y"] + MAIN["h"] / 2) * s)
    assert near(MAIN_COLOUR, round(MAIN["x"] * s), mid_y)                       # left edge of the main face
    assert near(MAIN_COLOUR, round((MAIN["x"] + MAIN["w"]) * s), mid_y)         # right edge
    assert not near(MAIN_COLOUR, round((MAIN["x"] + MAIN["w"] / 2) * s), mid_y)  # not filled
    assert near(OTHER_COLOUR, round(OTHER["x"] * s), round(30 * s))             # the other face, in the other colour
    assert not near(OTHER_COLOUR, round(MAIN["x"] * s), mid_y)
    text_mid_x = round((TEXT["x"] + TEXT["w"] / 2) * s)
    assert near(TEXT_COLOUR, text_mid_x, round(TEXT["y"] * s))                  # the text box's top edge
    assert not near(TEXT_COLOUR, text_mid_x, round((TEXT["y"] + TEXT["h"] / 2) * s))
    # the EXIF-rotated JPEG is shown upright, as ingest decoded it (landscape stored, portrait shown)
    portrait = [im for im in originals[1:] if im.height > im.width]
    landscape = [im for im in originals[1:] if im.width > im.height]
    assert len(portrait) == len(landscape) == 1 and portrait[0].height == 256 and landscape[0].width == 256


def test_photos_turned_crops_leave_no_photo_media(photo_ws, tmp_path):
    """Re-ingesting the source as crops: the same samples show their PNG crop again, boxes gone."""
    import shutil

    from curate.ingest.api import ingest
    from curate.review.app import build_review_dataset
    from curate.review.dataset import fiftyone

    ws = Workspace(tmp_path / "ws")
    shutil.copytree(photo_ws.root, ws.root)
    first = build_review_dataset(ws, quiet=True)
    fo = fiftyone()
    try:
        source = ws.manifest()["source"].iat[0]
        ingest(ws, [source], replace=True, overrides={"images": "crops"}, quiet=True)
        ws.refresh()
        assert (ws.image_kinds() == "crop").all()
        again = build_review_dataset(ws, quiet=True)
        assert again["updated"] == 3 and "photos" not in again
        ds = fo.load_dataset(first["dataset"])
        assert "faces" not in ds.get_field_schema() and "crop_filepath" not in ds.get_field_schema()
        assert ds.app_config.media_fields == ["filepath"]
        for s in ds:
            assert s.filepath.startswith(str(ws.path("images"))) and s.filepath.endswith(".png")
            assert (s.metadata.width, s.metadata.height) == (ws.image_size, ws.image_size)
    finally:
        fo.delete_dataset(first["dataset"])
