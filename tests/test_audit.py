"""Audit on the bundled sample: blank images, findings contract, re-runs, errors, CLI, pipeline step."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from curate.audit.api import audit, audit_step
from curate.audit.registry import ALL_CHECKS, CHECKS
from curate.cli import app
from curate.findings import FINDING_COLUMNS, make_findings, read_findings, write_findings
from curate.workspace import Workspace


def test_every_real_blank_image_in_the_sample_is_flagged(sample_ws):
    summary = audit(sample_ws, ["blank"], quiet=True)
    findings = read_findings(sample_ws)
    pix = sample_ws.pixels().reshape(len(sample_ws.manifest()), -1).astype(np.float32)
    constant = sample_ws.manifest()["image_id"][pix.std(axis=1) < 1.0]
    assert len(constant) >= 3  # the sample ships real blank frames
    blank = findings[findings["check"] == "blank"].set_index("image_id")
    assert blank.loc[constant, "flagged"].all()
    assert summary["flagged"]["blank"] <= 0.03 * len(pix)  # real faces are not called blank
    assert blank.loc[constant[0], "evidence"].startswith("100% of pixels")


def test_full_audit_writes_contract_rows_for_every_check(sample_ws):
    summary = audit(sample_ws, None, seed=3, quiet=True)  # defaults: the bundled defect model
    findings = read_findings(sample_ws)
    n = len(sample_ws.manifest())
    assert list(findings.columns) == list(FINDING_COLUMNS)
    assert set(findings["check"]) == set(CHECKS)
    assert (findings.groupby("check").size() == n).all()
    assert findings["score"].notna().all()
    assert findings["suggested_label"].isna().all()
    assert sum(summary["errors"].values()) == 0
    # learned checks flag a minority of real FER images (misaligned's threshold is set for ~4% of
    # FER2013), and record evidence text
    for name, most in (("non_face", 0.05), ("misaligned", 0.1), ("watermark", 0.05)):
        part = findings[findings["check"] == name]
        assert part["flagged"].mean() < most, name
        assert part["evidence"].str.contains("model p=").all()
    runs = sample_ws.info()["runs"]
    assert runs[-1]["command"] == "audit" and runs[-1]["seed"] == 3


def test_rerun_replaces_only_its_own_rows(sample_ws):
    ids = sample_ws.manifest()["image_id"][:5]
    write_findings(sample_ws, make_findings(ids, "mislabel", np.ones(5), np.ones(5, bool), ["x"] * 5,
                                            ["happy"] * 5))
    audit(sample_ws, ["blank", "dark"], quiet=True)
    audit(sample_ws, ["dark"], overrides=["dark.threshold=0.0"], quiet=True)
    f = read_findings(sample_ws)
    n = len(sample_ws.manifest())
    counts = f.groupby("check").size().to_dict()
    assert counts == {"mislabel": 5, "blank": n, "dark": n}
    assert f.loc[f["check"] == "dark", "flagged"].all()  # the re-run's threshold took effect
    assert (f.loc[f["check"] == "mislabel", "suggested_label"] == "happy").all()


def test_one_unreadable_original_is_recorded_and_the_run_goes_on(tmp_path, sample_ws):
    from curate.ingest.api import ingest

    pix = sample_ws.pixels()
    root = tmp_path / "faces" / "happy"
    root.mkdir(parents=True)
    for i in range(12):
        rgb = np.repeat(np.asarray(pix[i]), 2, axis=0).repeat(2, axis=1)[..., None].repeat(3, axis=2)
        Image.fromarray(rgb).save(root / f"img{i:02d}.png")
    ws = Workspace(tmp_path / "faces_ws")  # tmp_path / "ws" is the sample copy
    ingest(ws, [tmp_path / "faces"], quiet=True)
    (root / "img03.png").unlink()
    summary = audit(ws, ["blank", "dark", "blurry"], quiet=True)
    assert summary["used_originals"] is True
    f = read_findings(ws)
    bad_id = ws.manifest().loc[ws.manifest()["source_path"].str.endswith("img03.png"), "image_id"].iloc[0]
    bad = f[f["image_id"] == bad_id]
    assert len(bad) == 3
    assert bad["score"].isna().all() and not bad["flagged"].any()
    assert bad["evidence"].str.startswith("error:").all()
    good = f[f["image_id"] != bad_id]
    assert good["score"].notna().all() and len(good) == 3 * 11
    assert summary["errors"] == {"blank": 1, "dark": 1, "blurry": 1}


def test_cli_json_list_and_errors(sample_ws, monkeypatch):
    runner = CliRunner()
    res = runner.invoke(app, ["audit", "-w", str(sample_ws.root), "--checks", "blank,low_contrast", "--json", "--quiet"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["checks"] == ["blank", "low_contrast"] and summary["flagged"]["blank"] >= 3
    res = runner.invoke(app, ["audit", "--list", "--json"])
    listed = json.loads(res.stdout)["checks"]
    assert [c["name"] for c in listed] == list(ALL_CHECKS) and ALL_CHECKS[-1] == "mislabel"
    assert all(c["description"] and any(k.endswith("threshold") for k in c["defaults"]) for c in listed[:-1])
    assert {c["name"]: c.get("judged_on") for c in listed}["cartoon"] == "crop+photo"
    assert listed[-1]["defaults"]["folds"] == 5
    res = runner.invoke(app, ["audit", "-w", str(sample_ws.root), "--checks", "blank,nonsense"])
    assert res.exit_code == 2 and "nonsense" in res.output
    res = runner.invoke(app, ["audit", "-w", str(sample_ws.root), "--checks", "blank", "--set", "blank.nope=1"])
    assert res.exit_code == 2 and "blank.nope" in res.output
    import sys

    monkeypatch.setitem(sys.modules, "curate.review.app", None)  # review app not importable
    res = runner.invoke(app, ["audit", "-w", str(sample_ws.root), "--checks", "blank", "--open-ui", "--quiet"])
    assert res.exit_code == 1 and "review app" in res.output


def test_pipeline_step_accepts_checks_and_set(sample_ws):
    summary = audit_step(sample_ws, {"checks": "blank,light", "set": {"light.threshold": 0.0}}, seed=0, quiet=True)
    assert summary["checks"] == ["blank", "light"]
    assert summary["flagged"]["light"] == len(sample_ws.manifest())
    with pytest.raises(Exception, match="unknown option"):
        audit_step(sample_ws, {"bogus": 1}, seed=0, quiet=True)
    assert isinstance(read_findings(sample_ws), pd.DataFrame)


def test_audit_checks_mislabel_runs_the_cross_validated_check(sample_ws):
    runner = CliRunner()
    res = runner.invoke(app, ["audit", "-w", str(sample_ws.root), "--checks", "blank,mislabel", "--json", "--quiet",
                              "--set", "mislabel.recipe=demo_tiny", "--set", "mislabel.folds=2",
                              "--set", "mislabel.tta=false", "--set", "blank.threshold=0.95"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["checks"] == ["blank"] and summary["mislabel"]["folds"] == 2
    f = read_findings(sample_ws)
    n = len(sample_ws.manifest())
    assert (f.groupby("check").size() == n).to_dict() == {"blank": True, "mislabel": True}
    mis = f[f["check"] == "mislabel"]
    assert mis["evidence"].str.contains(r"p\(\w+\)=0\.\d\d").all()
    assert mis.loc[mis["flagged"], "suggested_label"].notna().all()
    assert (sample_ws.root / "oof_probs.npy").exists()
