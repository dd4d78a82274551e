"""``curate dedupe`` and ``curate dedupe-bench`` commands."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from curate.cli_common import emit, guarded, shared_options


@guarded
@shared_options
def dedupe(
    workspace: Path,
    embedder: Optional[str] = typer.Option(None, "--embedder", help="pixel | clip | cnn | none "
                                           "(default from configs/dedupe.yaml)."),
    *, seed: int, set_: Optional[List[str]], config: Optional[Path], as_json: bool, quiet: bool,
) -> None:
    """Find exact and near duplicates (pHash + mirror, embeddings), cluster them, flag label
    conflicts and cross-split leaks, propose keep/drop/exclude per image. Writes
    duplicates.parquet, duplicate_pairs.parquet, dedupe_summary.json."""
    from curate.dedupe.api import dedupe as run_dedupe, render_summary
    from curate.workspace import Workspace

    summary = run_dedupe(Workspace.open(workspace), overrides=set_, config_file=config, embedder=embedder,
                         seed=seed, quiet=quiet)
    emit(summary, as_json, render_summary, quiet)


@guarded
@shared_options
def dedupe_bench(
    workspace: Path = typer.Option(Path("./curate-bench-dedupe"), "--workspace", "-w",
                                   help="Workspace holding the base images (FER2013 ingested)."),
    report: Path = typer.Option(Path("reports/dedupe.md"), "--report", help="Markdown report to write."),
    *, seed: int, set_: Optional[List[str]], as_json: bool, quiet: bool,
) -> None:
    """Benchmark: inject transformed copies of real images, score recall per transform and
    precision for each method, the default combination and imagededup's PHash; time the
    full run and its 4x growth. Writes the Markdown report."""
    from curate.dedupe.bench import bench_dedupe_step, render_bench
    from curate.workspace import Workspace

    options = {"report": str(report)}
    if set_:
        from curate.config import parse_overrides

        options.update(parse_overrides(set_))
    summary = bench_dedupe_step(Workspace.open(workspace), options, seed=seed, quiet=quiet)
    emit(summary, as_json, render_bench, quiet)


def register(app: typer.Typer) -> None:
    """Add the dedupe commands to the ``curate`` app."""
    app.command("dedupe")(dedupe)
    app.command("dedupe-bench")(dedupe_bench)
