"""The findings contract shared by every audit check (``findings.parquet``).

One row per (image, check): ``image_id``, ``check``, ``score`` (higher = more likely an
issue), ``flagged`` (at the check's threshold), ``suggested_label`` (null unless the check
proposes one), ``evidence`` (short text a reviewer can read).

A check that ran but cannot judge (e.g. the mislabel check when its out-of-fold model is no
better than the majority class) still writes its rows and scores, flags nothing, proposes no
label, and starts every evidence text with :data:`NOT_JUDGED` followed by the reason.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from curate.workspace import Workspace

FINDINGS_FILE = "findings.parquet"
FINDING_COLUMNS: tuple[str, ...] = ("image_id", "check", "score", "flagged", "suggested_label", "evidence")
NOT_JUDGED = "not judged: "
"""Evidence prefix of a check that could not judge; the reason follows, up to `` | ``."""


def not_judged_reason(evidence: pd.Series) -> str | None:
    """The shared reason when every evidence text of one check starts with :data:`NOT_JUDGED`, else None."""
    ev = evidence.dropna().astype(str)
    if len(ev) == 0 or len(ev) != len(evidence) or not ev.str.startswith(NOT_JUDGED).all():
        return None
    return ev.iloc[0].split(" | ", 1)[0]


def make_findings(image_ids: Iterable[str], check: str, score: np.ndarray, flagged: np.ndarray,
                  evidence: Iterable[str], suggested_label: Iterable[str | None] | None = None) -> pd.DataFrame:
    """Build findings rows with the contract columns and dtypes."""
    ids = pd.array(list(image_ids), dtype="string")
    n = len(ids)
    score = np.asarray(score, dtype=np.float64).reshape(-1)
    flagged = np.asarray(flagged, dtype=bool).reshape(-1)
    evidence = pd.array(list(evidence), dtype="string")
    suggested = (pd.array([None] * n, dtype="string") if suggested_label is None
                 else pd.array(list(suggested_label), dtype="string"))
    for name, col in (("score", score), ("flagged", flagged), ("evidence", evidence), ("suggested_label", suggested)):
        if len(col) != n:
            raise ValueError(f"findings for {check}: {name} has {len(col)} values for {n} images")
    return pd.DataFrame({
        "image_id": ids,
        "check": pd.array([check] * n, dtype="string"),
        "score": score,
        "flagged": flagged,
        "suggested_label": suggested,
        "evidence": evidence,
    })


def coerce_findings(df: pd.DataFrame) -> pd.DataFrame:
    """Contract column order and dtypes."""
    out = df[list(FINDING_COLUMNS)].copy()
    for col in ("image_id", "check", "suggested_label", "evidence"):
        out[col] = out[col].astype("string")
    out["score"] = out["score"].astype("float64")
    out["flagged"] = out["flagged"].astype(bool)
    return out.reset_index(drop=True)


def read_findings(ws: Workspace) -> pd.DataFrame:
    """All findings of the workspace (empty frame with the contract columns when none)."""
    df = ws.read_parquet(FINDINGS_FILE)
    if df is None:
        return coerce_findings(pd.DataFrame({c: [] for c in FINDING_COLUMNS}))
    return coerce_findings(df)


def write_findings(ws: Workspace, new_rows: pd.DataFrame, checks: Iterable[str] | None = None) -> pd.DataFrame:
    """Replace the rows of ``checks`` (default: the checks present in ``new_rows``) atomically.

    Rows of other checks are kept as they were. Returns the whole new findings table.
    """
    new_rows = coerce_findings(new_rows)
    replaced = set(checks) if checks is not None else set(new_rows["check"].unique())
    with ws.lock():
        old = read_findings(ws)
        kept = old[~old["check"].isin(replaced)]
        merged = coerce_findings(pd.concat([kept, new_rows], ignore_index=True))
        ws.write_parquet(FINDINGS_FILE, merged)
    return merged
