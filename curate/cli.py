"""The ``curate`` command line (Typer). Each area registers its commands explicitly below."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
from typer.core import TyperGroup

from curate import __version__
from curate.cli_common import (ConfigOpt, JsonOpt, QuietOpt, SeedOpt, SetOpt, ThreadsOpt, WorkspaceOpt, emit,
                               run_guarded, say)
from curate.invocation import set_current_argv


class _RecordingGroup(TyperGroup):
    """The top-level group; records the arguments it parses so runs log the real command line."""

    def parse_args(self, ctx, args):  # type: ignore[override]
        set_current_argv(list(args))
        return super().parse_args(ctx, args)


app = typer.Typer(
    name="curate",
    cls=_RecordingGroup,
    help="Audit and clean facial-expression-recognition datasets: ingest, dedupe, audit, review, split, train-eval.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"curate {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit."),
          threads: Optional[int] = ThreadsOpt) -> None:
    """curate: find duplicates, non-faces, watermarks, bad crops and mislabels in FER datasets."""
    from curate.threads import set_cli_threads

    set_cli_threads(threads)


@app.command()
def ingest(
    sources: List[Path] = typer.Argument(..., help="fer2013.csv[.gz], an image folder, or a path,label[,split] CSV."),
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

    def go():
        ws = Workspace(workspace)
        summary = do_ingest(ws, sources, fmt=fmt, replace=replace, strict=strict, image_size=image_size,
                            overrides=set_, config_file=config, quiet=quiet)
        emit(summary, as_json, render_summary, quiet)
        if summary["kept"] == 0 and not summary.get("skipped_sources"):
            raise typer.Exit(1)

    run_guarded(go)


@app.command()
def info(workspace: Path = WorkspaceOpt, as_json: bool = JsonOpt, quiet: bool = QuietOpt,
         plot: bool = typer.Option(True, "--plot/--no-plot", help="Write class_distribution.png.")) -> None:
    """Counts per class x split, image sizes/modes, rejects; writes class_distribution.png."""
    from curate.info import render_info, workspace_info
    from curate.workspace import Workspace

    def go():
        summary = workspace_info(Workspace.open(workspace), plot=plot)
        emit(summary, as_json, render_info, quiet)

    run_guarded(go)


@app.command()
def run(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML (see pipelines/)."),
    workspace: Optional[Path] = typer.Option(None, "--workspace", "-w", help="Workspace (overrides the pipeline's)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed (overrides the pipeline's)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="STEP.KEY=VALUE override, e.g. dedupe.phash.threshold=8."),
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Run a declarative pipeline of steps on one workspace."""
    from curate.pipeline import run_pipeline

    def go():
        result = run_pipeline(pipeline, workspace=workspace, seed=seed, overrides=set_, quiet=quiet,
                              log=lambda m: say(m, quiet))
        emit(result, as_json, _render_pipeline, quiet)

    run_guarded(go)


@app.command()
def demo(
    workspace: Path = typer.Option(Path("./curate-demo"), "--workspace", "-w", help="Where the demo workspace goes."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="STEP.KEY=VALUE override."),
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Run every available step on the bundled FER2013 sample (pipelines/demo.yaml)."""
    from curate.config import pipelines_dir
    from curate.pipeline import run_pipeline

    def go():
        result = run_pipeline(pipelines_dir() / "demo.yaml", workspace=workspace, overrides=set_, quiet=quiet,
                              log=lambda m: say(m, quiet))
        emit(result, as_json, _render_pipeline, quiet)
        if not as_json:
            root = Path(result["workspace"])
            typer.echo(f"\nResults in {root}")
            report = root / "report" / "index.html"
            if report.exists():
                typer.echo(f"Report: {report}")

    run_guarded(go)


def _render_pipeline(result: dict) -> str:
    lines = [f"pipeline {result['pipeline']} on {result['workspace']} (seed {result['seed']})"]
    for step in result["steps"]:
        summary = step.get("summary")
        note = ""
        if isinstance(summary, dict) and summary.get("judged") is False:
            note = f"  {(summary.get('reason') or 'not judged').split('; ')[0]}"
        lines.append(f"  {step['step']:<12} {step['seconds']:>8.1f}s{note}")
    return "\n".join(lines)


# Area commands, registered explicitly (one line per area).
from curate.audit.cli import register as _register_audit; _register_audit(app)  # noqa: E402,E702
from curate.mislabel.cli import register as _register_mislabel; _register_mislabel(app)  # noqa: E402,E702

from curate.review.cli import register as _register_review; _register_review(app)  # noqa: E402,E702
from curate.report.cli import register as _register_report; _register_report(app)  # noqa: E402,E702
from curate.split.cli import register as _register_split; _register_split(app)  # noqa: E402,E702
from curate.train.cli import register as _register_train; _register_train(app)  # noqa: E402,E702
from curate.dedupe.cli import register as _register_dedupe; _register_dedupe(app)  # noqa: E402,E702
from curate.faces.cli import register as _register_faces; _register_faces(app)  # noqa: E402,E702


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
