"""`curate split` on the sample workspace with hand-made decisions / duplicates / findings tables."""
import numpy as np
import pandas as pd
import pytest

from curate.errors import CurateError
from curate.findings import make_findings, write_findings
from curate.split.api import build_split
from curate.split.policy import group_split, latest_decisions
from curate.split.report import reconcile
from curate.split.store import read_split


def _ids(ws, split, n, offset=0):
    m = ws.manifest()
    return list(m.loc[m["split"] == split, "image_id"].iloc[offset:offset + n])


def _dups(rows):
    """rows: (image_id, cluster_id, cluster_type, proposed_action)."""
    df = pd.DataFrame(rows, columns=["image_id", "cluster_id", "cluster_type", "proposed_action"])
    df["kind"] = "exact"
    df["is_representative"] = df["proposed_action"] == "keep"
    df["inter_class"] = df["cluster_type"] == "inter_class"
    df["cross_split"] = df["cluster_type"] == "cross_split"
    return df


@pytest.fixture()
def staged(sample_ws):
    ws = sample_ws
    tr = _ids(ws, "train", 12)
    va = _ids(ws, "val", 2)
    te = _ids(ws, "test", 3)
    m = ws.manifest().set_index("image_id")
    other = next(c for c in ("happy", "sad", "angry") if c != m.loc[tr[0], "label"])
    decisions = pd.DataFrame({
        "image_id": [tr[0], tr[1], tr[1], tr[2], te[0], tr[9]],
        "decision": ["relabel", "keep", "exclude", "keep", "exclude", "relabel"],
        "new_label": [other, None, None, None, None, "surprise"],
        "reviewer": ["ann"] * 6,
        "timestamp": ["2026-01-01T10:00:00+00:00", "2026-01-01T10:00:00+00:00", "2026-01-02T10:00:00+00:00",
                      "2026-01-01T10:00:00+00:00", "2026-01-01T10:00:00+00:00", "2026-01-01T10:00:00+00:00"],
        "source": ["app"] * 6,
    })
    ws.write_parquet("decisions.parquet", decisions)
    ws.write_parquet("duplicates.parquet", _dups([
        (tr[3], 1, "intra_class", "drop_duplicate"), (tr[4], 1, "intra_class", "keep"),
        (tr[5], 2, "cross_split", "drop_leak"), (te[1], 2, "cross_split", "keep"),
        (tr[6], 3, "cross_split", "keep"), (te[2], 3, "cross_split", "keep"),          # leak guard: test
        (tr[7], 4, "cross_split", "keep"), (va[0], 4, "cross_split", "keep"),          # leak guard: val
        (tr[2], 5, "intra_class", "drop_duplicate"), (tr[10], 5, "intra_class", "keep"),  # reviewer keep wins
    ]))
    write_findings(ws, pd.concat([
        make_findings([tr[8], tr[2], tr[9], te[0]], "blank", np.ones(4), np.ones(4, bool), ["std 0"] * 4),
        make_findings([tr[11]], "blurry", np.ones(1), np.ones(1, bool), ["lap 3"]),
    ]))
    return ws, tr, va, te, other


def test_policy_order_and_reasons(staged):
    ws, tr, va, te, other = staged
    s = build_split(ws, quiet=True)
    ledger = pd.read_parquet(ws.path("splits/cleaned/ledger.parquet")).set_index("image_id")
    frame = read_split(ws, "cleaned").set_index("image_id")
    # decisions: relabel applied, latest decision wins (keep then exclude -> excluded), keep protects
    assert frame.loc[tr[0], "label"] == other
    assert ledger.loc[tr[1], "stage"] == "decision" and ledger.loc[tr[1], "reason"].startswith("reviewer exclude")
    assert tr[2] in frame.index  # kept by reviewer although drop_duplicate and flagged blank
    # duplicates
    assert ledger.loc[tr[3], "reason"].startswith("duplicate: drop_duplicate") and tr[4] in frame.index
    assert ledger.loc[tr[5], "reason"].startswith("duplicate: drop_leak")
    assert ledger.loc[tr[6], "reason"].startswith("leak guard: duplicate of a test image")
    assert ledger.loc[tr[7], "reason"].startswith("leak guard: duplicate of a val image") and va[0] in frame.index
    # findings: only excluded checks remove; a relabelled image that is flagged is still removed by findings
    assert ledger.loc[tr[8], "stage"] == "findings" and "blank" in ledger.loc[tr[8], "reason"]
    assert ledger.loc[tr[9], "stage"] == "findings" and ledger.loc[tr[9], "label"] == "surprise"
    assert tr[11] in frame.index  # blurry is not an excluding check by default
    # the test split is untouched by default, and the report says the decision was not applied
    assert all(t in frame.index for t in te) and frame.loc[te, "split"].eq("test").all()
    assert s["steps"]["decisions"]["skipped_test"] == 1
    report = (ws.path("splits/cleaned/report.md")).read_text()
    assert "not applied" in report and "kept untouched" in report
    # reconciliation: every image accounted for, in the summary and the report
    r = reconcile(ledger.reset_index(), frame.reset_index())
    assert r["images"] == len(ws.manifest()) == r["kept"] + r["removed"]
    assert s["removed"] == 7 and s["rows_after"] == len(ws.manifest()) - 7
    assert f"{r['images']:,} images before = {r['kept']:,} kept + {r['removed']:,} removed" in report
    assert sum(s["counts"].values()) == s["rows_after"]
    assert "| flagged: blank |" in report and "| duplicate: drop_leak |" in report


def test_clean_test_is_explicit_and_raw_cleans_nothing(staged):
    ws, tr, va, te, _ = staged
    s = build_split(ws, name="ct", clean_test=True, quiet=True)
    frame = read_split(ws, "ct").set_index("image_id")
    assert te[0] not in frame.index  # excluded by the reviewer, now applied
    assert s["options"]["clean_test"] and "cleaned too" in ws.path("splits/ct/report.md").read_text()
    raw = build_split(ws, raw=True, quiet=True)
    assert raw["name"] == "raw" and raw["removed"] == 0 and raw["rows_after"] == len(ws.manifest())
    raw_frame = read_split(ws, "raw")
    given = ws.manifest().set_index("image_id").loc[raw_frame["image_id"]]
    assert (raw_frame["label"].to_numpy() == given["label"].to_numpy()).all()
    with pytest.raises(CurateError, match="contradict"):
        build_split(ws, raw=True, clean_test=True, quiet=True)


def test_resplit_is_group_aware_and_stratified(sample_ws):
    ws = sample_ws
    m = ws.manifest()
    pool = m[m["split"].isin(["train", "val"])]
    rng = np.random.default_rng(0)
    chosen = pool.sample(300, random_state=0)["image_id"].tolist()
    clusters = rng.integers(0, 60, len(chosen))  # 60 clusters of ~5 images, spread over train and val
    ws.write_parquet("duplicates.parquet", _dups([(i, int(c), "intra_class", "keep")
                                                  for i, c in zip(chosen, clusters)]))
    build_split(ws, name="rs", resplit_val=True, seed=3, quiet=True)
    frame = read_split(ws, "rs")
    ledger = pd.read_parquet(ws.path("splits/rs/ledger.parquet"))
    merged = ledger.merge(frame[["image_id", "split"]], on="image_id", suffixes=("_l", ""))
    per_group = merged[merged["group"].str.startswith("dup:")].groupby("group")["split"].nunique()
    assert len(per_group) == 60 and (per_group == 1).all()
    val_share = (frame["split"] == "val").sum() / frame["split"].isin(["train", "val"]).sum()
    assert 0.06 < val_share < 0.14
    by_class = frame[frame["split"] == "val"]["label"].value_counts()
    assert by_class.min() >= 5  # every class represented in val
    assert (frame.loc[frame["split"] == "test", "image_id"].sort_values().to_numpy()
            == m.loc[m["split"] == "test", "image_id"].sort_values().to_numpy()).all()


def test_group_split_never_splits_groups():
    labels = np.repeat(np.arange(4), 50)
    groups = np.arange(200) // 4
    held = group_split(labels, groups, 0.2, seed=0)
    for g in np.unique(groups):
        assert len(set(held[groups == g])) == 1
    assert 0.1 < held.mean() < 0.3


@pytest.mark.parametrize("mode", ["undersample", "oversample", "class_weights"])
def test_balancing(sample_ws, mode):
    s = build_split(sample_ws, name=mode, balance=mode, quiet=True)
    frame = read_split(sample_ws, mode)
    train = frame[frame["split"] == "train"]
    counts = train["label"].value_counts()
    if mode == "class_weights":
        assert counts.max() > counts.min()
        w = train.groupby("label")["weight"].first()
        assert w[counts.idxmin()] > w[counts.idxmax()]
        assert (train["weight"] * 1).groupby(train["label"]).sum().round(6).nunique() == 1
        assert (frame.loc[frame["split"] != "train", "weight"] == 1).all()
    else:
        assert counts.nunique() == 1
    assert (frame["split"] == "test").sum() == (sample_ws.manifest()["split"] == "test").sum()
    assert "Reconciliation" in sample_ws.path(f"splits/{mode}/report.md").read_text()
    assert s["rows_after"] == len(frame)


def test_latest_decision_wins_by_timestamp_not_file_order():
    d = pd.DataFrame({"image_id": ["a", "a", "b"], "decision": ["exclude", "keep", "keep"],
                      "new_label": [None] * 3, "reviewer": ["x"] * 3,
                      "timestamp": ["2026-01-03T00:00:00+00:00", "2026-01-02T00:00:00+00:00",
                                    "2026-01-01T00:00:00+00:00"], "source": ["csv"] * 3})
    latest = latest_decisions(d).set_index("image_id")
    assert latest.loc["a", "decision"] == "exclude" and len(latest) == 2


def test_bad_inputs_refused(sample_ws):
    with pytest.raises(CurateError, match="split.export"):
        build_split(sample_ws, export=["tfrecord"], quiet=True)
    with pytest.raises(CurateError, match="no split named"):
        read_split(sample_ws, "nope")


def test_prior_balance_restores_the_class_shares_cleaning_changed(sample_ws):
    """Cleaning that removes most of one class: `prior` weights give train its shares from before."""
    m = sample_ws.manifest()
    train = m[m["split"] == "train"]
    before = train["label"].value_counts()
    target = before.idxmax()
    gone = list(train.loc[train["label"] == target, "image_id"].iloc[: int(before[target] * 0.75)])
    write_findings(sample_ws, make_findings(gone, "blank", np.ones(len(gone)), np.ones(len(gone), bool),
                                            ["std 0"] * len(gone)))
    build_split(sample_ws, name="plain", quiet=True)
    build_split(sample_ws, name="prior", balance="prior", quiet=True)
    plain, prior = read_split(sample_ws, "plain"), read_split(sample_ws, "prior")
    tr = prior[prior["split"] == "train"]
    assert len(tr) == (plain["split"] == "train").sum() == len(train) - len(gone)
    weighted = tr.groupby("label")["weight"].sum() / tr["weight"].sum()
    np.testing.assert_allclose(weighted.sort_index(), (before / before.sum()).sort_index(), atol=1e-9)
    assert tr.loc[tr["label"] == target, "weight"].iloc[0] > 1.5  # the thinned class counts for more
    assert tr["weight"].mean() == pytest.approx(1.0)
    assert (prior.loc[prior["split"] != "train", "weight"] == 1).all()
