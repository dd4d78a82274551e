"""tools/make_large_set.py (the seeded large FER2013-style set of issue 30 item 5) and the streaming ingest."""
from __future__ import annotations

import gzip
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def large_set():
    return _load("make_large_set")


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, sample_csv, large_set):
    a, b, c = tmp_path / "a.csv.gz", tmp_path / "b.csv.gz", tmp_path / "c.csv.gz"
    large_set.build(sample_csv, a, 300, seed=0, quiet=True)
    large_set.build(sample_csv, b, 300, seed=0, quiet=True)
    large_set.build(sample_csv, c, 300, seed=1, quiet=True)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(f"{a}.truth.parquet"), pd.read_parquet(f"{b}.truth.parquet"))


def test_small_set_ingests_with_its_labels_splits_and_originals(tmp_path, sample_csv, large_set):
    from curate.ingest.api import ingest
    from curate.workspace import Workspace

    out = tmp_path / "set.csv.gz"
    summary = large_set.build(sample_csv, out, 300, seed=0, quiet=True)
    assert summary["counts"] == {"original": 249, "filler": 0, "near_copy": 45, "defect": 6}
    ws = Workspace(tmp_path / "ws")
    s = ingest(ws, [out], quiet=True)
    assert s["read"] == s["kept"] == 300 and s["rejected"] == 0
    truth = pd.read_parquet(f"{out}.truth.parquet")
    m = ws.manifest()
    assert m["source_row"].tolist() == list(range(300))
    codes = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert m["label"].tolist() == [codes[e] for e in truth["emotion"]]
    usage = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
    assert m["split"].tolist() == [usage[u] for u in truth["usage"]]
    sample = pd.read_csv(sample_csv)
    px = ws.pixels()
    for row in truth.index[truth["kind"] == "original"][:20]:  # originals are FER2013's own pixels
        want = np.asarray(sample["pixels"][truth.loc[row, "fer_row"]].split(), np.uint8).reshape(48, 48)
        assert np.array_equal(px[row], want)
    exact = truth.index[(truth["kind"] == "near_copy") & (truth["transform"] == "exact") & truth["second"].isna()]
    for row in exact:
        assert np.array_equal(px[row], px[truth.loc[row, "source_row"]])
    blank = truth.index[truth["transform"] == "blank"]
    assert all(np.ptp(px[r].astype(int)) <= 10 for r in blank)


def test_fillers_blend_two_crops_and_shares_follow_the_options(tmp_path, sample_csv, large_set):
    out = tmp_path / "set.csv.gz"
    summary = large_set.build(sample_csv, out, 3000, seed=3, copy_share=0.2, defect_share=0.05, quiet=True)
    assert summary["counts"] == {"original": 1626, "filler": 624, "near_copy": 600, "defect": 150}
    truth = pd.read_parquet(f"{out}.truth.parquet")
    fill = truth[truth["kind"] == "filler"]
    assert (fill["parent1"] != fill["parent2"]).all() and (fill["parent1"] >= 0).all()
    derived = truth[truth["kind"].isin(["near_copy", "defect"])]
    assert truth.loc[derived["source_row"], "kind"].isin(["original", "filler"]).all()
    with gzip.open(out, "rt") as fh:
        assert fh.readline() == "emotion,pixels,Usage\n"
        assert sum(1 for _ in fh) == 3000


def test_csv_text_round_trips_every_grey_level(large_set):
    images = np.arange(256 * 9, dtype=np.int64).reshape(1, 48, 48) % 256
    text = large_set.csv_lines(images.astype(np.uint8), np.array([4]), np.array([2])).decode()
    emotion, pixels, usage = text.rstrip("\n").split(",")
    assert emotion == "4" and usage == "PrivateTest"
    assert np.array_equal(np.asarray(pixels.split(), np.int64), images.ravel())


def test_spilled_reader_equals_in_memory_and_leaves_no_file(tmp_path, sample_csv):
    from curate.ingest.fer2013 import _read_streaming, read_fer2013_csv

    in_memory = read_fer2013_csv(sample_csv, 48, quiet=True)
    spilled = read_fer2013_csv(sample_csv, 48, quiet=True, spill_dir=tmp_path)
    assert isinstance(spilled.pixels, np.memmap) and not isinstance(in_memory.pixels, np.memmap)
    pd.testing.assert_frame_equal(in_memory.rows, spilled.rows)
    assert np.array_equal(in_memory.pixels, spilled.pixels)
    lines = _read_streaming(sample_csv, 48, quiet=True, spill_dir=tmp_path)  # the line reader spills too
    pd.testing.assert_frame_equal(lines.rows, in_memory.rows)
    assert np.array_equal(lines.pixels, in_memory.pixels)
    assert list(tmp_path.iterdir()) == []  # unnamed temporary files


def test_store_written_a_slice_at_a_time(tmp_path, sample_csv, monkeypatch):
    import curate.workspace as workspace
    from curate.ingest.api import ingest

    monkeypatch.setattr(workspace, "STORE_CHUNK_BYTES", 48 * 48 * 100)  # 100 images per write
    ws = workspace.Workspace(tmp_path / "ws")
    ingest(ws, [sample_csv], quiet=True)
    want = np.stack([np.asarray(p.split(), np.uint8) for p in pd.read_csv(sample_csv)["pixels"]])
    assert np.array_equal(np.asarray(ws.pixels()).reshape(len(want), -1), want)
