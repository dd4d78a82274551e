"""``curate ingest``: read images and labels into a workspace."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from curate.cli_common import ConfigOpt, JsonOpt, QuietOpt, SetOpt, WorkspaceOpt, emit, guarded


def register(app: typer.Typer) -> None:
    """Add ``ingest`` to the ``curate`` app."""

    @app.command("ingest")
    @guarded
    def ingest(
        sources: List[str] = typer.Argument(..., help="fer2013.csv[.gz], an image folder, or a path,label[,split] CSV; "
                                                       "local paths or object-storage URLs (s3://bucket/prefix/)."),
        workspace: Path = WorkspaceOpt,
        fmt: str = typer.Option("auto", "--format", help="auto | fer2013-csv | folder | csv"),
        replace: bool = typer.Option(False, "--replace", help="Re-ingest a source already in the workspace."),
        strict: bool = typer.Option(False, "--strict", help="Any rejected row or file is an error (exit 1, nothing kept)."),
        image_size: Optional[int] = typer.Option(None, "--image-size", help="Side of the grey pixel store (default 48; fixed at the first ingest)."),
        set_: Optional[List[str]] = SetOpt,
        config: Optional[Path] = ConfigOpt,
        as_json: bool = JsonOpt,
        quiet: bool = QuietOpt,
    ) -> None:
        """Read images and labels into the workspace; bad rows/files go to rejects.parquet."""
        from curate.ingest.api import ingest as do_ingest, render_summary
        from curate.workspace import Workspace

        ws = Workspace(workspace)
        summary = do_ingest(ws, sources, fmt=fmt, replace=replace, strict=strict, image_size=image_size,
                            overrides=set_, config_file=config, quiet=quiet)
        emit(summary, as_json, render_summary, quiet)
        if summary["kept"] == 0 and not summary.get("skipped_sources"):
            raise typer.Exit(1)
