"""``curate faces`` (re-run the face stage) and ``curate photos-bench`` (photo checks vs a review)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from curate.cli_common import emit, guarded, shared_options


@guarded
@shared_options
def faces(
    workspace: Path,
    *, set_: Optional[List[str]], config: Optional[Path], as_json: bool, quiet: bool,
) -> None:
    """Re-run the face stage on every photo of the workspace from its original file: detect
    faces with landmarks, align the main face (FER2013 framing) into the pixel store and the
    colour crop store, rewrite faces.parquet / face_images.parquet / photo_features.parquet / text_boxes.parquet.
    `curate ingest` already runs it for photo sources; use this after changing faces.* settings
    (e.g. --set faces.upsample=2)."""
    from curate.faces.api import find_faces
    from curate.workspace import Workspace

    summary = find_faces(Workspace.open(workspace), overrides=set_, config_file=config, quiet=quiet)
    emit(summary, as_json, lambda s: (f"faces: a face found and aligned in {s['with_face']:,} of "
                                      f"{s['photos']:,} photos; {s['several_faces']:,} with several; "
                                      f"{s['errors']:,} errors ({s['seconds']:.1f}s)"), quiet)


@guarded
@shared_options
def photos_bench(
    workspace: Path,
    review: Path = typer.Option(Path("reports/review/scraped-reviewed.csv"), "--review",
                                help="By-eye review CSV (path relative to the ingested folder, usable_face, "
                                     "n_faces, cartoon, watermark, ...)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Markdown report to write (e.g. reports/photos.md)."),
    write_model: Optional[Path] = typer.Option(None, "--write-model",
                                               help="Fit the photo-check scorers on every reviewed photo and "
                                                    "write them (JSON) here."),
    folds: int = typer.Option(5, "--folds", help="Cross-validation folds (grouped by duplicate cluster)."),
    timing: Optional[Path] = typer.Option(None, "--timing", help="JSON written by tools/time_photo_pipeline.py "
                                                                  "(ingest + dedupe + audit times) to include."),
    *, seed: int, as_json: bool, quiet: bool,
) -> None:
    """Photo checks (no_face, multiple_faces, cartoon, watermark) against a by-eye review:
    cross-validated precision/recall, the simplest baselines on the same photos, the
    face-detection rate; optionally writes the fitted scorers."""
    from curate.faces.bench import run_bench
    from curate.faces.report import render_report
    from curate.workspace import Workspace

    result = run_bench(Workspace.open(workspace), review, folds=folds, seed=seed, write_model=write_model)
    if timing is not None:
        import json

        result["timing_run"] = json.loads(Path(timing).read_text(encoding="utf-8"))
    if report is not None:
        from curate import atomic

        atomic.write_text(report, render_report(result))
        result["report"] = str(report)
    emit(result, as_json, render_report, quiet)


def register(app: typer.Typer) -> None:
    """Add the face-stage commands to the ``curate`` app."""
    app.command("faces")(faces)
    app.command("photos-bench")(photos_bench)
