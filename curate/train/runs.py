"""Where training runs live in a workspace and how their results are read back: ``runs/<name>/``.

Shared by ``curate.train.api`` (writes and compares runs) and ``curate.train.compare_report``
(renders a comparison), so the report does not import the orchestration that calls it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from curate.errors import CurateError
from curate.workspace import Workspace


def run_dir(ws: Workspace, name: str) -> Path:
    """Folder of a named run."""
    return ws.path("runs") / name


def load_runs(ws: Workspace, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """metrics.json of the named runs (all finished runs when ``names`` is empty), oldest first."""
    root = ws.path("runs")
    names = list(names or [])
    if not names:
        found = sorted(root.glob("*/metrics.json"), key=lambda p: p.stat().st_mtime) if root.exists() else []
        names = [p.parent.name for p in found]
    runs = []
    for n in names:
        path = root / n / "metrics.json"
        if not path.exists():
            raise CurateError(f"{path}: no finished run named {n!r}")
        runs.append(json.loads(path.read_text(encoding="utf-8")))
    return runs
