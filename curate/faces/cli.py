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
                                help="By-eye review CSV of the photos in -w (path relative to the ingested folder, "
                                     "usable_face, n_faces, multiple_faces, cartoon, watermark, ...)."),
    scrape: Optional[List[str]] = typer.Option(None, "--scrape",
                                               help="WS=REVIEW.csv: a reviewed scrape (repeatable; replaces -w/--review). "
                                                    "With two or more, each check is fitted on one and measured on "
                                                    "the others."),
    report: Optional[Path] = typer.Option(None, "--report", help="Markdown report to write (e.g. reports/photos.md)."),
    write_model: Optional[Path] = typer.Option(None, "--write-model",
                                               help="Fit the photo-check scorers on every reviewed photo of every "
                                                    "scrape and write them (JSON) here."),
    features: Optional[List[str]] = typer.Option(None, "--features",
                                                 help="CHECK=SET: the feature set a learned check reads (sets: "
                                                      "detector, detector+face, detector+face+art, all, "
                                                      "marks+text_detector, all+text_detector)."),
    folds: int = typer.Option(5, "--folds", help="Cross-validation folds (grouped by duplicate cluster)."),
    curve_repeats: int = typer.Option(5, "--curve-repeats", help="Random draws per learning-curve size."),
    curve_sizes: str = typer.Option("0,25,50,100,200", "--curve-sizes",
                                    help="Reviewed photos of the other scrape in the learning curve (comma-separated; "
                                         "empty = no learning curve)."),
    no_hog: bool = typer.Option(False, "--no-hog", help="Skip the HOG baselines (they decode every original)."),
    timing: Optional[Path] = typer.Option(None, "--timing", help="JSON written by tools/time_photo_pipeline.py "
                                                                  "(ingest + dedupe + audit times) to include."),
    *, seed: int, as_json: bool, quiet: bool,
) -> None:
    """Photo checks (no_face, multiple_faces, cartoon, watermark) against by-eye reviews: fitted on
    one scrape and measured on another (the headline), the shipped scorers fitted on all of them
    (grouped cross-validation), same-scrape cross-validation, a reviewer's learning curve, the
    simplest baselines and the face-detection rate; optionally writes the fitted scorers."""
    from curate.audit.photo_model import FEATURE_SETS
    from curate.errors import CurateError
    from curate.faces.bench import run_bench
    from curate.faces.report import render_report
    from curate.workspace import Workspace

    pairs = []
    for item in scrape or []:
        ws_path, sep, csv = item.partition("=")
        if not sep or not csv:
            raise CurateError(f"--scrape {item!r}: expected WORKSPACE=REVIEW.csv", exit_code=2)
        pairs.append((Workspace.open(Path(ws_path)), Path(csv)))
    if not pairs:
        pairs = [(Workspace.open(workspace), review)]
    chosen = {}
    for item in features or []:
        check, sep, name = item.partition("=")
        if not sep or name not in FEATURE_SETS or check not in ("no_face", "cartoon", "watermark"):
            raise CurateError(f"--features {item!r}: expected CHECK=SET with CHECK one of no_face, cartoon, watermark "
                              f"and SET one of {', '.join(FEATURE_SETS)}", exit_code=2)
        chosen[check] = name
    try:
        sizes = tuple(int(v) for v in curve_sizes.split(",") if v.strip())
    except ValueError:
        raise CurateError(f"--curve-sizes {curve_sizes!r}: expected comma-separated integers", exit_code=2) from None
    result = run_bench(pairs, folds=folds, seed=seed, features=chosen or None, write_model=write_model,
                       curve_repeats=curve_repeats, curve_sizes=sizes, hog_baseline=not no_hog)
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
