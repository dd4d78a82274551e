"""Pipelines (validation, overrides) and the end-to-end demo (the CLI surface: test_cli_shape.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.config import ConfigError, load_config, parse_overrides
from curate.errors import CurateError
from curate.pipeline import STEPS, load_pipeline, resolve_step

runner = CliRunner()


def test_every_pipeline_step_resolves():
    for name in STEPS:
        assert callable(resolve_step(name)), name


def test_unknown_step_is_refused_before_anything_runs(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("steps:\n  - ingest: {sources: [x]}\n  - frobnicate: {}\n")
    with pytest.raises(CurateError, match="unknown step 'frobnicate'.*known steps"):
        load_pipeline(p)
    out = runner.invoke(app, ["run", str(p), "-w", str(tmp_path / "ws")])
    assert out.exit_code == 2 and not (tmp_path / "ws").exists()


def test_overrides_are_typed_and_unknown_keys_refused():
    assert parse_overrides(["a.b=3", "c=[1, 2]", "d=true", "e=x"]) == {"a": {"b": 3}, "c": [1, 2], "d": True, "e": "x"}
    assert load_config("ingest", ["max_pixels=5"])["max_pixels"] == 5
    with pytest.raises(ConfigError, match="unknown option ingest.max_pixel"):
        load_config("ingest", ["max_pixel=5"])


def test_demo_runs_end_to_end(tmp_path):
    env = dict(os.environ, CURATE_QUIET="1")
    out = subprocess.run([sys.executable, "-m", "curate.cli", "demo", "-w", str(tmp_path / "demo"), "--json"],
                         capture_output=True, text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    steps = [s["step"] for s in result["steps"]]
    assert steps[:2] == ["ingest", "info"]
    assert result["steps"][0]["summary"]["kept"] == 1626
    ws_json = json.loads((tmp_path / "demo" / "workspace.json").read_text())
    assert [r["command"] for r in ws_json["runs"]][0] == "ingest"
    assert (tmp_path / "demo" / "manifest.parquet").exists()
    assert steps == ["ingest", "info", "dedupe", "audit", "mislabel", "split", "split", "train-eval", "train-eval",
                     "compare", "report"]
    demo = tmp_path / "demo"
    findings = pd.read_parquet(demo / "findings.parquet")
    assert {"blank", "non_face", "watermark", "mislabel"} <= set(findings["check"])
    assert findings.loc[findings["check"] == "blank", "flagged"].sum() >= 3  # the sample's real blank frames
    mislabel = result["steps"][4]["summary"]  # results that mean something, or the reason they would not
    mis_rows = findings[findings["check"] == "mislabel"]
    if mislabel["judged"]:
        assert mislabel["reason"] is None and mis_rows["flagged"].sum() == mislabel["flagged"]
    else:
        assert mislabel["flagged"] == 0 and not mis_rows["flagged"].any()
        assert mislabel["reason"].startswith("not judged: out-of-fold accuracy ")
        assert "warning: mislabel not judged: " in out.stderr
    dups = pd.read_parquet(demo / "duplicates.parquet")
    assert (dups["cluster_type"] == "cross_split").any()  # the sample ships cross-split copies
    compare = (demo / "compare.md").read_text()
    assert "demo-raw" in compare and "demo-cleaned" in compare
    assert (demo / "report" / "index.html").stat().st_size > 100_000
    assert "Report:" not in out.stdout  # --json keeps stdout machine-readable
