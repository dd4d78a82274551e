"""The FiftyOne review dataset (private database per session, see conftest) and the tag -> pull round trip."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.labels import CLASSES
from curate.review.decisions import read_decisions
from review_fixtures import review_ws  # noqa: F401 (fixture)

runner = CliRunner()


@pytest.fixture()
def built(review_ws):
    """The review dataset of a fixture workspace, built through the CLI; deleted afterwards."""
    from curate.review.dataset import dataset_name, fiftyone

    result = runner.invoke(app, ["review", "open", "--no-launch", "-w", str(review_ws.root), "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    fo = fiftyone()
    ds = fo.load_dataset(dataset_name(review_ws))
    yield review_ws, ds, json.loads(result.stdout)
    fo.delete_dataset(ds.name)


def test_dataset_fields_tags_and_views(built):
    ws, ds, summary = built
    m = ws.manifest()
    assert summary["samples"] == len(ds) == len(m) and summary["added"] == len(m)
    assert sorted(ds.values("image_id")) == sorted(m["image_id"].tolist())
    pngs = list(ws.path("images").glob("*.png"))
    assert len(pngs) == len(m)
    from PIL import Image

    sample = ds.match({"image_id": m["image_id"].iat[7]}).first()
    assert np.array_equal(np.asarray(Image.open(sample.filepath)), np.asarray(ws.pixels()[7]))
    assert sample.ground_truth.label == m["label"].iat[7] and sample.split == m["split"].iat[7]
    probs = np.load(ws.path("oof_probs.npy"))
    assert sample.prediction.label == CLASSES[int(probs[7].argmax())]
    assert sample.prediction.confidence == pytest.approx(float(probs[7].max()), rel=1e-6)
    schema = ds.get_field_schema()
    for check in ("mislabel", "non_face", "watermark", "misaligned", "blank"):
        assert {f"{check}_score", f"{check}_flagged", f"{check}_evidence"} <= set(schema)
    findings = ws.read_parquet("findings.parquet")
    wm = findings[(findings["check"] == "watermark") & findings["flagged"]]
    assert len(ds.match_tags("issue:watermark")) == len(wm)
    assert set(ds.match_tags("issue:watermark").values("image_id")) == set(wm["image_id"])
    dups = ws.read_parquet("duplicates.parquet")
    assert len(ds.exists("dup_cluster_id")) == len(dups)
    views = set(ds.list_saved_views())
    assert {"mislabel-candidates", "inter-class-duplicates", "cross-split-leaks", "non-faces", "watermarks",
            "misaligned", "low-quality"} <= views
    mis = ds.load_saved_view("mislabel-candidates")
    scores = mis.values("mislabel_score")
    assert len(mis) == int(findings[(findings["check"] == "mislabel")]["flagged"].sum())
    assert scores == sorted(scores, reverse=True)
    inter = ds.load_saved_view("inter-class-duplicates")
    assert set(inter.values("dup_cluster_type")) == {"inter_class"}
    assert inter.values("dup_cluster_id") == sorted(inter.values("dup_cluster_id"))
    assert len(ds.load_saved_view("cross-split-leaks")) == int(dups["cross_split"].sum())


def test_round_trip_tags_pull_decisions_manifest(built):
    """Tag in the dataset -> `review pull` -> decisions.parquet -> manifest labels -> split; nothing lost."""
    ws, ds, _ = built
    m = ws.manifest()
    original = m["original_label"].tolist()
    ids = m["image_id"].tolist()
    current = dict(zip(ids, m["label"]))
    wanted = {}
    for k, image_id in enumerate(ids[10:40]):                  # 30 relabels to a different class
        target = next(c for c in CLASSES[k % 7:] + CLASSES if c != current[image_id])
        wanted[image_id] = ("relabel", target)
    for image_id in ids[40:55]:
        wanted[image_id] = ("exclude", None)
    for image_id in ids[55:60]:
        wanted[image_id] = ("keep", None)
    for image_id, (decision, label) in wanted.items():
        tag = f"relabel:{label}" if decision == "relabel" else decision
        ds.select_by("image_id", [image_id]).tag_samples(tag)
    review_label_id = ids[60]
    s = ds.match({"image_id": review_label_id}).first()
    s.review_label = "Happy"
    s.save()
    wanted[review_label_id] = ("relabel", "happy")
    ds.select_by("image_id", [ids[61]]).tag_samples(["exclude", "relabel:sad"])   # conflicts: not recorded
    ds.select_by("image_id", [ids[62]]).tag_samples(["relabel:bored"])

    result = runner.invoke(app, ["review", "pull", "-w", str(ws.root), "--reviewer", "dana", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["appended"] == len(wanted) == 51
    assert {c["image_id"] for c in summary["conflicts"]} == {ids[61], ids[62]}
    decisions = read_decisions(ws)
    assert len(decisions) == len(wanted)
    got = {r.image_id: (r.decision, None if pd.isna(r.new_label) else r.new_label) for r in decisions.itertuples()}
    assert got == wanted
    assert set(decisions["reviewer"]) == {"dana"} and set(decisions["source"]) == {"app"}
    assert decisions["timestamp"].str.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00").all()
    ws.refresh()
    labels = dict(zip(ws.manifest()["image_id"], ws.manifest()["label"]))
    for image_id, (decision, label) in wanted.items():
        assert labels[image_id] == (label if decision == "relabel" else current[image_id])
    assert ws.manifest()["original_label"].tolist() == original

    # the split helper applies the pulled decisions: excluded images gone, relabels carried, keeps kept
    from curate.split.api import build_split

    build_split(ws, name="reviewed", clean_test=True, quiet=True,
                overrides={"duplicates": {"apply": False}, "findings": {"apply": False}})
    split = pd.read_parquet(ws.path("splits/reviewed/manifest.parquet")).set_index("image_id")
    for image_id, (decision, label) in wanted.items():
        if decision == "exclude":
            assert image_id not in split.index
        else:
            assert split.loc[image_id, "label"] == (label if decision == "relabel" else current[image_id])
    assert len(split) == len(ids) - sum(d == "exclude" for d, _ in wanted.values())

    # pulling again appends nothing; a changed tag appends exactly one row, and the latest wins
    again = runner.invoke(app, ["review", "pull", "-w", str(ws.root), "--json"])
    assert json.loads(again.stdout)["appended"] == 0
    first = ids[10]
    view = ds.select_by("image_id", [first])
    view.untag_samples([t for t in view.first().tags if t.startswith("relabel:")])
    view.tag_samples("exclude")
    changed = json.loads(runner.invoke(app, ["review", "pull", "-w", str(ws.root), "--json"]).stdout)
    assert changed["appended"] == 1 and len(read_decisions(ws)) == 52
    ws.refresh()
    assert dict(zip(ws.manifest()["image_id"], ws.manifest()["label"]))[first] == current[first]

    # rebuilding the dataset keeps every reviewer tag and review_label, replaces issue tags
    before_tags = {i: sorted(t for t in tags if not t.startswith("issue:"))
                   for i, tags in zip(ds.values("image_id"), ds.values("tags"))}
    rebuilt = runner.invoke(app, ["review", "open", "--no-launch", "-w", str(ws.root), "--json", "--quiet"])
    assert rebuilt.exit_code == 0 and json.loads(rebuilt.stdout)["updated"] == len(ids)
    ds.reload()
    after_tags = {i: sorted(t for t in tags if not t.startswith("issue:"))
                  for i, tags in zip(ds.values("image_id"), ds.values("tags"))}
    assert after_tags == before_tags
    assert ds.match({"image_id": review_label_id}).first().review_label == "Happy"
    # the relabelled ground truth is what the App shows now
    assert ds.match({"image_id": ids[11]}).first().ground_truth.label == wanted[ids[11]][1]


def test_csv_decisions_show_up_as_tags_after_rebuild(built, tmp_path):
    ws, ds, _ = built
    image_id = ws.manifest()["image_id"].iat[3]
    csv = tmp_path / "r.csv"
    csv.write_text(f"image_id,decision,new_label\n{image_id},relabel,fear\n")
    result = runner.invoke(app, ["review", "import", str(csv), "-w", str(ws.root), "--reviewer", "eve", "--json"])
    assert result.exit_code == 0, result.output
    runner.invoke(app, ["review", "open", "--no-launch", "-w", str(ws.root), "--quiet"])
    ds.reload()
    assert "relabel:fear" in ds.match({"image_id": image_id}).first().tags
    # and pulling it back does not duplicate the decision
    pulled = json.loads(runner.invoke(app, ["review", "pull", "-w", str(ws.root), "--json"]).stdout)
    assert pulled["appended"] == 0 and len(read_decisions(ws)) == 1


def test_removed_images_and_checks_leave_the_dataset(built):
    from curate.findings import read_findings
    from curate.review.app import build_review_dataset

    ws, ds, _ = built
    findings = read_findings(ws)
    ws.write_parquet("findings.parquet", findings[findings["check"] != "cartoon"])
    summary = build_review_dataset(ws, quiet=True)
    ds.reload()
    assert "cartoon_score" not in ds.get_field_schema() and "cartoons" not in summary["views"]
    assert len(ds.match_tags("issue:cartoon")) == 0


def test_pull_without_dataset_is_a_clear_error(review_ws):
    result = runner.invoke(app, ["review", "pull", "-w", str(review_ws.root)])
    assert result.exit_code == 1 and "run `curate review open" in result.output


def test_bare_workspace_builds_with_labels_only(sample_ws):
    from curate.review.app import open_review
    from curate.review.dataset import fiftyone

    summary = open_review(sample_ws, launch=False, quiet=True)
    fo = fiftyone()
    try:
        ds = fo.load_dataset(summary["dataset"])
        assert len(ds) == len(sample_ws.manifest()) and summary["checks"] == [] and summary["views"] == ["decided"]
        assert "prediction" not in ds.get_field_schema() and ds.count_sample_tags() == {}
        assert ds.count_values("ground_truth.label") == sample_ws.manifest()["label"].value_counts().to_dict()
    finally:
        fo.delete_dataset(summary["dataset"])
