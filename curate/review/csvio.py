"""Review through a spreadsheet: export the evidence as CSV, import the filled-in decisions.

The export has one row per image with its labels, prediction, flagged checks and evidence,
duplicate cluster, PNG path and the current decision, plus two columns to fill in:
``decision`` (relabel | exclude | keep, blank = no decision) and ``new_label``.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from curate.errors import InputError
from curate.review.decisions import DECISIONS, known_classes, latest_decisions, normalise_class
from curate.review.table import field_name

EXPORT_COLUMNS = ("image_id", "split", "label", "original_label", "prediction_label", "prediction_confidence",
                  "flagged_checks", "evidence", "suggested_label", "dup_cluster_id", "dup_cluster_type",
                  "dup_proposed_action", "image_path", "current_decision", "current_new_label",
                  "decision", "new_label")


def export_frame(table: pd.DataFrame, checks: list[str], decisions: pd.DataFrame, paths: list[str],
                 only_flagged: bool = False) -> pd.DataFrame:
    """The CSV rows (see module doc); ``only_flagged`` keeps flagged or clustered images."""
    evidence, suggested = [], []
    for i in range(len(table)):
        parts, sugg = [], None
        for check in table["flagged_checks"].iat[i].split(",") if table["flagged_checks"].iat[i] else []:
            name = field_name(check)
            parts.append(f"{check} {table[f'{name}_score'].iat[i]:.3f}: {table[f'{name}_evidence'].iat[i]}")
            if f"{name}_suggested" in table and not pd.isna(table[f"{name}_suggested"].iat[i]):
                sugg = sugg or table[f"{name}_suggested"].iat[i]
        evidence.append("; ".join(parts))
        suggested.append(sugg)
    out = pd.DataFrame({c: table[c] for c in ("image_id", "split", "label", "original_label",
                                              "prediction_label", "prediction_confidence", "flagged_checks")})
    out["prediction_confidence"] = out["prediction_confidence"].round(4)
    out["evidence"] = evidence
    out["suggested_label"] = suggested
    for col in ("dup_cluster_id", "dup_cluster_type", "dup_proposed_action"):
        out[col] = table[col] if col in table else None
    out["image_path"] = paths
    latest = latest_decisions(decisions).reindex(pd.Index(table["image_id"].astype("string")))
    out["current_decision"] = latest["decision"].to_numpy()
    out["current_new_label"] = latest["new_label"].to_numpy()
    out["decision"] = ""
    out["new_label"] = ""
    if only_flagged:
        keep = table["flagged_any"].to_numpy() | table["dup_cluster_id"].notna().to_numpy()
        out = out[keep]
    return out[list(EXPORT_COLUMNS)].reset_index(drop=True)


def parse_import(path: Path, manifest: pd.DataFrame) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Decisions from a filled-in CSV, one error per bad row (``row N: reason``) and warnings.

    Rows with a blank ``decision`` are skipped. Row numbers are CSV line numbers (header = 1).
    """
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read as CSV: {exc}") from None
    missing = [c for c in ("image_id", "decision") if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; columns found: {', '.join(df.columns)}")
    if "new_label" not in df.columns:
        df["new_label"] = ""
    ids = set(manifest["image_id"].astype(str))
    classes = known_classes(manifest)
    rows, errors = [], []
    for k, rec in enumerate(df.itertuples(index=False), start=2):
        image_id, decision = str(rec.image_id).strip(), str(rec.decision).strip().lower()
        new_label = str(rec.new_label).strip()
        if not decision:
            continue
        if image_id not in ids:
            errors.append(f"{path}: row {k}: image_id {image_id!r} is not in the workspace")
        elif decision not in DECISIONS:
            errors.append(f"{path}: row {k}: decision {rec.decision!r} is not one of {', '.join(DECISIONS)}")
        elif decision == "relabel" and not new_label:
            errors.append(f"{path}: row {k}: relabel needs a new_label")
        elif decision == "relabel" and normalise_class(new_label, classes) is None:
            errors.append(f"{path}: row {k}: new_label {new_label!r} is not a known class "
                          f"({', '.join(sorted(classes))})")
        elif decision != "relabel" and new_label:
            errors.append(f"{path}: row {k}: new_label {new_label!r} given with decision {decision!r} (only relabel takes one)")
        else:
            rows.append({"image_id": image_id, "decision": decision,
                         "new_label": normalise_class(new_label, classes) if decision == "relabel" else None,
                         "line": k})
    seen: dict[str, int] = {}
    warnings = []
    for r in rows:
        if r["image_id"] in seen:
            warnings.append(f"{path}: row {r['line']}: image_id {r['image_id']!r} also decided on row "
                          f"{seen[r['image_id']]}; the later row wins")
        seen[r["image_id"]] = r["line"]
    frame = pd.DataFrame(rows, columns=["image_id", "decision", "new_label", "line"])
    return frame.drop(columns="line").drop_duplicates("image_id", keep="last"), errors, warnings
