"""Where a split lives in a workspace and how it is read back: ``splits/<name>/manifest.parquet``.

Shared by ``curate.split.api`` (writes splits), ``curate.split.export`` (exports them) and
``curate.train`` (trains on them), so none of them has to import another's orchestration.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from curate.errors import CurateError
from curate.workspace import Workspace


def split_dir(ws: Workspace, name: str) -> Path:
    """Folder of a named split."""
    return ws.path("splits") / name


def read_split(ws: Workspace, name: str) -> pd.DataFrame:
    """splits/<name>/manifest.parquet, with a clear error naming the command that makes it."""
    path = split_dir(ws, name) / "manifest.parquet"
    if not path.exists():
        known = sorted(p.name for p in ws.path("splits").glob("*") if (p / "manifest.parquet").exists()) \
            if ws.path("splits").exists() else []
        raise CurateError(f"{path}: no split named {name!r}; run `curate split -w {ws.root} --name {name}` first"
                          + (f" (existing splits: {', '.join(known)})" if known else ""))
    return pd.read_parquet(path)
