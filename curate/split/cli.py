"""CLI: ``curate split`` and ``curate export``."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from curate.cli_common import emit, guarded, shared_options


def _formats(value: Optional[str]) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


@guarded
@shared_options
def split(
    workspace: Path,
    name: Optional[str] = typer.Option(None, "--name", help="Split name: splits/<name>/ (default cleaned, or raw "
                                       "with --raw)."),
    raw: bool = typer.Option(False, "--raw", help="No cleaning at all: the dataset as released (for comparison)."),
    clean_test: bool = typer.Option(False, "--clean-test", help="Also clean the test split (reported); default "
                                    "keeps it untouched."),
    resplit_val: bool = typer.Option(False, "--resplit-val", help="Re-split train+val (stratified, group-aware) "
                                     "instead of keeping the dataset's val."),
    balance: Optional[str] = typer.Option(None, "--balance", help="Train balancing: none | undersample | "
                                          "oversample | class_weights | prior (the class shares of train before cleaning)."),
    export: Optional[str] = typer.Option(None, "--export", help="Comma list of exports: imagefolder,csv,parquet."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Keep only these classes, in every split "
                                          "(comma list, e.g. happy,neutral,sad,surprise; = --set classes=[...])."),
    *, seed: int, set_: Optional[List[str]], config: Optional[Path], as_json: bool, quiet: bool,
) -> None:
    """Cleaned (or raw), leak-free, stratified splits: decisions -> classes -> no-face photos -> duplicates
    -> findings -> splits.

    Writes splits/<name>/manifest.parquet (image_id, split, label, weight), ledger.parquet
    (every image, kept or removed, and why) and report.md (counts before/after, reconciled).
    """
    from curate.split.api import build_split, render_summary
    from curate.workspace import Workspace

    summary = build_split(Workspace(workspace), name=name, raw=raw or None, clean_test=clean_test or None,
                          resplit_val=resplit_val or None, balance=balance, export=_formats(export),
                          classes=_formats(classes), overrides=set_, config_file=config, seed=seed, quiet=quiet)
    emit(summary, as_json, render_summary, quiet)


@guarded
@shared_options
def export_cmd(
    workspace: Path,
    name: str = typer.Option("cleaned", "--name", help="Split to export (splits/<name>)."),
    formats: str = typer.Option("imagefolder,csv,parquet", "--format", help="Comma list: imagefolder,csv,parquet."),
    *, as_json: bool, quiet: bool,
) -> None:
    """Export a split as an ImageFolder tree (PNG), a fer2013-style CSV and/or parquet."""
    from curate.split.export import export_split
    from curate.workspace import Workspace

    ws = Workspace.open(workspace)
    done = export_split(ws, name, _formats(formats) or [], quiet=quiet)
    ws.record_run("export", options={"name": name, "formats": list(done)},
                  counts={"formats": len(done)})
    emit({"name": name, "exports": done}, as_json,
         lambda s: "\n".join(f"{k}: {v}" for k, v in s["exports"].items()), quiet)


def register(app: typer.Typer) -> None:
    """Add ``split`` and ``export`` to the curate app."""
    app.command("split")(split)
    app.command("export")(export_cmd)
