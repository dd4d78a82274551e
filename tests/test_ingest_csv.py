"""Ingest of Kaggle fer2013 CSVs: real sample rows, every bad-row reason, reconciliation."""
from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from curate.errors import CurateError
from curate.ingest.api import ingest
from curate.workspace import MANIFEST_COLUMNS, Workspace


@pytest.fixture(scope="module")
def sample_rows(sample_csv) -> pd.DataFrame:
    return pd.read_csv(sample_csv)


def _line(emotion, pixels, usage) -> str:
    return f"{emotion},{pixels},{usage}"


def test_sample_ingests_with_contract_columns(sample_ws_path, sample_rows):
    ws = Workspace.open(sample_ws_path)
    m = ws.manifest()
    assert list(m.columns[: len(MANIFEST_COLUMNS)]) == list(MANIFEST_COLUMNS)
    assert len(m) == len(sample_rows) == 1626
    assert m["image_id"].is_unique
    assert m["source_row"].tolist() == list(range(len(sample_rows)))
    assert m["split"].value_counts().to_dict() == {"train": 861, "val": 381, "test": 384}
    codes = sample_rows["emotion"].astype(str).tolist()
    assert m["original_label"].tolist() == codes
    assert m.loc[sample_rows["emotion"] == 3, "label"].eq("happy").all()
    px = ws.pixels()
    assert px.shape == (1626, 48, 48) and px.dtype == np.uint8
    first = np.asarray(sample_rows["pixels"][0].split(), dtype=np.uint8).reshape(48, 48)
    assert np.array_equal(px[0], first)
    # the sample deliberately holds exact duplicates, blank images and cross-split copies
    dup = m[m["digest"].duplicated(keep=False)]
    assert dup["digest"].nunique() > 50
    assert (dup.groupby("digest")["split"].nunique() > 1).any()
    assert (px.reshape(len(px), -1).std(axis=1) == 0).sum() >= 5


def test_ids_stable_across_runs(tmp_path, sample_csv):
    a, b = Workspace(tmp_path / "a"), Workspace(tmp_path / "b")
    ingest(a, [sample_csv], quiet=True)
    ingest(b, [sample_csv], quiet=True)
    assert a.manifest()["image_id"].tolist() == b.manifest()["image_id"].tolist()
    assert a.manifest()["digest"].tolist() == b.manifest()["digest"].tolist()
    assert a.manifest()["image_id"].iloc[5] == "fer2013_sample:000005"


def test_every_bad_row_has_its_reason_and_the_rest_ingests(tmp_path, sample_rows):
    good = [_line(r.emotion, r.pixels, r.Usage) for r in sample_rows.head(6).itertuples()]
    px = sample_rows["pixels"][0]
    vals = px.split()
    bad = {
        "wrong_pixel_count": _line(3, " ".join(vals[:-1]), "Training"),
        "non_numeric_pixel": _line(3, " ".join(["abc"] + vals[1:]), "Training"),
        "pixel_out_of_range": _line(3, " ".join(["300"] + vals[1:]), "Training"),
        "unknown_emotion": _line(9, px, "Training"),
        "missing_usage": _line(3, px, ""),
        "unknown_usage": _line(3, px, "Holdout"),
        "empty_line": "",
        "wrong_field_count": "3,1 2 3",
    }
    lines = ["emotion,pixels,Usage", good[0], good[1]] + list(bad.values()) + good[2:]
    path = tmp_path / "dirty.csv"
    # BOM + CRLF line endings
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    ws = Workspace(tmp_path / "ws")
    summary = ingest(ws, [path], quiet=True)
    assert summary["read"] == len(lines) - 1
    assert summary["kept"] == 6 and summary["rejected"] == len(bad)
    assert summary["read"] == summary["kept"] + summary["rejected"]
    rejects = ws.rejects()
    by_code = dict(zip(rejects["reason_code"], rejects["source_row"]))
    for i, code in enumerate(bad):
        assert by_code[code] == 2 + i, code
    assert rejects["reason"].str.len().min() > 5
    m = ws.manifest()
    assert len(m) == 6 and m["split"].notna().all()
    assert np.array_equal(ws.pixels()[0].ravel(), np.asarray(vals, dtype=np.uint8))


def test_truncated_gzip_keeps_rows_before_the_cut(tmp_path, sample_rows):
    text = sample_rows.head(200).to_csv(index=False).encode()
    blob = gzip.compress(text)
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(blob[: len(blob) * 2 // 3])
    ws = Workspace(tmp_path / "ws")
    s = ingest(ws, [path], quiet=True)
    assert 0 < s["kept"] < 200
    assert s["read"] == s["kept"] + s["rejected"]
    assert "truncated_gzip" in set(ws.rejects()["reason_code"])
    expected = np.stack([np.asarray(p.split(), dtype=np.uint8) for p in sample_rows["pixels"][: s["kept"]]])
    assert np.array_equal(ws.pixels().reshape(s["kept"], -1), expected)


def test_reingest_is_noop_and_replace_replaces(tmp_path, sample_csv):
    ws = Workspace(tmp_path / "ws")
    ingest(ws, [sample_csv], quiet=True)
    before = ws.manifest().copy()
    again = ingest(ws, [sample_csv], quiet=True)
    assert again["kept"] == 0 and again["skipped_sources"] == [str(sample_csv.resolve())]
    ws.refresh()
    pd.testing.assert_frame_equal(ws.manifest(), before)
    again = ingest(ws, [sample_csv], replace=True, quiet=True)
    ws.refresh()
    assert again["kept"] == 1626 and len(ws.manifest()) == 1626
    assert ws.manifest()["image_id"].tolist() == before["image_id"].tolist()


def test_second_source_appends_with_unique_ids(tmp_path, sample_rows):
    d1, d2 = tmp_path / "a", tmp_path / "b"
    d1.mkdir(), d2.mkdir()
    sample_rows.head(10).to_csv(d1 / "fer2013.csv", index=False)
    sample_rows.tail(7).to_csv(d2 / "fer2013.csv", index=False)
    ws = Workspace(tmp_path / "ws")
    ingest(ws, [d1 / "fer2013.csv"], quiet=True)
    ingest(ws, [d2 / "fer2013.csv"], quiet=True)
    m = ws.manifest()
    assert len(m) == 17 and m["image_id"].is_unique and m["source"].nunique() == 2
    assert np.array_equal(ws.pixels()[10].ravel(), np.asarray(sample_rows["pixels"].iloc[-7].split(), dtype=np.uint8))


def test_strict_turns_rejects_into_an_error(tmp_path, sample_rows):
    path = tmp_path / "x.csv"
    path.write_text("emotion,pixels,Usage\n" + _line(3, sample_rows["pixels"][0], "Training") + "\n9,1 2,Training\n")
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(CurateError, match="strict"):
        ingest(ws, [path], strict=True, quiet=True)
    assert not ws.exists()


def test_interrupted_ingest_leaves_previous_state(tmp_path, sample_csv, sample_rows, monkeypatch):
    ws = Workspace(tmp_path / "ws")
    ingest(ws, [sample_csv], quiet=True)
    before_m, before_px = ws.manifest().copy(), np.array(ws.pixels())
    files_before = sorted(p.name for p in ws.root.iterdir())
    other = tmp_path / "other.csv"
    sample_rows.head(20).to_csv(other, index=False)

    import curate.atomic as atomic

    real = atomic.write_parquet

    def killed(path, df, metadata=None):
        if str(path).endswith("manifest.parquet"):
            raise KeyboardInterrupt("killed")
        return real(path, df, metadata)

    monkeypatch.setattr(atomic, "write_parquet", killed)
    with pytest.raises(KeyboardInterrupt):
        ingest(Workspace(ws.root), [other], quiet=True)
    monkeypatch.setattr(atomic, "write_parquet", real)
    fresh = Workspace.open(ws.root)
    pd.testing.assert_frame_equal(fresh.manifest(), before_m)
    assert np.array_equal(np.array(fresh.pixels()), before_px)
    assert sorted(p.name for p in ws.root.iterdir() if p.name != "rejects.parquet") == \
        sorted(n for n in files_before if n != "rejects.parquet")
    # and the killed step can simply be re-run
    s = ingest(fresh, [other], quiet=True)
    assert s["kept"] == 20 and len(Workspace.open(ws.root).manifest()) == 1646


def test_arrow_and_streaming_readers_agree(sample_csv):
    from curate.ingest.fer2013 import _read_arrow, _read_streaming

    fast, slow = _read_arrow(sample_csv, 48, quiet=True), _read_streaming(sample_csv, 48, quiet=True)
    assert fast is not None
    pd.testing.assert_frame_equal(fast.rows, slow.rows)
    assert np.array_equal(fast.pixels, slow.pixels)


def test_atomic_writes_get_ordinary_permissions_and_leave_no_temp_files(tmp_path):
    import os
    import stat

    import curate.atomic as atomic

    mask = os.umask(0o022)
    try:
        atomic._FILE_MODE = atomic._file_mode()
        target = tmp_path / "out" / "report.md"
        atomic.write_text(target, "one")
        atomic.write_text(target, "two")  # replaces in place
        assert target.read_text() == "two"
        assert stat.S_IMODE(target.stat().st_mode) == 0o644  # not mkstemp's 0600
        assert [p.name for p in target.parent.iterdir()] == ["report.md"]
    finally:
        os.umask(mask)
        atomic._FILE_MODE = atomic._file_mode()
