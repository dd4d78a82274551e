"""The mislabel check on the bundled sample with a tiny recipe: outputs, contracts, resume."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from curate.findings import FINDING_COLUMNS, read_findings
from curate.labels import CLASSES
from curate.mislabel.api import run_mislabel

TINY = {"recipe": "demo_tiny", "recipe_overrides": {"epochs": 1}, "folds": 3, "tta": False}


@pytest.mark.slow
def test_oof_run_contracts_and_resume(sample_ws):
    first = run_mislabel(sample_ws, overrides=TINY, seed=0, quiet=True)
    assert first["trained_folds"] == [0, 1, 2] and first["skipped_folds"] == []
    manifest = sample_ws.manifest()
    n = int(manifest["label"].notna().sum())
    probs = np.load(sample_ws.path("oof_probs.npy"))
    assert probs.shape == (n, len(CLASSES)) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    index = pd.read_parquet(sample_ws.path("oof_index.parquet"))
    assert list(index.columns) == ["image_id", "fold", "given_label"]
    assert set(index["fold"]) == {0, 1, 2}
    meta = sample_ws.read_json("oof_meta.json")
    assert meta["classes"] == list(CLASSES) and meta["folds"] == 3
    assert meta["accuracy"] == pytest.approx(float((probs.argmax(1) == index["given_label"].map(
        {c: i for i, c in enumerate(CLASSES)}).to_numpy()).mean()), abs=1e-6)
    # copies (same digest) share a fold, so no copy leaks a held-out label
    merged = index.merge(manifest[["image_id", "digest"]].astype({"image_id": str}).assign(
        image_id=lambda d: d["image_id"].astype("string")), on="image_id")
    assert merged.groupby("digest")["fold"].nunique().max() == 1
    assert (merged.groupby("digest").size() > 1).any()  # the sample does hold duplicates

    findings = read_findings(sample_ws)
    rows = findings[findings["check"] == "mislabel"]
    assert list(findings.columns) == list(FINDING_COLUMNS)
    assert len(rows) == n and rows["image_id"].is_unique
    assert rows["score"].between(0, 1).all()
    assert rows["flagged"].sum() == first["flagged"]
    given = index.set_index("image_id")["given_label"]
    sugg = rows.set_index("image_id")["suggested_label"]
    has = sugg.notna()
    single = has & ~sugg.fillna("").str.startswith("ambiguous: ")
    assert (sugg[single] != given[sugg[single].index]).all()
    assert sugg[single].isin(CLASSES).all()
    pairs = sugg[has & ~single].str.removeprefix("ambiguous: ").str.split("|")
    assert pairs.map(lambda p: len(p) == 2 and p[0] != p[1] and set(p) <= set(CLASSES)).all()
    assert rows.loc[rows["flagged"], "suggested_label"].notna().all()
    assert rows["evidence"].str.contains(r"p\(").all()

    second = run_mislabel(sample_ws, overrides=TINY, seed=0, quiet=True)
    assert second["trained_folds"] == [] and second["skipped_folds"] == [0, 1, 2]
    np.testing.assert_array_equal(np.load(sample_ws.path("oof_probs.npy")), probs)

    sample_ws.path("mislabel/fold_1.npz").unlink()
    third = run_mislabel(sample_ws, overrides=TINY, seed=0, quiet=True)
    assert third["trained_folds"] == [1] and third["skipped_folds"] == [0, 2]
    np.testing.assert_allclose(np.load(sample_ws.path("oof_probs.npy")), probs, atol=1e-6)  # seeded


@pytest.mark.slow
def test_dynamics_mode_writes_findings(sample_ws):
    summary = run_mislabel(sample_ws, overrides={"mode": "dynamics", "recipe": "demo_tiny",
                                                 "recipe_overrides": {"epochs": 2}}, seed=0, quiet=True)
    rows = read_findings(sample_ws)
    rows = rows[rows["check"] == "mislabel"]
    assert summary["mode"] == "dynamics" and len(rows) == summary["images"]
    assert rows["evidence"].str.contains("AUM=").all()
    assert rows["flagged"].sum() == summary["flagged"]


def test_cli_and_pipeline_registration():
    from typer.testing import CliRunner

    from curate.cli import app
    from curate.pipeline import resolve_step

    result = CliRunner().invoke(app, ["mislabel", "--help"])
    assert result.exit_code == 0 and "--mode" in result.output
    assert resolve_step("mislabel").__name__ == "mislabel_step"
    assert resolve_step("mislabel-bench").__name__ == "mislabel_bench_step"
    assert resolve_step("mislabel-bench").__module__ == "curate.mislabel.bench"


def test_unknown_option_is_refused(sample_ws):
    from curate.config import ConfigError

    with pytest.raises(ConfigError):
        run_mislabel(sample_ws, overrides={"fols": 3}, quiet=True)
