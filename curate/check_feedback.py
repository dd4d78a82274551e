"""Reviewers' verdicts on the photo checks (``check_feedback.parquet``): what teaches the checks.

A reviewer tells a photo check it is right or wrong about a photo with a tag in the FiftyOne App
(or a ``check_verdicts`` cell of the review CSV): ``is:<check>`` (the issue is there, e.g.
``is:cartoon``) or ``not:<check>`` (it is not, e.g. ``not:no_face``). A ``keep`` or
``relabel:<class>`` decision on a photo also says that the photo shows a usable, photographed
face (``not:no_face`` and ``not:cartoon``), since that is what a kept training photo is.

The table is append-only like ``decisions.parquet``: one row per new or changed verdict,
``image_id, check, verdict`` (True = the issue is there), ``reviewer, timestamp, source``; the
latest row per (image, check) counts. ``curate audit`` reads it to recalibrate the learned photo
checks for this workspace (:mod:`curate.audit.label_shift`) and to take the reviewer's word for
the photos reviewed.
"""
from __future__ import annotations

from typing import Iterable

import pandas as pd

from curate.workspace import Workspace, utc_now

FEEDBACK_FILE = "check_feedback.parquet"
FEEDBACK_COLUMNS: tuple[str, ...] = ("image_id", "check", "verdict", "reviewer", "timestamp", "source")
TEACHABLE_CHECKS: tuple[str, ...] = ("no_face", "multiple_faces", "cartoon", "watermark")
"""The photo checks a reviewer's verdicts recalibrate (learned ones) or override (all of them)."""
IMPLIED_BY_KEEP: dict[str, bool] = {"no_face": False, "cartoon": False}
"""Verdicts a ``keep`` / ``relabel`` decision on a photo implies: it shows a usable photographed face."""


def is_verdict_tag(tag: str) -> bool:
    """True for ``is:<check>`` / ``not:<check>`` tags."""
    t = str(tag).strip().lower()
    return t.startswith("is:") or t.startswith("not:")


def verdicts_from_tags(tags: Iterable[str]) -> tuple[dict[str, bool], list[str]]:
    """(check -> verdict, problems) of one photo's tags; an unknown check or ``is:`` and ``not:``
    of the same check are problems (that check's tags are then ignored)."""
    seen: dict[str, set[bool]] = {}
    problems: list[str] = []
    for tag in tags:
        if not is_verdict_tag(tag):
            continue
        kind, _, check = str(tag).strip().lower().partition(":")
        check = check.strip()
        if check not in TEACHABLE_CHECKS:
            problems.append(f"tag {tag!r}: unknown check {check!r} (checks a verdict may name: "
                            f"{', '.join(TEACHABLE_CHECKS)})")
            continue
        seen.setdefault(check, set()).add(kind == "is")
    out = {}
    for check, values in seen.items():
        if len(values) > 1:
            problems.append(f"both is:{check} and not:{check}")
        else:
            out[check] = next(iter(values))
    return out, problems


def feedback_rows(image_ids: Iterable[str], tag_lists: Iterable[Iterable[str]],
                  decisions: Iterable[str | None] | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """(image_id, check, verdict) rows from each photo's tags, plus what its ``keep``/``relabel``
    decision implies (an explicit tag wins), and the problems found (image_id, reason)."""
    rows, problems = [], []
    decisions = list(decisions) if decisions is not None else None
    for k, (image_id, tags) in enumerate(zip(image_ids, tag_lists)):
        verdicts, bad = verdicts_from_tags(tags or [])
        problems += [{"image_id": image_id, "reason": b} for b in bad]
        if decisions is not None and decisions[k] in ("keep", "relabel"):
            verdicts = {**IMPLIED_BY_KEEP, **verdicts}
        rows += [(image_id, check, verdict) for check, verdict in verdicts.items()]
    frame = pd.DataFrame(rows, columns=["image_id", "check", "verdict"])
    return frame.astype({"image_id": "string", "check": "string", "verdict": bool}), problems


def coerce_feedback(df: pd.DataFrame) -> pd.DataFrame:
    out = df.reindex(columns=list(FEEDBACK_COLUMNS)).copy()
    for col in ("image_id", "check", "reviewer", "timestamp", "source"):
        out[col] = out[col].astype("string")
    out["verdict"] = out["verdict"].astype(bool)
    return out.reset_index(drop=True)


def read_feedback(ws: Workspace) -> pd.DataFrame:
    """Every verdict ever appended (empty frame with the columns when none)."""
    df = ws.read_parquet(FEEDBACK_FILE)
    return coerce_feedback(pd.DataFrame({c: [] for c in FEEDBACK_COLUMNS}) if df is None else df)


def latest_feedback(feedback: pd.DataFrame) -> pd.DataFrame:
    """The latest verdict per (image_id, check): columns image_id, check, verdict."""
    if len(feedback) == 0:
        return feedback[["image_id", "check", "verdict"]].reset_index(drop=True)
    d = feedback.reset_index(drop=True).assign(_order=range(len(feedback)))
    d = d.sort_values(["timestamp", "_order"], kind="stable").drop_duplicates(["image_id", "check"], keep="last")
    return d[["image_id", "check", "verdict"]].reset_index(drop=True)


def append_feedback(ws: Workspace, proposed: pd.DataFrame, *, reviewer: str, source: str,
                    timestamp: str | None = None) -> pd.DataFrame:
    """Append the rows of ``proposed`` (image_id, check, verdict) that differ from the latest
    ones; never rewrites a row. Returns what was appended."""
    with ws.lock():
        existing = read_feedback(ws)
        latest = latest_feedback(existing).set_index(["image_id", "check"])["verdict"]
        new = proposed.drop_duplicates(["image_id", "check"], keep="last")
        keys = list(zip(new["image_id"].astype(str), new["check"].astype(str)))
        changed = [latest.get(key) is None or bool(latest.get(key)) != bool(v) for key, v in zip(keys, new["verdict"])]
        new = new[changed]
        if len(new) == 0:
            return coerce_feedback(pd.DataFrame({c: [] for c in FEEDBACK_COLUMNS}))
        rows = coerce_feedback(new.assign(reviewer=reviewer, timestamp=timestamp or utc_now(), source=source))
        ws.write_parquet(FEEDBACK_FILE, coerce_feedback(pd.concat([existing, rows], ignore_index=True)))
    return rows
