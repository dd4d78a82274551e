"""One review row per image: labels, OOF prediction, every check's score/flag, duplicate cluster.

:func:`build_review_table` is pure (frames and arrays in, a frame out); :func:`load_inputs`
reads the workspace files it needs. The FiftyOne dataset and the CSV export both come from
this table, so the App and the spreadsheet show the same evidence.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from curate.findings import read_findings
from curate.workspace import Workspace

ISSUE_TAG_PREFIX = "issue:"
"""Tags the review build sets itself (``issue:<check>``, ``issue:dup-<type>``); never decisions."""

QUALITY_CHECKS = ("blank", "dark", "light", "low_contrast", "blurry", "low_information")
"""Checks grouped under the "low quality" saved view."""

DUP_COLUMNS = {"cluster_id": "dup_cluster_id", "kind": "dup_kind", "cluster_type": "dup_cluster_type",
               "is_representative": "dup_is_representative", "proposed_action": "dup_proposed_action",
               "cross_split": "dup_cross_split", "inter_class": "dup_inter_class"}


def field_name(check: str) -> str:
    """A check name turned into a safe field prefix (letters, digits, underscores)."""
    return re.sub(r"[^0-9a-zA-Z_]", "_", check)


def load_inputs(ws: Workspace) -> dict[str, Any]:
    """Everything the review table reads; absent files give None (findings: empty frame)."""
    inputs: dict[str, Any] = {"manifest": ws.manifest(), "findings": read_findings(ws),
                              "duplicates": ws.read_parquet("duplicates.parquet"),
                              "oof_probs": None, "oof_index": None, "oof_classes": None}
    probs_path = ws.path("oof_probs.npy")
    index = ws.read_parquet("oof_index.parquet")
    meta = ws.read_json("oof_meta.json")
    if probs_path.exists() and index is not None and meta:
        probs = np.load(probs_path, mmap_mode="r")
        if len(probs) != len(index):
            raise ValueError(f"{probs_path}: {len(probs)} rows but oof_index.parquet has {len(index)}")
        inputs.update(oof_probs=np.asarray(probs, dtype=np.float32), oof_index=index,
                      oof_classes=list(meta["classes"]))
    return inputs


def prediction_columns(image_ids: pd.Series, probs: np.ndarray | None, index: pd.DataFrame | None,
                       classes: list[str] | None) -> pd.DataFrame:
    """``prediction_label``/``prediction_confidence``/``prediction_fold`` aligned to ``image_ids``."""
    n = len(image_ids)
    out = pd.DataFrame({"prediction_label": pd.array([None] * n, dtype="string"),
                        "prediction_confidence": np.full(n, np.nan), "prediction_fold": pd.array([None] * n, dtype="Int64")})
    if probs is None or index is None or classes is None or len(index) == 0:
        return out
    pos = pd.Series(np.arange(len(index)), index=pd.Index(index["image_id"].astype("string")))
    pos = pos[~pos.index.duplicated()]
    rows = pos.reindex(pd.Index(image_ids.astype("string"))).to_numpy()
    have = ~pd.isna(rows)
    r = rows[have].astype(np.int64)
    p = probs[r]
    arg = p.argmax(1)
    out.loc[have, "prediction_label"] = np.asarray(classes, dtype=object)[arg]
    out.loc[have, "prediction_confidence"] = p[np.arange(len(r)), arg].astype(np.float64)
    if "fold" in index:
        out.loc[have, "prediction_fold"] = index["fold"].to_numpy()[r]
    return out


def finding_columns(image_ids: pd.Series, findings: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Wide ``<check>_score/_flagged/_evidence[/_suggested]`` columns aligned to ``image_ids``."""
    ids = pd.Index(image_ids.astype("string"))
    cols: dict[str, Any] = {}
    checks = sorted(findings["check"].dropna().unique().tolist()) if len(findings) else []
    for check in checks:
        rows = findings[findings["check"] == check].drop_duplicates("image_id", keep="last").set_index("image_id")
        rows = rows.reindex(ids)
        name = field_name(check)
        cols[f"{name}_score"] = rows["score"].astype("float64").to_numpy()
        cols[f"{name}_flagged"] = rows["flagged"].fillna(False).astype(bool).to_numpy()
        cols[f"{name}_evidence"] = rows["evidence"].astype("string").array
        if rows["suggested_label"].notna().any():
            cols[f"{name}_suggested"] = rows["suggested_label"].astype("string").array
    return pd.DataFrame(cols, index=range(len(ids))), checks


def duplicate_columns(image_ids: pd.Series, duplicates: pd.DataFrame | None) -> pd.DataFrame:
    """``dup_*`` columns (cluster id, kind, type, action, ...) aligned to ``image_ids``; NA outside clusters."""
    ids = pd.Index(image_ids.astype("string"))
    if duplicates is None or len(duplicates) == 0:
        return pd.DataFrame({"dup_cluster_id": pd.array([None] * len(ids), dtype="Int64")})
    d = duplicates.copy()
    d["image_id"] = d["image_id"].astype("string")
    d = d.drop_duplicates("image_id", keep="first").set_index("image_id").reindex(ids)
    out = pd.DataFrame(index=range(len(ids)))
    for src, dst in DUP_COLUMNS.items():
        if src in d:
            col = d[src]
            if src == "cluster_id":
                col = col.astype("Int64")
            elif src in ("is_representative", "cross_split", "inter_class"):
                col = col.astype("boolean")
            else:
                col = col.astype("string")
            out[dst] = col.array
    return out


def issue_tags(table: pd.DataFrame, checks: list[str]) -> list[list[str]]:
    """``issue:<check>`` for every flagged check and ``issue:dup-<type>`` for clustered images."""
    n = len(table)
    tags: list[list[str]] = [[] for _ in range(n)]
    for check in checks:
        flagged = table[f"{field_name(check)}_flagged"].to_numpy()
        for i in np.flatnonzero(flagged):
            tags[i].append(f"{ISSUE_TAG_PREFIX}{check}")
    if "dup_cluster_type" in table:
        types = table["dup_cluster_type"].to_numpy()
        for i in np.flatnonzero(pd.notna(types)):
            tags[i].append(f"{ISSUE_TAG_PREFIX}dup-{types[i].replace('_', '-')}")
    return tags


def build_review_table(manifest: pd.DataFrame, findings: pd.DataFrame, duplicates: pd.DataFrame | None = None,
                       oof_probs: np.ndarray | None = None, oof_index: pd.DataFrame | None = None,
                       oof_classes: list[str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The review table (manifest order) and the list of checks it holds.

    Columns: image_id, row, split, label, original_label, prediction_*, ``<check>_*``,
    ``dup_*``, flagged_any, flagged_checks (comma list), issue_tags (list).
    """
    ids = manifest["image_id"].astype("string").reset_index(drop=True)
    base = pd.DataFrame({"image_id": ids, "row": np.arange(len(ids)),
                         "split": manifest["split"].astype("string").to_numpy(),
                         "label": manifest["label"].astype("string").to_numpy(),
                         "original_label": manifest["original_label"].astype("string").to_numpy()})
    wide, checks = finding_columns(ids, findings)
    table = pd.concat([base, prediction_columns(ids, oof_probs, oof_index, oof_classes), wide,
                       duplicate_columns(ids, duplicates)], axis=1)
    flagged = np.zeros(len(table), dtype=bool)
    names: list[list[str]] = [[] for _ in range(len(table))]
    for check in checks:
        f = table[f"{field_name(check)}_flagged"].to_numpy()
        flagged |= f
        for i in np.flatnonzero(f):
            names[i].append(check)
    table["flagged_any"] = flagged
    table["flagged_checks"] = [",".join(x) for x in names]
    table["issue_tags"] = issue_tags(table, checks)
    return table, checks


def review_table(ws: Workspace) -> tuple[pd.DataFrame, list[str]]:
    """:func:`build_review_table` over the workspace's current files."""
    inputs = load_inputs(ws)
    return build_review_table(inputs["manifest"], inputs["findings"], inputs["duplicates"],
                              inputs["oof_probs"], inputs["oof_index"], inputs["oof_classes"])
