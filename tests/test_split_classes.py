"""`curate split` scope steps on a photo workspace: class subsets (every split, raw too) and
photos whose face stage found no face (face_images.parquet status != ok -> reason no_face)."""
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.errors import CurateError
from curate.split.api import build_split, split_classes
from curate.split.policy import group_split
from curate.split.store import read_split
from curate.workspace import Workspace

CLASSES4 = ("happy", "sad", "neutral", "fear")
FOLDERS = {"happy": "happyv2", "sad": "sad", "neutral": "neutral_2", "fear": "fear"}


def make_photo_workspace(root, n: int = 48, rgb_size: int = 32, seed: int = 0) -> Workspace:
    """A photo workspace written through Workspace.commit: 4 classes (folder names such as happyv2),
    train/val/test given, colour crops tinted per class, face_images.parquet with a few failures."""
    rng = np.random.default_rng(seed)
    labels = [CLASSES4[i % 4] for i in range(n)]
    splits = ["train" if i < 2 * n // 3 else "val" if i < 5 * n // 6 else "test" for i in range(n)]
    ids = [f"photos:{FOLDERS[c]}/{i}.jpg" for i, c in enumerate(labels)]
    manifest = pd.DataFrame({
        "image_id": ids, "source": "photos", "source_row": pd.array([None] * n, dtype="Int64"),
        "source_path": [i.split(":", 1)[1] for i in ids], "split": splits, "label": labels,
        "original_label": [FOLDERS[c] for c in labels], "width": 200, "height": 160, "channels": 3,
        "digest": [f"d{i}" for i in range(n)], "source_format": "jpeg", "image_kind": "photo"})
    tint = {"happy": (200, 60, 60), "sad": (60, 60, 200), "neutral": (60, 200, 60), "fear": (200, 200, 60)}
    rgb = np.stack([np.clip(rng.normal(tint[c], 30, (rgb_size, rgb_size, 3)), 0, 255) for c in labels]).astype(np.uint8)
    grey = rng.integers(0, 256, (n, 48, 48), dtype=np.uint8)
    ws = Workspace(root)
    ws.commit(manifest, grey, image_size=48, rgb_rows=iter([rgb]), rgb_size=rgb_size)
    status = ["ok"] * n
    status[0] = "no_face"               # a train happy photo
    status[n - 3] = "no_face"           # a test photo: removed although the test split is untouched
    status[5] = "error"                 # a face-stage error counts as no face too
    ws.write_parquet("face_images.parquet", pd.DataFrame({
        "image_id": pd.array(ids, dtype="string"), "status": pd.array(status, dtype="string"),
        "n_faces": np.array([s == "ok" for s in status], np.int32),
        "main_face_index": pd.array([0 if s == "ok" else None for s in status], dtype="Int32"),
        "detail": pd.array(["" if s == "ok" else ("no face found" if s == "no_face" else "error: boom")
                            for s in status], dtype="string"),
        "seconds": np.zeros(n)}))
    return Workspace.open(root)


@pytest.fixture()
def photo_ws(tmp_path):
    return make_photo_workspace(tmp_path / "ws")


def test_class_subset_and_no_face_are_excluded_with_reasons(photo_ws):
    ws = photo_ws
    ids = ws.manifest()["image_id"].tolist()
    s = build_split(ws, classes=["happiness", "SAD", "neutral"], quiet=True)  # synonyms and case are mapped
    assert s["classes"] == ["happy", "sad", "neutral"] and s["options"]["classes"] == ["happy", "sad", "neutral"]
    ledger = pd.read_parquet(ws.path("splits/cleaned/ledger.parquet")).set_index("image_id")
    frame = read_split(ws, "cleaned")
    assert set(frame["label"]) == {"happy", "sad", "neutral"}
    fear = ledger[ledger["given_label"] == "fear"]
    assert (fear["status"] == "removed").all() and (fear["stage"] == "classes").all()
    assert fear["reason"].str.startswith("class not kept: fear").all()
    assert (fear["given_split"] == "test").any()  # the subset applies to the untouched test split too
    for i in (0, len(ids) - 3, 5):
        assert ledger.loc[ids[i], "status"] == "removed" and ledger.loc[ids[i], "stage"] == "faces"
        assert ledger.loc[ids[i], "reason"].startswith("no_face")
    assert "error: boom" in ledger.loc[ids[5], "reason"]
    assert s["steps"]["faces"] == {"no_face": 2, "face_error": 1} and s["steps"]["classes"] == {"fear": 12}
    assert s["removed"] == 12 + 3 and s["rows_after"] == len(ids) - 15
    assert json.loads(ws.path("splits/cleaned/split.json").read_text())["classes"] == ["happy", "sad", "neutral"]
    assert split_classes(ws, "cleaned") == ["happy", "sad", "neutral"]
    report = ws.path("splits/cleaned/report.md").read_text()
    assert "subset happy, sad, neutral" in report and "| class not kept: fear |" in report
    assert "| no_face |" in report and "| fear |" in report  # the before table still counts every class

    raw = build_split(ws, raw=True, classes="happy,sad", quiet=True)  # scope steps apply to raw splits too
    raw_ledger = pd.read_parquet(ws.path("splits/raw/ledger.parquet")).set_index("image_id")
    assert raw["classes"] == ["happy", "sad"] and set(read_split(ws, "raw")["label"]) == {"happy", "sad"}
    assert raw_ledger.loc[ids[0], "reason"].startswith("no_face")


def test_split_classes_without_subset_are_the_kept_classes_not_the_seven(photo_ws):
    s = build_split(photo_ws, quiet=True)
    assert s["classes"] == ["fear", "happy", "sad", "neutral"]  # canonical (Kaggle code) order
    no_faces = build_split(photo_ws, name="all", overrides=["exclude_no_face=false"], quiet=True)
    assert "faces" not in no_faces["steps"] and no_faces["removed"] == 0


def test_classes_option_on_the_command_line_and_refusals(photo_ws):
    runner = CliRunner()
    root = str(photo_ws.root)
    res = runner.invoke(app, ["split", "-w", root, "--name", "a", "--classes", "happy,sad", "--json", "-q"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["classes"] == ["happy", "sad"]
    res = runner.invoke(app, ["split", "-w", root, "--name", "b", "--set", "classes=[sad, happyv2]", "--json", "-q"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["classes"] == ["happy", "sad"]  # happyv2 -> happy
    res = runner.invoke(app, ["split", "-w", root, "--classes", "happy,sadd", "-q"])
    assert res.exit_code == 2 and "'sadd' is not a label of this workspace" in res.output
    with pytest.raises(CurateError, match="split.classes: expected a string or a list; got 3"):
        build_split(photo_ws, classes=3, quiet=True)


def test_group_split_on_a_set_too_small_to_stratify():
    labels = np.array(["a"] * 4 + ["b"] * 4)  # every class smaller than the 10 folds of a 0.1 share
    groups = np.array(["g0", "g0", "g1", "g2", "g3", "g4", "g5", "g6"])
    held = group_split(labels, groups, 0.25, seed=0)
    assert 2 <= held.sum() <= 4
    assert len(set(groups[held]) & set(groups[~held])) == 0  # a group never spans both sides
    assert np.array_equal(held, group_split(labels, groups, 0.25, seed=0))
