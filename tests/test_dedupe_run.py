"""`curate dedupe` on the bundled sample: real exact-duplicate groups, leaks, conflicts; CLI; embedders."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from curate.dedupe.api import DUPLICATE_COLUMNS, PAIR_COLUMNS, dedupe
from curate.dedupe.bench import byte_groups
from curate.errors import ConfigError


@pytest.fixture(scope="module")
def deduped(sample_ws_path, tmp_path_factory):
    import shutil

    from curate.workspace import Workspace

    root = tmp_path_factory.mktemp("dedupe") / "ws"
    shutil.copytree(sample_ws_path, root)
    ws = Workspace(root)
    summary = dedupe(ws, quiet=True)  # default configuration (exact + pHash/mirror + pixel kNN verified)
    return ws, summary


def test_outputs_follow_the_contract(deduped):
    ws, summary = deduped
    dup = ws.read_parquet("duplicates.parquet")
    pairs = ws.read_parquet("duplicate_pairs.parquet")
    assert tuple(dup.columns) == DUPLICATE_COLUMNS
    assert tuple(pairs.columns) == PAIR_COLUMNS
    assert set(dup["kind"]) <= {"exact", "near"}
    assert set(dup["cluster_type"]) <= {"inter_class", "cross_split", "intra_class"}
    assert set(dup["proposed_action"]) <= {"keep", "drop_duplicate", "exclude_conflict", "drop_leak"}
    assert dup["image_id"].is_unique
    assert dup.groupby("cluster_id")["is_representative"].sum().eq(1).all()
    assert set(pairs["image_id_a"]) | set(pairs["image_id_b"]) == set(dup["image_id"])
    saved = ws.read_json("dedupe_summary.json")
    assert saved["clusters"] == summary["clusters"] == dup["cluster_id"].nunique()
    assert sum(saved["images_by_action"].values()) == len(dup)
    assert ws.info()["runs"][-1]["command"] == "dedupe"


def test_every_exact_duplicate_found_and_classified(deduped):
    ws, _ = deduped
    manifest = ws.manifest()
    groups = byte_groups(np.asarray(ws.pixels()))   # independent of the manifest digest
    counts = np.bincount(groups)
    dup = ws.read_parquet("duplicates.parquet").set_index("image_id")
    ids = manifest["image_id"].astype(str).to_numpy()
    multi = np.flatnonzero(counts > 1)
    assert len(multi) >= 10, "the sample is meant to hold real exact-duplicate groups"
    seen_cross = seen_conflict = 0
    for g in multi:
        rows = np.flatnonzero(groups == g)
        members = dup.loc[ids[rows]]                         # KeyError if one was missed
        assert members["cluster_id"].nunique() == 1          # copies share one cluster
        labels = manifest["label"].iloc[rows].dropna().unique()
        splits = manifest["split"].iloc[rows].dropna().unique()
        if len(labels) > 1:
            seen_conflict += 1
            assert members["inter_class"].all() and (members["cluster_type"] == "inter_class").all()
            assert (members["proposed_action"] == "exclude_conflict").all()
        elif len(splits) > 1:
            seen_cross += 1
            assert members["cross_split"].all()
            # the copy outside the evaluation split is the one dropped
            train_ids = ids[rows][manifest["split"].iloc[rows].to_numpy() == "train"]
            assert (dup.loc[train_ids, "proposed_action"] == "drop_leak").all()
            assert members["proposed_action"].eq("keep").sum() >= 1
    assert seen_cross > 0 and seen_conflict > 0
    # no false exact clusters: every "exact" cluster holds byte-identical images
    pos = pd.Series(np.arange(len(ids)), index=ids)
    for _, grp in dup[dup["kind"] == "exact"].groupby("cluster_id"):
        assert len(set(groups[pos[grp.index].to_numpy()])) == 1


def test_mirrored_and_reencoded_copies_are_found(sample_ws):
    from curate.dedupe.api import find_edges
    from curate.dedupe.transforms import jpeg, rotate
    from curate.settings import load_settings

    images = np.ascontiguousarray(sample_ws.pixels())[:300]
    rng = np.random.default_rng(0)
    extra = np.stack([images[5][:, ::-1], jpeg(images[7], rng), rotate(images[9], rng)])
    allimg = np.concatenate([images, extra])
    edges = find_edges(allimg, None, load_settings("dedupe"))
    linked = set(zip(edges["a"], edges["b"]))
    assert (5, 300) in linked and (7, 301) in linked and (9, 302) in linked
    methods = set(edges.loc[edges["b"] == 300, "method"])
    assert methods & {"phash_mirror", "pixel_mirror"}


def test_cli_json_and_set_override(sample_ws):
    from typer.testing import CliRunner

    from curate.cli import app

    result = CliRunner().invoke(app, ["dedupe", "-w", str(sample_ws.root), "--embedder", "none", "--json",
                                      "--quiet", "--set", "hash.radius=2", "--set", "policy.inter_class=ignore"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["embedder"] == "none" and summary["hash_radius"] == 2
    assert summary["images_by_action"]["exclude_conflict"] == 0 and summary["clusters_by_type"]["inter_class"] > 0
    assert "train-test" in summary["leaks_by_split_pair"]
    bad = CliRunner().invoke(app, ["dedupe", "-w", str(sample_ws.root), "--set", "hash.radus=2"])
    assert bad.exit_code == 2 and "unknown option" in bad.output


def test_pipeline_step(sample_ws, tmp_path):
    from curate.pipeline import run_pipeline

    spec = tmp_path / "p.yaml"
    spec.write_text("name: t\nsteps:\n  - dedupe: {embedder: none, hash: {methods: [phash, dhash]}}\n")
    result = run_pipeline(spec, workspace=sample_ws.root, quiet=True, log=lambda m: None)
    summary = result["steps"][0]["summary"]
    assert summary["hash_methods"] == ["phash", "dhash"] and summary["clusters"] > 0


def test_pixel_embedder_is_robust_to_photometric_changes(sample_ws):
    from curate.dedupe.embed import PixelEmbedder
    from curate.settings import load_settings

    images = np.ascontiguousarray(sample_ws.pixels())[:200]
    pc = load_settings("dedupe").pixel
    emb = PixelEmbedder(grid=pc.grid, blur=pc.blur, hog_weight=0.5)
    a = emb.embed(images)
    b = emb.embed(np.clip(images.astype(np.float32) * 0.8 + 20, 0, 255).astype(np.uint8))
    flat = images.reshape(200, -1).std(axis=1) == 0           # blank images embed to zero (never matched)
    assert flat.any() and a.shape == (200, 64 + 128)
    assert np.allclose(np.linalg.norm(a[~flat], axis=1), 1, atol=1e-4) and np.allclose(a[flat], 0)
    a, b = a[~flat], b[~flat]
    same = (a * b).sum(1)
    other = (a * np.roll(b, 1, axis=0)).sum(1)
    assert np.median(same) > 0.99 and np.median(same) > np.median(other) + 0.05


def test_clip_embedder_tiny_config_and_local_checkpoint(sample_ws, tmp_path):
    import open_clip
    import torch

    from curate.dedupe.embed import ClipEmbedder

    cfg = {"embed_dim": 32,
           "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
           "text_cfg": {"context_length": 16, "vocab_size": 1000, "width": 32, "heads": 2, "layers": 1}}
    (tmp_path / "curate-tiny-clip.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "curate-tiny-clip.json")
    torch.manual_seed(0)
    model = open_clip.create_model("curate-tiny-clip", pretrained=None)
    ckpt = tmp_path / "tiny.pt"
    torch.save({"state_dict": model.state_dict()}, ckpt)
    emb = ClipEmbedder("curate-tiny-clip", pretrained=str(ckpt), device="cpu", batch_size=16)
    images = np.ascontiguousarray(sample_ws.pixels())[:40]
    x = emb.embed(images)
    assert x.shape == (40, 32) and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-4)
    again = ClipEmbedder("curate-tiny-clip", pretrained=str(ckpt), device="cpu", batch_size=64).embed(images)
    assert np.allclose(x, again, atol=1e-5)          # the checkpoint, not a fresh random init, was loaded
    with pytest.raises(ConfigError, match="missing.pt: file not found"):
        ClipEmbedder("curate-tiny-clip", pretrained=str(tmp_path / "missing.pt"), device="cpu", batch_size=64)
    summary = dedupe(sample_ws, embedder="clip", quiet=True,
                     overrides={"clip": {"model": "curate-tiny-clip", "pretrained": str(ckpt), "device": "cpu",
                                         "max_distance": 0.0001}})
    assert summary["embedder"] == "clip" and summary["pairs_by_method"].get("exact", 0) > 0


def test_cnn_embedder_from_trainer_checkpoint(sample_ws, tmp_path):
    import torch

    from curate.dedupe.embed import CnnEmbedder, make_embedder
    from curate.settings import load_settings
    from curate.train.models import build_model
    from curate.train.trainer import save_model

    torch.manual_seed(0)
    model = build_model("baseline_cnn", 7, in_size=48, width=0.25).eval()
    save_model(model, tmp_path / "cnn")
    images = np.ascontiguousarray(sample_ws.pixels())[:32]
    x = CnnEmbedder(tmp_path / "cnn", device="cpu").embed(images)
    assert x.shape[0] == 32 and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-4)
    with pytest.raises(ValueError, match="cnn.checkpoint"):
        make_embedder("cnn", load_settings("dedupe", ["cnn.checkpoint=null"]))
    with pytest.raises(ConfigError, match="no model.json"):
        CnnEmbedder(tmp_path / "nothing", device="cpu")


def test_dedupe_benchmark_on_the_sample_scores_methods_and_reports_growth(sample_ws, tmp_path):
    from curate.dedupe.bench import bench_dedupe_step

    report = tmp_path / "dedupe.md"
    result = bench_dedupe_step(sample_ws, {"n_base": 600, "per_transform": 15, "radii": [4], "imagededup": False,
                                           "hash_loop_images": 200, "cli_runs": 1, "report": str(report)},
                               seed=0, quiet=True)
    assert result["exact"]["recall"] == 1.0 and result["exact"]["false_edges"] == 0
    default = result["methods"]["default (configs/dedupe.yaml)"]
    assert default["recall"] >= 0.85 and default["precision"] >= 0.95
    assert default["recall"] > result["methods"]["phash r<=4 +mirror"]["recall"]  # the embedder adds crops/rotations
    full, grown = result["timing"]["full_no_embeddings"], result["timing"]["growth_4x"]
    assert grown["images"] == 4 * full["images"] and grown["pairs"] > full["pairs"]
    assert len(grown["timings"]["runs_seconds"]) == 5
    assert grown["seconds"] == pytest.approx(min(grown["timings"]["runs_seconds"]), abs=1e-3)
    cli, cli_none = result["timing"]["cli_default"], result["timing"]["cli_embedder_none"]
    assert cli["pairs_by_method"].get("pixel", 0) > 0 and "pixel_verify_s" in cli["timings"]  # the default run
    assert cli_none["args"] == ["--embedder", "none"] and "pixel_verify_s" not in cli_none["timings"]
    assert not (sample_ws.root / "duplicates.parquet").exists()  # the timed runs worked on copies
    text = report.read_text()
    assert "| default (configs/dedupe.yaml) |" in text and "Growth per step:" in text
    assert "**Default `curate dedupe` on the whole workspace**" in text and "`--embedder none`" in text
