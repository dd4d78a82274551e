"""Reviewer decisions without FiftyOne: tags -> decisions, conflicts, append-only file, labels, CSV."""
from __future__ import annotations

import pandas as pd
import pytest

from curate.labels import CLASSES
from curate.review.api import decisions_from_annotations, export_review, import_review
from curate.review.decisions import (DECISION_COLUMNS, append_decisions, apply_decisions, decide, effective_labels,
                                     latest_decisions, read_decisions)
from curate.review.table import review_table
from review_fixtures import review_ws  # noqa: F401 (fixture)

KNOWN = set(CLASSES)


@pytest.mark.parametrize("tags,review_label,expected", [
    (["keep"], None, ("keep", None)),
    (["exclude", "issue:non_face"], None, ("exclude", None)),
    (["relabel:happy"], None, ("relabel", "happy")),
    (["relabel:Happiness"], None, ("relabel", "happy")),      # synonyms and case accepted
    (["relabel:3"], None, ("relabel", "happy")),              # Kaggle code
    ([], "sad", ("relabel", "sad")),                          # review_label field
    (["relabel:sad"], "sad", ("relabel", "sad")),             # both agree
    (["issue:mislabel", "issue:dup-inter-class"], None, (None, None)),
])
def test_decide_reads_one_decision(tags, review_label, expected):
    d = decide(tags, review_label, KNOWN)
    assert d.conflict is None
    assert (d.decision, d.new_label) == expected


@pytest.mark.parametrize("tags,review_label,fragment", [
    (["exclude", "relabel:happy"], None, "both exclude and relabel"),
    (["relabel:happy", "relabel:sad"], None, "different relabel targets"),
    (["relabel:bored"], None, "unknown class 'bored'"),
    (["keep", "exclude"], None, "both keep and exclude"),
    (["keep", "relabel:fear"], None, "both keep and relabel:fear"),
    (["relabel:happy"], "sad", "different relabel targets"),
    ([], "grumpy", "unknown class"),
])
def test_decide_reports_conflicts(tags, review_label, fragment):
    d = decide(tags, review_label, KNOWN)
    assert d.decision is None and fragment in d.conflict


def test_append_only_new_or_changed(sample_ws):
    ids = sample_ws.manifest()["image_id"].tolist()
    first = pd.DataFrame({"image_id": ids[:3], "decision": ["relabel", "exclude", "keep"],
                          "new_label": ["happy", None, None]})
    added = append_decisions(sample_ws, first, reviewer="ann", source="app", timestamp="2026-01-01T00:00:00+00:00")
    assert len(added) == 3 and list(added.columns) == list(DECISION_COLUMNS)
    again = append_decisions(sample_ws, first, reviewer="bob", source="app")
    assert len(again) == 0, "unchanged decisions must not be appended"
    changed = first.copy()
    changed.loc[0, "new_label"] = "sad"
    added = append_decisions(sample_ws, changed, reviewer="bob", source="csv", timestamp="2026-01-02T00:00:00+00:00")
    assert added["image_id"].tolist() == [ids[0]] and added["new_label"].tolist() == ["sad"]
    all_rows = read_decisions(sample_ws)
    assert len(all_rows) == 4
    assert all_rows.iloc[:3]["reviewer"].tolist() == ["ann"] * 3, "earlier rows are never rewritten"
    latest = latest_decisions(all_rows)
    assert latest.loc[ids[0], "new_label"] == "sad" and latest.loc[ids[0], "reviewer"] == "bob"
    with pytest.raises(ValueError, match="unknown decisions"):
        append_decisions(sample_ws, pd.DataFrame({"image_id": ids[:1], "decision": ["delete"], "new_label": [None]}),
                         reviewer="x", source="app")


def test_labels_follow_latest_decision_original_never_changes(sample_ws):
    m = sample_ws.manifest()
    ids = m["image_id"].tolist()
    orig = m["original_label"].tolist()
    target = next(c for c in CLASSES if c != m["label"].iat[0])
    append_decisions(sample_ws, pd.DataFrame({"image_id": [ids[0], ids[1]], "decision": ["relabel", "exclude"],
                                              "new_label": [target, None]}),
                     reviewer="ann", source="app", timestamp="2026-01-01T00:00:00+00:00")
    counts = apply_decisions(sample_ws)
    m2 = sample_ws.manifest()
    assert counts["labels_changed"] == 1 and m2["label"].iat[0] == target
    assert m2["label"].iat[1] == m["label"].iat[1], "exclude keeps the label (the split drops the image)"
    assert m2["original_label"].tolist() == orig
    # a later keep restores the source label
    append_decisions(sample_ws, pd.DataFrame({"image_id": [ids[0]], "decision": ["keep"], "new_label": [None]}),
                     reviewer="bob", source="csv", timestamp="2026-01-03T00:00:00+00:00")
    apply_decisions(sample_ws)
    assert sample_ws.manifest()["label"].iat[0] == m["label"].iat[0]
    labels = effective_labels(sample_ws.manifest(), read_decisions(sample_ws))
    assert labels.loc[ids[0]] == m["label"].iat[0]


def test_annotations_to_decisions_and_conflicts():
    ann = pd.DataFrame({"image_id": ["a", "b", "c", "d", "e"],
                        "tags": [["relabel:fear"], ["exclude", "relabel:sad"], ["issue:blank"], ["keep"], ["relabel:xyz"]],
                        "review_label": [None, None, None, None, None]})
    decisions, conflicts = decisions_from_annotations(ann, KNOWN)
    assert decisions.fillna("").to_dict("records") == [{"image_id": "a", "decision": "relabel", "new_label": "fear"},
                                                       {"image_id": "d", "decision": "keep", "new_label": ""}]
    assert [c["image_id"] for c in conflicts] == ["b", "e"]


def test_review_table_wide_columns(review_ws):
    table, checks = review_table(review_ws)
    m = review_ws.manifest()
    assert len(table) == len(m) and table["image_id"].tolist() == m["image_id"].tolist()
    assert {"mislabel", "non_face", "blank", "watermark"} <= set(checks)
    findings = review_ws.read_parquet("findings.parquet")
    nf = findings[findings["check"] == "non_face"].set_index("image_id")
    some = nf.index[nf["flagged"]][0]
    row = table.set_index("image_id").loc[some]
    assert row["non_face_flagged"] and row["non_face_score"] == pytest.approx(nf.loc[some, "score"])
    assert "issue:non_face" in row["issue_tags"] and "non_face" in row["flagged_checks"].split(",")
    dups = review_ws.read_parquet("duplicates.parquet")
    inter = dups[dups["cluster_type"] == "inter_class"].iloc[0]
    r = table.set_index("image_id").loc[inter["image_id"]]
    assert r["dup_cluster_id"] == inter["cluster_id"] and r["dup_cluster_type"] == "inter_class"
    assert "issue:dup-inter-class" in r["issue_tags"]
    # OOF prediction = argmax of the probabilities row of that image
    import numpy as np

    probs = np.load(review_ws.path("oof_probs.npy"))
    assert table["prediction_label"].iat[5] == CLASSES[int(probs[5].argmax())]
    assert table["prediction_confidence"].iat[5] == pytest.approx(float(probs[5].max()), rel=1e-6)
    assert table["dup_cluster_id"].notna().sum() == len(dups)


def test_csv_export_import_round_trip(review_ws, tmp_path):
    out = tmp_path / "review.csv"
    summary = export_review(review_ws, out, only_flagged=True, quiet=True)
    csv = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert summary["rows"] == len(csv) and 0 < len(csv) < len(review_ws.manifest())
    assert (csv["flagged_checks"].ne("") | csv["dup_cluster_id"].ne("")).all()
    assert all(review_ws.path("images").joinpath(p.split("/")[-1]).exists() for p in csv["image_path"].head(20))
    mislabel_rows = csv[csv["flagged_checks"].str.contains("mislabel")]
    assert mislabel_rows["suggested_label"].ne("").all() and mislabel_rows["evidence"].str.contains("mislabel").all()
    original = review_ws.manifest()["original_label"].tolist()
    # fill in: 3 good rows and 3 bad ones
    csv.loc[0, ["decision", "new_label"]] = ["relabel", "Surprise"]
    csv.loc[1, ["decision", "new_label"]] = ["exclude", ""]
    csv.loc[2, ["decision", "new_label"]] = ["keep", ""]
    csv.loc[3, ["decision", "new_label"]] = ["relabel", "bored"]
    csv.loc[4, ["decision", "new_label"]] = ["delete", ""]
    csv.loc[5, ["decision", "new_label"]] = ["relabel", ""]
    csv.to_csv(out, index=False)
    result = import_review(review_ws, out, reviewer="carol")
    assert result["appended"] == 3
    assert [e.split(": ")[1] for e in result["errors"]] == ["row 5", "row 6", "row 7"]
    assert "'bored' is not a known class" in result["errors"][0] and "'delete'" in result["errors"][1]
    decisions = read_decisions(review_ws)
    assert decisions["reviewer"].unique().tolist() == ["carol"] and set(decisions["source"]) == {"csv"}
    m = review_ws.manifest().set_index("image_id")
    assert m.loc[csv.loc[0, "image_id"], "label"] == "surprise"
    assert review_ws.manifest()["original_label"].tolist() == original
    again = import_review(review_ws, out, reviewer="carol")
    assert again["appended"] == 0 and again["unchanged"] == 3
    # the next export shows the current decision
    export_review(review_ws, out, quiet=True)
    current = pd.read_csv(out, dtype=str, keep_default_na=False).set_index("image_id")
    assert current.loc[csv.loc[0, "image_id"], "current_decision"] == "relabel"
    assert current.loc[csv.loc[0, "image_id"], "current_new_label"] == "surprise"


def test_csv_import_errors_name_the_file(review_ws, tmp_path):
    from curate.errors import CurateError

    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\nx,happy\n")
    with pytest.raises(CurateError, match="missing column"):
        import_review(review_ws, bad)
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("image_id,decision,new_label\nnot-an-id,exclude,\n")
    result = import_review(review_ws, unknown)
    assert result["appended"] == 0 and "row 2: image_id 'not-an-id' is not in the workspace" in result["errors"][0]
