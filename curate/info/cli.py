"""``curate info``: counts per class x split, sizes and modes, rejects; class distribution plot."""
from __future__ import annotations

from pathlib import Path

import typer

from curate.cli_common import JsonOpt, QuietOpt, WorkspaceOpt, emit, guarded


def register(app: typer.Typer) -> None:
    """Add ``info`` to the ``curate`` app."""

    @app.command("info")
    @guarded
    def info(workspace: Path = WorkspaceOpt, as_json: bool = JsonOpt, quiet: bool = QuietOpt,
             plot: bool = typer.Option(True, "--plot/--no-plot", help="Write class_distribution.png.")) -> None:
        """Counts per class x split, image sizes/modes, rejects; writes class_distribution.png."""
        from curate.info.api import render_info, workspace_info
        from curate.workspace import Workspace

        summary = workspace_info(Workspace.open(workspace), plot=plot)
        emit(summary, as_json, render_info, quiet)
