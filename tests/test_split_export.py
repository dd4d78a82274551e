"""Exports of a split read back by `curate ingest` (round trip) and the split/export CLI."""
import hashlib
import json

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from curate.cli import app
from curate.ingest.api import ingest
from curate.split.api import build_split
from curate.split.store import read_split
from curate.workspace import Workspace


def _fingerprints(ws, frame):
    """Sorted (split, label, sha1 of pixels) of the rows of ``frame`` in workspace ``ws``."""
    pix = ws.pixels()[ws.index_of(frame["image_id"])]
    return sorted(zip(frame["split"].astype(str), frame["label"].astype(str),
                      (hashlib.sha1(np.ascontiguousarray(p).tobytes()).hexdigest() for p in pix)))


def test_exports_round_trip_through_ingest(sample_ws, tmp_path):
    ws = sample_ws
    m = ws.manifest()
    # make the split non-trivial: exclude some train images through a reviewer decision
    ids = list(m.loc[m["split"] == "train", "image_id"].iloc[:20])
    ws.write_parquet("decisions.parquet", pd.DataFrame({
        "image_id": ids, "decision": ["exclude"] * 20, "new_label": [None] * 20, "reviewer": ["t"] * 20,
        "timestamp": ["2026-01-01T00:00:00+00:00"] * 20, "source": ["csv"] * 20}))
    s = build_split(ws, export=["imagefolder", "csv", "parquet"], quiet=True)
    frame = read_split(ws, "cleaned")
    expected = _fingerprints(ws, frame)
    assert len(expected) == len(m) - 20

    folder = Workspace(tmp_path / "from_folder")
    ingest(folder, [s["exports"]["imagefolder"]], quiet=True)
    fm = folder.manifest()
    assert _fingerprints(folder, fm[["image_id", "split", "label"]]) == expected

    csv_ws = Workspace(tmp_path / "from_csv")
    ingest(csv_ws, [s["exports"]["csv"]], quiet=True)
    cm = csv_ws.manifest()
    assert _fingerprints(csv_ws, cm[["image_id", "split", "label"]]) == expected

    pq = pd.read_parquet(s["exports"]["parquet"])
    assert list(pq.columns[:4]) == ["image_id", "split", "label", "weight"] and len(pq) == len(frame)
    first = np.array(pq["pixels"].iloc[0].split(), dtype=np.uint8).reshape(48, 48)
    np.testing.assert_array_equal(first, ws.pixels()[ws.index_of([pq["image_id"].iloc[0]])[0]])
    header = open(s["exports"]["csv"]).readline().strip()
    assert header == "emotion,pixels,Usage"


def test_split_and_export_cli(sample_ws):
    runner = CliRunner()
    root = str(sample_ws.root)
    res = runner.invoke(app, ["split", "-w", root, "--raw", "--json", "-q"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["name"] == "raw" and summary["removed"] == 0
    res = runner.invoke(app, ["export", "-w", root, "--name", "raw", "--format", "csv", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["exports"]["csv"].endswith("raw_fer2013.csv")
    res = runner.invoke(app, ["split", "-w", root, "--balance", "sideways", "-q"])
    assert res.exit_code != 0 and "split.balance" in res.output
    res = runner.invoke(app, ["split", "-w", root, "--set", "nonsense=1", "-q"])
    assert res.exit_code == 2 and "unknown option" in res.output
    runs = Workspace(root).info()["runs"]
    assert any(r["command"] == "split" for r in runs) and any(r["command"] == "export" for r in runs)
