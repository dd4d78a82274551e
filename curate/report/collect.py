"""What the audit report shows, gathered from the workspace (pure functions on frames + one loader).

Every function returns plain data (dicts, lists, small frames); rendering lives in
:mod:`curate.report.render`, plots in :mod:`curate.report.plots`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from curate.findings import not_judged_reason, read_findings
from curate.labels import CLASSES, canonical_label
from curate.review.decisions import latest_decisions, read_decisions
from curate.workspace import Workspace

TYPE_ORDER = {"inter_class": 0, "cross_split": 1, "intra_class": 2}
DROP_ACTIONS = ("drop_duplicate", "exclude_conflict", "drop_leak")
SPLIT_ORDER = ("train", "val", "test", "(none)")


def class_order(labels: pd.Series) -> list[str]:
    """Canonical classes first (Kaggle order), then any other label alphabetically."""
    present = set(labels.dropna().astype(str))
    return [c for c in CLASSES if c in present] + sorted(present - set(CLASSES))


def distribution(frame: pd.DataFrame) -> pd.DataFrame:
    """Counts of label (rows) x split (columns), with missing splits shown as ``(none)``."""
    split = frame["split"].astype("string").fillna("(none)")
    table = pd.crosstab(frame["label"].astype("string").fillna("(none)"), split)
    cols = [s for s in SPLIT_ORDER if s in table.columns] + sorted(set(table.columns) - set(SPLIT_ORDER))
    return table.reindex(index=class_order(table.index.to_series()), columns=cols, fill_value=0)


def labels_before(manifest: pd.DataFrame) -> pd.DataFrame:
    """image_id, split, label as the source gave it (before any review decision)."""
    before = [canonical_label(o) if not pd.isna(o) else None for o in manifest["original_label"]]
    label = pd.Series(before, dtype="string").fillna(manifest["label"].astype("string").reset_index(drop=True))
    return pd.DataFrame({"image_id": manifest["image_id"].to_numpy(), "split": manifest["split"].to_numpy(),
                         "label": label.to_numpy()})


def proposed_after(manifest: pd.DataFrame, duplicates: pd.DataFrame | None, decisions: pd.DataFrame) -> pd.DataFrame:
    """The cleaned set proposed so far: decisions applied, excluded and dropped duplicates removed.

    A reviewer's ``keep`` overrides a duplicate drop; ``exclude`` removes the image.
    """
    latest = latest_decisions(decisions)
    ids = manifest["image_id"].astype("string")
    drop = pd.Series(False, index=pd.Index(ids))
    if duplicates is not None and len(duplicates):
        dropped = duplicates.loc[duplicates["proposed_action"].isin(DROP_ACTIONS), "image_id"].astype("string")
        drop.loc[drop.index.isin(dropped)] = True
    if len(latest):
        kept = latest.index[latest["decision"] != "exclude"]
        drop.loc[drop.index.isin(kept)] = False
        drop.loc[drop.index.isin(latest.index[latest["decision"] == "exclude"])] = True
    out = manifest[["image_id", "split", "label"]].copy()
    return out[~drop.to_numpy()].reset_index(drop=True)


def latest_split(ws: Workspace) -> tuple[str, pd.DataFrame] | None:
    """Name and manifest of the most recently written ``splits/<name>/manifest.parquet``, if any."""
    found = sorted(ws.path("splits").glob("*/manifest.parquet"), key=lambda p: p.stat().st_mtime)
    if not found:
        return None
    path = found[-1]
    frame = pd.read_parquet(path)
    if not {"split", "label"} <= set(frame.columns) and "image_id" in frame:
        base = ws.manifest().set_index("image_id")
        for col in ("split", "label"):
            if col not in frame:
                frame[col] = base[col].reindex(frame["image_id"].astype("string")).to_numpy()
    return path.parent.name, frame


def check_galleries(findings: pd.DataFrame, manifest: pd.DataFrame, top_n: int) -> list[dict[str, Any]]:
    """Per check: counts and the top-N flagged images by score (row, score, evidence, label, split);
    ``not_judged`` is the check's reason when it ran but could not judge (every evidence says so)."""
    if len(findings) == 0:
        return []
    pos = pd.Series(np.arange(len(manifest)), index=pd.Index(manifest["image_id"].astype("string")))
    out = []
    for check, rows in findings.groupby("check", sort=True):
        flagged = rows[rows["flagged"]].sort_values(["score", "image_id"], ascending=[False, True])
        flagged = flagged[flagged["image_id"].isin(pos.index)]
        items = []
        for rec in flagged.head(top_n).itertuples(index=False):
            row = int(pos[rec.image_id])
            items.append({"row": row, "image_id": rec.image_id, "score": float(rec.score),
                          "evidence": None if pd.isna(rec.evidence) else str(rec.evidence),
                          "suggested": None if pd.isna(rec.suggested_label) else str(rec.suggested_label),
                          "label": str(manifest["label"].iat[row]), "split": str(manifest["split"].iat[row])})
        out.append({"check": str(check), "flagged": int(rows["flagged"].sum()), "scored": int(len(rows)),
                    "items": items, "not_judged": not_judged_reason(rows["evidence"])})
    return out


def duplicate_clusters(duplicates: pd.DataFrame | None, manifest: pd.DataFrame, max_clusters: int) -> dict[str, Any]:
    """Cluster counts by type and the first ``max_clusters`` clusters (inter-class first, then larger)."""
    if duplicates is None or len(duplicates) == 0:
        return {"counts": {}, "images": 0, "clusters": [], "actions": {}}
    d = duplicates.copy()
    d["image_id"] = d["image_id"].astype("string")
    pos = pd.Series(np.arange(len(manifest)), index=pd.Index(manifest["image_id"].astype("string")))
    d = d[d["image_id"].isin(pos.index)]
    per = d.groupby("cluster_id").agg(cluster_type=("cluster_type", "first"), size=("image_id", "size"))
    counts = per["cluster_type"].value_counts().to_dict()
    per["order"] = per["cluster_type"].map(TYPE_ORDER).fillna(9)
    chosen = per.sort_values(["order", "size"], ascending=[True, False]).head(max_clusters)
    clusters = []
    for cid, info in chosen.iterrows():
        members = []
        for rec in d[d["cluster_id"] == cid].itertuples(index=False):
            row = int(pos[rec.image_id])
            members.append({"row": row, "image_id": rec.image_id, "label": str(manifest["label"].iat[row]),
                            "split": str(manifest["split"].iat[row]), "action": str(rec.proposed_action),
                            "representative": bool(rec.is_representative), "kind": str(rec.kind)})
        clusters.append({"cluster_id": int(cid), "type": str(info["cluster_type"]), "members": members})
    return {"counts": {str(k): int(v) for k, v in counts.items()}, "images": int(len(d)),
            "clusters": clusters, "actions": d["proposed_action"].value_counts().to_dict()}


def confident_joint_noise(probs: np.ndarray, given: np.ndarray, num_classes: int) -> dict[str, np.ndarray]:
    """Per-class label-noise estimates from out-of-fold probabilities (confident learning).

    Per class j the threshold t_j is the mean p_j over images labelled j; an image counts
    towards (given i, true j) for the class j with the highest p_j among those above their
    threshold. Rows are calibrated to the class counts. ``noise[i]`` is the estimated share
    of images labelled i whose true class is another one.
    """
    probs = np.asarray(probs, dtype=np.float64)
    thresholds = np.array([probs[given == j, j].mean() if (given == j).any() else 1.0 for j in range(num_classes)])
    above = probs >= thresholds[None, :] - 1e-12
    masked = np.where(above, probs, -1.0)
    has = above.any(1)
    true_guess = masked.argmax(1)
    joint = np.zeros((num_classes, num_classes))
    np.add.at(joint, (given[has], true_guess[has]), 1)
    counts = np.bincount(given, minlength=num_classes).astype(np.float64)
    row_sums = joint.sum(1, keepdims=True)
    calibrated = np.divide(joint, row_sums, out=np.zeros_like(joint), where=row_sums > 0) * counts[:, None]
    diag = np.diag(calibrated)
    noise = np.divide(counts - diag, counts, out=np.zeros_like(counts), where=counts > 0)
    return {"joint": calibrated, "noise": noise, "counts": counts}


def oof_summary(ws: Workspace) -> dict[str, Any] | None:
    """Confusion matrix (given x predicted) and per-class noise estimates from the OOF outputs."""
    path = ws.path("oof_probs.npy")
    index = ws.read_parquet("oof_index.parquet")
    meta = ws.read_json("oof_meta.json")
    if not path.exists() or index is None or not meta:
        return None
    probs = np.load(path)
    classes = list(meta["classes"])
    lookup = {c: i for i, c in enumerate(classes)}
    given = index["given_label"].astype("string").map(lookup)
    ok = given.notna().to_numpy()
    given = given[ok].astype(np.int64).to_numpy()
    probs = probs[ok]
    pred = probs.argmax(1)
    k = len(classes)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (given, pred), 1)
    noise = confident_joint_noise(probs, given, k)
    return {"classes": classes, "confusion": confusion, "accuracy": float((pred == given).mean()) if len(given) else None,
            "noise": noise["noise"], "counts": noise["counts"], "joint": noise["joint"],
            "recipe": meta.get("recipe"), "folds": meta.get("folds"), "images": int(len(given)),
            "judged": meta.get("judged", True), "reason": meta.get("reason")}


def read_runs(ws: Workspace) -> list[dict[str, Any]]:
    """Every ``runs/<name>/metrics.json`` (name added), sorted by name; unreadable ones noted."""
    runs = []
    for path in sorted(ws.path("runs").glob("*/metrics.json")):
        try:
            metrics = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            runs.append({"name": path.parent.name, "error": f"{path}: {exc}"})
            continue
        runs.append({"name": path.parent.name, **metrics})
    return runs


def collect(ws: Workspace, *, top_n: int, max_clusters: int) -> dict[str, Any]:
    """Everything the report needs, from the workspace's current files."""
    manifest = ws.manifest()
    findings = read_findings(ws)
    duplicates = ws.read_parquet("duplicates.parquet")
    decisions = read_decisions(ws)
    latest = latest_decisions(decisions)
    split = latest_split(ws)
    if split is not None:
        after_name, after = split[0], split[1]
        after_source = f"splits/{after_name}/manifest.parquet"
    else:
        after = proposed_after(manifest, duplicates, decisions)
        after_source = "proposed: duplicate actions and review decisions applied"
    flagged_any = findings.loc[findings["flagged"], "image_id"].nunique() if len(findings) else 0
    return {
        "workspace": str(ws.root), "images": int(len(manifest)),
        "splits": manifest["split"].astype("string").fillna("(none)").value_counts().to_dict(),
        "before": distribution(labels_before(manifest)), "after": distribution(after),
        "after_images": int(len(after)), "after_source": after_source,
        "checks": check_galleries(findings, manifest, top_n), "flagged_images": int(flagged_any),
        "duplicates": duplicate_clusters(duplicates, manifest, max_clusters),
        "decisions": {"rows": int(len(decisions)), "images": int(len(latest)),
                      "latest": latest["decision"].value_counts().to_dict() if len(latest) else {},
                      "reviewers": sorted(decisions["reviewer"].dropna().unique().tolist())},
        "oof": oof_summary(ws), "runs": read_runs(ws),
    }
