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


def read_targets(ws: Workspace, name: str) -> pd.DataFrame | None:
    """splits/<name>/targets.parquet (soft training targets: image_id, ``t_<class>``), None without one."""
    path = split_dir(ws, name) / "targets.parquet"
    return pd.read_parquet(path) if path.exists() else None


CLEANING_STAGES = ("decision", "duplicates", "findings", "mislabel")
"""Ledger stages that clean (a raw split has none of them); the scope stages (unlabelled rows, the class
subset, photos without a face) remove rows from a raw split too."""


def train_images_removed_by_cleaning(ws: Workspace, name: str) -> int | None:
    """Images of the given train split that the split's cleaning removed (None without a ledger)."""
    path = split_dir(ws, name) / "ledger.parquet"
    if not path.exists():
        return None
    ledger = pd.read_parquet(path, columns=["given_split", "status", "stage"])
    cleaned = (ledger["status"] == "removed") & ledger["stage"].fillna("").isin(CLEANING_STAGES)
    return int(((ledger["given_split"] == "train") & cleaned).sum())
