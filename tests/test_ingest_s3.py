"""Object-storage sources (``s3://bucket/prefix/``) read through fsspec/s3fs from a local S3-compatible
server (moto's, on a loopback port; no network): image folders, FER2013 CSVs and path,label CSVs ingest
to the same workspace as the same files on disk (only ``source`` names the URL), and the audit and
``curate faces`` read the originals back from the bucket."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

pytest.importorskip("s3fs", reason="the s3 extra is not installed (pip install 'curate[s3]')")
pytest.importorskip("moto", reason="moto[server] (dev extra) is not installed")

from curate.ingest.api import ingest  # noqa: E402
from curate.workspace import Workspace  # noqa: E402
from engine_helpers import differences, table_digest  # noqa: E402
from s3_server import MotoServer  # noqa: E402

FIXTURE_PHOTOS = Path(__file__).parent / "fixtures" / "photos"
BUCKET = "curate-test"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    try:
        fs = server.filesystem()
        fs.mkdir(BUCKET)
        yield server, fs
    finally:
        server.stop()


@pytest.fixture()
def s3_env(s3, monkeypatch):
    server, fs = s3
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    return fs


def _same_but_source(local: Workspace, remote: Workspace, url: str) -> None:
    a, b = local.manifest(), remote.manifest()
    assert (b["source"] == url).all()
    pd.testing.assert_frame_equal(a.drop(columns="source"), b.drop(columns="source"), check_exact=True)
    assert np.asarray(local.pixels()).tobytes() == np.asarray(remote.pixels()).tobytes()


def test_a_folder_of_photos_in_a_bucket_equals_the_folder_on_disk(s3_env, tmp_path):
    from curate.audit.api import audit
    from curate.faces.api import find_faces

    s3_env.put(str(FIXTURE_PHOTOS) + "/", f"{BUCKET}/data/photos/", recursive=True)
    s3_env.pipe(f"{BUCKET}/data/photos/.hidden/skip.jpg", b"not read")  # hidden folders are left out, as on disk
    url = f"s3://{BUCKET}/data/photos"
    local, remote = Workspace(tmp_path / "local"), Workspace(tmp_path / "remote")
    ingest(local, [FIXTURE_PHOTOS], quiet=True)
    summary = ingest(remote, [url + "/"], quiet=True)
    n = sum(1 for p in FIXTURE_PHOTOS.rglob("*") if p.is_file())
    assert summary["kept"] == n and summary["sources"][0]["faces"]["photos"] == n
    _same_but_source(local, remote, url)
    for name in ("faces.parquet", "face_images.parquet", "photo_features.parquet", "text_boxes.parquet"):
        drop = ["seconds"] if name == "face_images.parquet" else None
        assert table_digest(local.path(name), drop) == table_digest(remote.path(name), drop), name
    audit(local, quiet=True)
    audit(remote, quiet=True)  # quality statistics from the originals: read back from the bucket
    assert table_digest(local.path("findings.parquet")) == table_digest(remote.path("findings.parquet"))
    find_faces(remote, quiet=True)
    find_faces(local, quiet=True)
    assert [d for d in differences(local.root, remote.root) if not d.startswith("manifest")] == []
    assert ingest(remote, [url], quiet=True)["skipped_sources"] == [url]  # the same source, without the slash


def test_csv_sources_in_a_bucket(s3_env, sample_csv, tmp_path):
    # a FER2013 CSV (gzip) and a path,label,split CSV of crops, one path missing
    s3_env.put(str(sample_csv), f"{BUCKET}/fer/{sample_csv.name}")
    local_dir = tmp_path / "crops"
    rows = [line.split(",") for line in gzip.open(sample_csv, "rt").read().splitlines()[1:13]]
    (local_dir / "imgs").mkdir(parents=True)
    lines = ["path,label,split"]
    for k, (emotion, pix, usage) in enumerate(rows):
        img = np.array(pix.split(), dtype=np.uint8).reshape(48, 48)
        Image.fromarray(img).save(local_dir / "imgs" / f"{k:02d}.png")
        label = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")[int(emotion)]
        lines.append(f"imgs/{k:02d}.png,{label},{'train' if usage == 'Training' else 'test'}")
    lines.append("imgs/missing.png,happy,train")
    (local_dir / "labels.csv").write_text("\n".join(lines) + "\n")
    s3_env.put(str(local_dir) + "/", f"{BUCKET}/crops/", recursive=True)

    for local_src, url in ((sample_csv, f"s3://{BUCKET}/fer/{sample_csv.name}"),
                           (local_dir / "labels.csv", f"s3://{BUCKET}/crops/labels.csv")):
        local, remote = Workspace(tmp_path / f"l-{local_src.name}"), Workspace(tmp_path / f"r-{local_src.name}")
        a, b = ingest(local, [local_src], quiet=True), ingest(remote, [url], quiet=True)
        assert (a["read"], a["kept"], a["rejected"]) == (b["read"], b["kept"], b["rejected"])
        _same_but_source(local, remote, url)
        ra, rb = local.rejects(), remote.rejects()
        pd.testing.assert_frame_equal(ra.drop(columns=["source", "reason"]), rb.drop(columns=["source", "reason"]))
    assert b["sources"][0]["rejects_by_reason"] == {"file_not_found": 1}  # the labels CSV's missing path


def test_a_missing_bucket_path_is_a_clear_error(s3_env, tmp_path):
    from curate.errors import CurateError

    with pytest.raises(CurateError, match="no such object or prefix"):
        ingest(Workspace(tmp_path / "ws"), [f"s3://{BUCKET}/nothing-here/"], quiet=True)
