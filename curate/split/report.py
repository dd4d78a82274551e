"""splits/<name>/report.md: counts before/after, what was removed or relabelled and why, reconciled."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from curate import atomic

SPLITS = ("train", "val", "test")


def _table(df: pd.DataFrame, index_name: str) -> str:
    """A markdown table of a count frame (adds a total row and column)."""
    if df.empty:
        return "_none_\n"
    df = df.copy()
    df["total"] = df.sum(axis=1)
    df.loc["total"] = df.sum(axis=0)
    cols = [str(c) for c in df.columns]
    lines = ["| " + index_name + " | " + " | ".join(cols) + " |", "|---" + "|---:" * len(cols) + "|"]
    for idx, row in df.iterrows():
        lines.append(f"| {idx} | " + " | ".join(f"{int(v):,}" for v in row) + " |")
    return "\n".join(lines) + "\n"


def _crosstab(index: pd.Series, columns: pd.Series, col_order: list[str]) -> pd.DataFrame:
    if len(index) == 0:
        return pd.DataFrame()
    tab = pd.crosstab(index.fillna("(none)").astype(str), columns.fillna("(none)").astype(str))
    order = [c for c in col_order if c in tab.columns] + [c for c in tab.columns if c not in col_order]
    return tab[order]


def reason_category(reason: pd.Series) -> pd.Series:
    """The reason without its per-image details: ``flagged: blank (std 0.0)`` -> ``flagged: blank``."""
    return reason.astype(str).str.replace(r"\s*\(.*$", "", regex=True)


def reconcile(ledger: pd.DataFrame, frame: pd.DataFrame) -> dict[str, int]:
    """Counts that must add up: images = kept + removed; rows = kept + oversampled - undersampled."""
    kept = int((ledger["status"] == "kept").sum())
    removed = int((ledger["status"] == "removed").sum())
    unique_rows = int(frame["image_id"].nunique())
    return {"images": len(ledger), "kept": kept, "removed": removed,
            "balanced_out": kept - unique_rows, "oversampled_copies": len(frame) - unique_rows,
            "rows": len(frame)}


def write_report(path: Path, ledger: pd.DataFrame, frame: pd.DataFrame, summary: dict[str, Any]) -> None:
    """Write the markdown report of one split run (atomic)."""
    classes = summary["classes"]
    all_classes = summary.get("dataset_classes") or classes
    opts = summary["options"]
    r = reconcile(ledger, frame)
    assert r["images"] == r["kept"] + r["removed"], r
    assert r["rows"] == r["kept"] - r["balanced_out"] + r["oversampled_copies"], r
    out = [f"# Split `{summary['name']}`\n",
           f"Workspace `{summary['workspace']}`, seed {summary['seed']}. "
           + ("**Raw split: no cleaning applied.**" if opts["raw"] else "Cleaning policy applied in order: "
              "reviewer decisions -> classes -> no-face photos -> duplicates -> flagged findings.") + "\n",
           "- classes: " + (f"**subset {', '.join(opts['classes'])}** (other classes removed from every split)"
                            if opts.get("classes") else f"every class ({', '.join(classes)})"),
           "- photos without a detected face (face_images.parquet): "
           + ("removed from every split (reason no_face)" if opts.get("exclude_no_face", True) else "kept"),
           "- test split: " + ("**cleaned too (`--clean-test`)**" if opts["clean_test"] else
                               "kept untouched (the dataset's own test split; `--clean-test` would clean it)"),
           "- val split: " + ("re-split from train+val (stratified, group-aware)" if opts["resplit_val"] else
                              "the dataset's own val split kept where it exists"),
           f"- balancing of train: {opts['balance']}",
           f"- inputs: decisions {summary['inputs']['decisions']}, duplicates {summary['inputs']['duplicates']}, "
           f"findings {summary['inputs']['findings']} rows (None = file absent)\n",
           "## Reconciliation\n",
           f"{r['images']:,} images before = {r['kept']:,} kept + {r['removed']:,} removed. "
           f"Rows in manifest.parquet: {r['kept']:,} kept - {r['balanced_out']:,} undersampled "
           f"+ {r['oversampled_copies']:,} oversampled copies = {r['rows']:,}.\n",
           "## Before (given split x label)\n",
           _table(_crosstab(ledger["given_label"], ledger["given_split"], list(SPLITS)).reindex(
               [c for c in all_classes if c in set(ledger["given_label"].dropna())]
               + (["(none)"] if ledger["given_label"].isna().any() else [])).fillna(0), "label"),
           "\n## After (final split x label, rows of manifest.parquet)\n",
           _table(_crosstab(frame["label"], frame["split"], list(SPLITS)).reindex(
               [c for c in classes if c in set(frame["label"])]).fillna(0), "label")]
    kept = ledger[ledger["status"] == "kept"]
    moved = kept[kept["given_split"].fillna("(none)") != kept["split"]]
    out += ["\n## Split assignment of kept images (given -> final)\n",
            _table(_crosstab(kept["given_split"], kept["split"], list(SPLITS)), "given split")
            if len(moved) else "Every kept image stays in its given split.\n"]
    removed = ledger[ledger["status"] == "removed"]
    out += ["\n## Removed, by reason and given split\n",
            _table(_crosstab(reason_category(removed["reason"]), removed["given_split"], list(SPLITS)), "reason"),
            "\n## Removed, by label and given split\n",
            _table(_crosstab(removed["given_label"], removed["given_split"], list(SPLITS)), "label")]
    relabel = kept[kept["label"] != kept["given_label"]]
    out += ["\n## Relabelled (reviewer decisions)\n",
            _table(_crosstab(relabel["given_label"], relabel["label"], all_classes), "from \\ to")]
    not_applied = summary["steps"].get("decisions", {}).get("skipped_test", 0)
    if not_applied:
        out.append(f"\n{not_applied} reviewer decision(s) on test images were **not applied** "
                   "(test split untouched; use `--clean-test`).\n")
    out += ["\n## Step counts\n", "```", *(f"{k}: {v}" for k, v in summary["steps"].items()), "```\n",
            "Per-image reasons: `ledger.parquet` (image_id, given_split, given_label, label, status, stage, "
            "reason, protected, group, split).\n"]
    atomic.write_text(path, "\n".join(out))
