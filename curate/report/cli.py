"""``curate report``: write the self-contained HTML audit report of a workspace."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from curate.cli_common import ConfigOpt, JsonOpt, QuietOpt, SetOpt, WorkspaceOpt, emit, guarded


def _render(s: dict) -> str:
    return (f"report written to {s['report']} ({s['bytes'] / 1e6:.1f} MB, {s['thumbnails']} thumbnails, "
            f"sections: {', '.join(s['sections'])}) in {s['seconds']:.1f}s")


def register(app: typer.Typer) -> None:
    """Add ``curate report`` to the CLI."""

    @app.command("report")
    @guarded
    def report(workspace: Path = WorkspaceOpt, set_: Optional[List[str]] = SetOpt,
               config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt, quiet: bool = QuietOpt) -> None:
        """Write report/index.html: counts, class balance before/after, issue galleries, duplicates, noise, runs."""
        from curate.config import parse_overrides
        from curate.report.api import report_step
        from curate.workspace import Workspace

        summary = report_step(Workspace.open(workspace), parse_overrides(set_ or []), config_file=config, quiet=quiet)
        emit(summary, as_json, _render, quiet)
