"""Ingest of image folders and path,label CSVs: formats, modes, sizes, bad files, symlinks."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from curate.ingest.api import ingest
from curate.ingest.originals import load_original
from curate.workspace import Workspace


@pytest.fixture(scope="module")
def faces(sample_ws_path) -> np.ndarray:
    """Real 48x48 FER2013 faces from the bundled sample (non-blank ones)."""
    px = np.array(Workspace.open(sample_ws_path).pixels()[:300])
    px = px[px.reshape(len(px), -1).std(axis=1) > 20]
    _, first = np.unique(px.reshape(len(px), -1), axis=0, return_index=True)
    return px[np.sort(first)][:40]


def _save_variants(root, faces):
    """A train/val/test tree with many formats, modes and sizes; returns expected rel paths."""
    made = {}
    f = iter(faces)
    def put(rel, img, **kw):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        img.save(p, **kw)
        made[rel] = img
    grey = lambda: Image.fromarray(next(f), mode="L")
    put("train/happy/a.jpg", grey(), quality=95)
    put("train/happy/b.png", grey())
    put("training/sadness/c.bmp", grey())                    # split + label synonyms
    put("train/Angry/deep/er/d.webp", grey())                # any depth, case
    put("val/surprised/e.gif", grey())                       # gif first frame
    put("validation/neutral/f.png", grey().convert("RGB").resize((160, 120)))      # colour-mode grey, bigger
    rgb = Image.merge("RGB", [grey(), grey(), grey()])
    put("test/fear/g.png", rgb)                                                     # real colour
    rgba = rgb.convert("RGBA"); rgba.putalpha(128)
    put("test/fear/h.png", rgba)                                                     # alpha
    put("test/disgust/i.png", grey().convert("P"))                                   # palette
    rgb2 = Image.merge("RGB", [grey(), grey(), grey()])
    put("test/disgust/j.tif", rgb2.convert("CMYK"))                                  # CMYK
    arr16 = (next(f).astype(np.uint16) * 257)
    put("testing/happy/k.png", Image.fromarray(arr16))                 # 16-bit
    return made


def test_folder_formats_modes_and_splits(tmp_path, faces):
    root = tmp_path / "data"
    made = _save_variants(root, faces)
    ws = Workspace(tmp_path / "ws")
    s = ingest(ws, [root], quiet=True)
    assert s["rejected"] == 0 and s["kept"] == len(made) == s["read"]
    m = ws.manifest().set_index("source_path")
    assert m.loc["train/happy/a.jpg", "label"] == "happy" and m.loc["train/happy/a.jpg", "split"] == "train"
    assert m.loc["training/sadness/c.bmp", ["label", "split"]].tolist() == ["sad", "train"]
    assert m.loc["train/Angry/deep/er/d.webp", "label"] == "angry"
    assert m.loc["val/surprised/e.gif", ["label", "split"]].tolist() == ["surprise", "val"]
    assert m.loc["validation/neutral/f.png", ["width", "height", "channels"]].tolist() == [160, 120, 1]
    assert m.loc["test/fear/g.png", "channels"] == 3
    assert m.loc["testing/happy/k.png", "split"] == "test"
    assert m.loc["test/fear/g.png", "original_label"] == "fear"
    px = ws.pixels()
    assert px.shape == (len(made), 48, 48)
    row = list(m.index).index("train/happy/b.png")
    assert np.array_equal(px[row], np.asarray(made["train/happy/b.png"]))       # lossless grey kept exactly
    row16 = list(m.index).index("testing/happy/k.png")
    assert np.abs(px[row16].astype(int) - np.asarray(made["testing/happy/k.png"], dtype=np.float64) / 257).max() <= 1
    # the PNG and the identical-pixel BMP of different faces have different digests; same pixels share one
    assert m["digest"].is_unique
    # originals on demand, at their own size
    orig = load_original(ws, list(m.index).index("validation/neutral/f.png"))
    assert orig.size == (160, 120)


def test_identical_pixels_share_a_digest_across_formats(tmp_path, faces):
    root = tmp_path / "d"
    (root / "happy").mkdir(parents=True)
    img = Image.fromarray(faces[0], mode="L")
    img.save(root / "happy" / "x.png")
    img.save(root / "happy" / "y.bmp")
    img.convert("RGB").save(root / "happy" / "z.png")
    ws = Workspace(tmp_path / "ws")
    ingest(ws, [root], quiet=True)
    assert ws.manifest()["digest"].nunique() == 1


def test_fer_file_names_give_the_original_usage(tmp_path, faces):
    for rel in ("train/happy/Training_1.jpg", "test/sad/PublicTest_2.jpg", "test/sad/PrivateTest_3.jpg", "test/sad/other.jpg"):
        p = tmp_path / "d" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(faces[len(rel) % 7], mode="L").save(p)
    ws = Workspace(tmp_path / "ws")
    ingest(ws, [tmp_path / "d"], quiet=True)
    m = ws.manifest().set_index("source_path")["split"].to_dict()
    assert m == {"test/sad/PrivateTest_3.jpg": "test", "test/sad/PublicTest_2.jpg": "val",
                 "test/sad/other.jpg": "test", "train/happy/Training_1.jpg": "train"}
    ws2 = Workspace(tmp_path / "ws2")
    ingest(ws2, [tmp_path / "d"], overrides=["usage_from_filename=false"], quiet=True)
    assert ws2.manifest()["split"].value_counts().to_dict() == {"test": 3, "train": 1}


def test_exif_rotation_is_applied(tmp_path, faces):
    root = tmp_path / "d" / "happy"
    root.mkdir(parents=True)
    img = Image.fromarray(np.hstack([faces[0], faces[1]]), mode="L")  # 96 wide x 48 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    img.save(root / "r.jpg", exif=exif.tobytes(), quality=95)
    ws = Workspace(tmp_path / "ws")
    ingest(ws, [tmp_path / "d"], quiet=True)
    assert ws.manifest()[["width", "height"]].iloc[0].tolist() == [48, 96]


def test_bad_files_are_rejected_with_reasons(tmp_path, faces):
    root = tmp_path / "data"
    good = root / "train" / "happy"
    good.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(faces[i], mode="L").save(good / f"ok{i}.png")
    (good / "empty.jpg").write_bytes(b"")
    Image.fromarray(faces[3], mode="L").save(good / "full.jpg", quality=95)
    data = (good / "full.jpg").read_bytes()
    (good / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (good / "full.jpg").unlink()
    (good / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(300))
    (good / "notes.txt").write_text("not an image")
    (good / "fake.jpg").write_text("plain text pretending to be a jpeg")
    Image.new("L", (3000, 2000)).save(good / "bomb.png")
    outside = tmp_path / "outside.png"
    Image.fromarray(faces[4], mode="L").save(outside)
    (good / "link_out.png").symlink_to(outside)
    (good / "link_in.png").symlink_to(good / "ok0.png")
    ws = Workspace(tmp_path / "ws")
    s = ingest(ws, [root], overrides=["max_pixels=1000000"], quiet=True)
    codes = dict(zip(ws.rejects()["source_path"], ws.rejects()["reason_code"]))
    assert codes == {
        "train/happy/empty.jpg": "empty_file",
        "train/happy/truncated.jpg": "truncated",
        "train/happy/corrupt.png": "corrupt",
        "train/happy/notes.txt": "not_an_image",
        "train/happy/fake.jpg": "not_an_image",
        "train/happy/bomb.png": "decompression_bomb",
        "train/happy/link_out.png": "symlink_outside",
    }
    assert "exceeds the limit of 1,000,000" in ws.rejects().set_index("reason_code").loc["decompression_bomb", "reason"]
    assert s["kept"] == 4  # ok0-2 + the inside symlink
    assert s["read"] == s["kept"] + s["rejected"] == 11


def test_label_csv_paths_labels_splits(tmp_path, faces):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(5):
        Image.fromarray(faces[i], mode="L").save(imgs / f"{i}.png")
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label,split\n"
                   "imgs/0.png,happiness,train\n"
                   "imgs/1.png,4,test\n"
                   "imgs/2.png,bored,val\n"          # unknown label: kept with a warning
                   "imgs/0.png,sad,train\n"          # duplicate path
                   "imgs/missing.png,sad,train\n"    # file not found
                   "imgs/3.png,fear,holdout\n"       # unknown split
                   "imgs/4.png,,train\n")            # missing label
    ws = Workspace(tmp_path / "ws")
    s = ingest(ws, [csv], quiet=True)
    assert s["kept"] == 3 and s["rejected"] == 4 and s["read"] == 7
    assert any("bored" in w for w in s["warnings"])
    m = ws.manifest()
    assert m["label"].tolist() == ["happy", "sad", "bored"]
    assert m["original_label"].tolist() == ["happiness", "4", "bored"]
    assert m["split"].tolist() == ["train", "test", "val"]
    assert m["source_row"].tolist() == [0, 1, 2]
    r = ws.rejects().set_index("source_row")
    assert r.loc[3, "reason_code"] == "duplicate_path" and "row 0" in r.loc[3, "reason"]
    assert r.loc[4, "reason_code"] == "file_not_found"
    assert r.loc[5, "reason_code"] == "unknown_split"
    assert r.loc[6, "reason_code"] == "missing_label"


def test_cli_exit_codes_and_json(tmp_path, sample_csv):
    import json

    env = dict(os.environ, CURATE_QUIET="1")
    cmd = [sys.executable, "-m", "curate.cli"]
    out = subprocess.run(cmd + ["ingest", str(sample_csv), "-w", str(tmp_path / "ws"), "--json"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["kept"] == 1626 and summary["read"] == summary["kept"] + summary["rejected"]
    bad = tmp_path / "bad.csv"
    bad.write_text("emotion,pixels,Usage\n9,1 2 3,Training\n")
    out = subprocess.run(cmd + ["ingest", str(bad), "-w", str(tmp_path / "ws2")], capture_output=True, text=True, env=env)
    assert out.returncode == 1
    out = subprocess.run(cmd + ["ingest", str(tmp_path / "nope.csv"), "-w", str(tmp_path / "ws3")],
                         capture_output=True, text=True, env=env)
    assert out.returncode != 0 and "no such file" in out.stderr
    out = subprocess.run(cmd + ["info", "-w", str(tmp_path / "ws"), "--json"], capture_output=True, text=True, env=env)
    info = json.loads(out.stdout)
    assert info["images"] == 1626 and info["counts"]["happy"]["all"] == 227
    assert (tmp_path / "ws" / "class_distribution.png").stat().st_size > 1000
