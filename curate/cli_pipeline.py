"""``curate run`` (a pipeline file) and ``curate demo`` (pipelines/demo.yaml on the bundled sample)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from curate.cli_common import emit, guarded, shared_options


def render_pipeline(result: dict) -> str:
    """One line per step: its name and seconds, and why it was not judged where it was not."""
    lines = [f"pipeline {result['pipeline']} on {result['workspace']} (seed {result['seed']})"]
    for step in result["steps"]:
        summary = step.get("summary")
        note = ""
        if isinstance(summary, dict) and summary.get("judged") is False:
            note = f"  {(summary.get('reason') or 'not judged').split('; ')[0]}"
        lines.append(f"  {step['step']:<12} {step['seconds']:>8.1f}s{note}")
    return "\n".join(lines)


@guarded
@shared_options
def run(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML (see pipelines/)."),
    workspace: Optional[Path] = typer.Option(None, "--workspace", "-w", help="Workspace (overrides the pipeline's)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed (overrides the pipeline's)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="STEP.KEY=VALUE override, e.g. dedupe.phash.threshold=8."),
    *, as_json: bool, quiet: bool,
) -> None:
    """Run a declarative pipeline of steps on one workspace."""
    from curate.pipeline import run_pipeline

    result = run_pipeline(pipeline, workspace=workspace, seed=seed, overrides=set_, quiet=quiet)
    emit(result, as_json, render_pipeline, quiet)


@guarded
@shared_options
def demo(
    workspace: Path = typer.Option(Path("./curate-demo"), "--workspace", "-w", help="Where the demo workspace goes."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="STEP.KEY=VALUE override."),
    *, as_json: bool, quiet: bool,
) -> None:
    """Run every available step on the bundled FER2013 sample (pipelines/demo.yaml)."""
    from curate.config import pipelines_dir
    from curate.pipeline import run_pipeline

    result = run_pipeline(pipelines_dir() / "demo.yaml", workspace=workspace, overrides=set_, quiet=quiet)
    emit(result, as_json, render_pipeline, quiet)
    if not as_json:
        root = Path(result["workspace"])
        typer.echo(f"\nResults in {root}")
        report = root / "report" / "index.html"
        if report.exists():
            typer.echo(f"Report: {report}")


def register(app: typer.Typer) -> None:
    """Add ``run`` and ``demo`` to the ``curate`` app."""
    app.command("run")(run)
    app.command("demo")(demo)
