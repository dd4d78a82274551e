"""Review orchestration: pull App tags, export/import CSV, apply decisions to the manifest."""
from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Any

import pandas as pd

from curate import atomic
from curate.errors import CurateError
from curate.review.csvio import export_frame, parse_import
from curate.review.decisions import (Decision, append_decisions, apply_decisions, decide, is_review_tag,
                                     known_classes, latest_decisions, read_decisions)
from curate.review.images import image_paths, write_missing_pngs
from curate.review.table import review_table
from curate.workspace import Workspace


def default_reviewer(reviewer: str | None = None) -> str:
    """``reviewer`` or $USER (then the login name)."""
    if reviewer:
        return reviewer
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def read_annotations(ws: Workspace) -> pd.DataFrame:
    """image_id, tags, review_label of every sample of the workspace's dataset."""
    from curate.review.dataset import dataset_name, fiftyone

    fo = fiftyone()
    name = dataset_name(ws)
    if not fo.dataset_exists(name):
        raise CurateError(f"{ws.root}: no review dataset {name!r} yet; run `curate review open -w {ws.root}` first")
    ds = fo.load_dataset(name)
    has_label = "review_label" in ds.get_field_schema()
    return pd.DataFrame({"image_id": ds.values("image_id"), "tags": ds.values("tags"),
                         "review_label": ds.values("review_label") if has_label else [None] * len(ds)})


def decisions_from_annotations(annotations: pd.DataFrame, classes: set[str]) -> tuple[pd.DataFrame, list[dict]]:
    """Decisions (image_id, decision, new_label) and conflicts (image_id, reason) from App tags."""
    rows, conflicts = [], []
    for image_id, tags, review_label in annotations[["image_id", "tags", "review_label"]].itertuples(index=False):
        d: Decision = decide(tags or [], review_label, classes)
        if d.conflict:
            conflicts.append({"image_id": image_id, "reason": d.conflict})
        elif d.decision:
            rows.append({"image_id": image_id, "decision": d.decision, "new_label": d.new_label})
    return pd.DataFrame(rows, columns=["image_id", "decision", "new_label"]).astype("string"), conflicts


def pull_review(ws: Workspace, *, reviewer: str | None = None, annotations: pd.DataFrame | None = None) -> dict[str, Any]:
    """Record the App's review tags in decisions.parquet (new/changed only) and update labels.

    Parameters
    ----------
    ws : Workspace
        A workspace whose review dataset was opened in the App.
    reviewer : str, optional
        Name recorded with each decision; None = $USER (then the login name). Default None.
    annotations : pd.DataFrame, optional
        ``image_id, tags, review_label`` rows to record; None = read from the workspace's review
        dataset. Default None.
    """
    who = default_reviewer(reviewer)
    annotations = read_annotations(ws) if annotations is None else annotations
    proposed, conflicts = decisions_from_annotations(annotations, known_classes(ws.manifest()))
    appended = append_decisions(ws, proposed, reviewer=who, source="app")
    latest = latest_decisions(read_decisions(ws))
    untagged = [iid for iid, tags in zip(annotations["image_id"], annotations["tags"])
                if iid in latest.index and not any(is_review_tag(t) for t in (tags or []))]
    applied = apply_decisions(ws)
    verdicts = pull_check_verdicts(ws, annotations, latest, reviewer=who, source="app")
    summary = {"reviewer": who, "tagged": int(len(proposed)), "appended": int(len(appended)),
               "unchanged": int(len(proposed) - len(appended)),
               "appended_by_decision": appended["decision"].value_counts().to_dict() if len(appended) else {},
               "conflicts": conflicts + verdicts.pop("problems"), "decided_but_untagged": untagged[:50],
               "decided_but_untagged_count": len(untagged), "manifest": applied, "check_verdicts": verdicts}
    ws.record_run("review pull", counts={"appended": summary["appended"], "conflicts": len(conflicts),
                                         **applied}, options={"reviewer": who})
    return summary


def pull_check_verdicts(ws: Workspace, annotations: pd.DataFrame, latest: pd.DataFrame, *, reviewer: str,
                        source: str) -> dict[str, Any]:
    """Record the photo-check verdicts among the annotations' tags (``is:<check>`` / ``not:<check>``,
    and what a keep/relabel decision on a photo implies) in check_feedback.parquet (new/changed only)."""
    from curate.check_feedback import append_feedback, feedback_rows

    kinds = ws.image_kinds()
    photo_ids = set(ws.manifest()["image_id"].astype(str)[(kinds == "photo").to_numpy()])
    decided = latest["decision"].astype(str).to_dict() if len(latest) else {}
    ids = [str(i) for i in annotations["image_id"]]
    rows, problems = feedback_rows(ids, annotations["tags"],
                                   [decided.get(i) if i in photo_ids else None for i in ids])
    appended = append_feedback(ws, rows, reviewer=reviewer, source=source)
    by_check = appended.groupby("check")["verdict"].agg(["size", "sum"]) if len(appended) else None
    return {"appended": int(len(appended)), "problems": problems,
            "by_check": {} if by_check is None else {c: {"verdicts": int(r["size"]), "issue": int(r["sum"])}
                                                    for c, r in by_check.iterrows()}}


def export_review(ws: Workspace, out: Path, *, only_flagged: bool = False, quiet: bool = False) -> dict[str, Any]:
    """Write the review CSV (evidence + empty decision/new_label columns) and the PNGs it points to.

    Parameters
    ----------
    ws : Workspace
        A workspace (audited and/or deduplicated, for evidence to show).
    out : Path
        The CSV to write (its folder is made).
    only_flagged : bool, default=False
        Only the images some check flagged or that belong to a duplicate cluster; else one row per image.
    quiet : bool, default=False
        No progress bars or messages on stderr.
    """
    table, checks = review_table(ws)
    paths = image_paths(ws, table["image_id"])
    frame = export_frame(table, checks, read_decisions(ws), paths, only_flagged=only_flagged)
    write_missing_pngs(ws, paths, quiet=quiet)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(out, frame.to_csv(index=False).encode("utf-8"))
    ws.record_run("review export", counts={"rows": len(frame)}, options={"only_flagged": only_flagged, "out": str(out)})
    return {"csv": str(out), "rows": int(len(frame)), "only_flagged": only_flagged}


def import_review(ws: Workspace, path: Path, *, reviewer: str | None = None) -> dict[str, Any]:
    """Append the CSV's decisions (new/changed only); bad rows are reported, the others imported.

    Parameters
    ----------
    ws : Workspace
        The workspace the CSV was exported from.
    path : Path
        A review CSV as :func:`export_review` writes it, with ``decision`` (relabel, exclude or keep;
        blank = no decision) and, for relabel, ``new_label`` filled in; optionally ``check_verdicts``:
        verdicts on photo checks such as ``is:cartoon; not:no_face`` (check_feedback.parquet).
    reviewer : str, optional
        Name recorded with each decision; None = $USER (then the login name). Default None.
    """
    who = default_reviewer(reviewer)
    path = Path(path)
    if not path.exists():
        raise CurateError(f"{path}: no such file")
    proposed, errors, warnings = parse_import(path, ws.manifest())  # an unreadable sheet: InputError (exit 1)
    appended = append_decisions(ws, proposed, reviewer=who, source="csv")
    applied = apply_decisions(ws)
    sheet = pd.read_csv(path, dtype=str, keep_default_na=False)
    verdicts = {"appended": 0, "by_check": {}}
    if "check_verdicts" in sheet:   # e.g. "is:cartoon; not:no_face" (photo checks, check_feedback.parquet)
        tags = pd.DataFrame({"image_id": sheet["image_id"].astype(str),
                             "tags": [[t for t in v.replace(",", ";").split(";") if t.strip()] for v in sheet["check_verdicts"]]})
        tags = tags[tags["image_id"].isin(set(ws.manifest()["image_id"].astype(str)))]
        verdicts = pull_check_verdicts(ws, tags, latest_decisions(read_decisions(ws)), reviewer=who, source="csv")
        errors = errors + [f"{path}: image {p['image_id']}: {p['reason']}" for p in verdicts.pop("problems")]
    summary = {"reviewer": who, "csv": str(path), "decisions": int(len(proposed)), "appended": int(len(appended)),
               "unchanged": int(len(proposed) - len(appended)), "errors": errors, "warnings": warnings,
               "manifest": applied, "check_verdicts": verdicts}
    ws.record_run("review import", counts={"appended": summary["appended"], "errors": len(errors), **applied},
                  options={"reviewer": who, "csv": str(path)})
    return summary
