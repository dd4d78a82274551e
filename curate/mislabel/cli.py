"""``curate mislabel`` and ``curate mislabel-bench`` commands."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from curate.cli_common import ConfigOpt, JsonOpt, QuietOpt, SeedOpt, SetOpt, WorkspaceOpt, emit, guarded, say


def render(summary: dict) -> str:
    """Readable lines of a mislabel summary."""
    lines = [f"mislabel ({summary['mode']}, {summary.get('variant')}): {summary['images']} images"]
    if "oof_accuracy" in summary:
        lines.append(f"  out-of-fold accuracy {summary['oof_accuracy']:.3f} over {summary['folds']} folds "
                     f"(trained {summary['trained_folds']}, reused {summary['skipped_folds']})")
    if summary.get("judged") is False:
        lines.append(f"  flagged 0: {summary['reason']}")
    else:
        lines.append(f"  estimated wrong labels {summary['estimated_issues']}, flagged {summary['flagged']}")
    for pair, count in summary.get("top_flagged_pairs", {}).items():
        lines.append(f"    {pair:<22} {count}")
    lines.append("  findings.parquet check=mislabel; oof_probs.npy / oof_index.parquet / oof_meta.json"
                 if summary["mode"] == "oof" else "  findings.parquet check=mislabel")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add the mislabel commands to the ``curate`` app."""

    @app.command("mislabel")
    @guarded
    def mislabel(
        workspace: Path = WorkspaceOpt,
        mode: Optional[str] = typer.Option(None, "--mode", help="oof (k-fold out-of-fold models, default) | "
                                           "dynamics (one run, area under the margin; cheaper)"),
        folds: Optional[int] = typer.Option(None, "--folds", "-k", help="Number of folds (default 5)."),
        recipe: Optional[str] = typer.Option(None, "--recipe", help="Trainer recipe name or YAML (default oof_cpu)."),
        device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda"),
        seed: int = SeedOpt,
        set_: Optional[List[str]] = SetOpt,
        config: Optional[Path] = ConfigOpt,
        as_json: bool = JsonOpt,
        quiet: bool = QuietOpt,
    ) -> None:
        """Find wrong labels: cross-validated model disagreement, confident learning, embedding
        neighbours and training dynamics. Resumable per fold; writes findings (check=mislabel)."""
        from curate.config import parse_overrides
        from curate.mislabel.api import run_mislabel
        from curate.workspace import Workspace

        overrides = parse_overrides(set_ or [])
        for key, value in (("mode", mode), ("folds", folds), ("recipe", recipe), ("device", device)):
            if value is not None:
                overrides[key] = value
        summary = run_mislabel(Workspace.open(workspace), overrides=overrides or None, config_file=config,
                               seed=seed, quiet=quiet, log=lambda m: say(m, quiet))
        if summary.get("judged") is False and quiet:  # a warning, not chatter: said (via log) or printed
            typer.echo(f"warning: mislabel {summary['reason']}", err=True)
        emit(summary, as_json, render, quiet)

    @app.command("mislabel-bench")
    @guarded
    def mislabel_bench(
        workspace: Path = WorkspaceOpt,
        out: Path = typer.Option(Path("./curate-mislabel-bench"), "--out", help="Workspace for the flipped copy."),
        subset: int = typer.Option(0, "--subset", help="Images drawn (stratified) from the workspace; 0 = all (default)."),
        flip_rate: float = typer.Option(0.10, "--flip-rate", help="Share of labels flipped."),
        report: Path = typer.Option(Path("reports/mislabel.md"), "--report", help="Markdown report to write."),
        rescore: bool = typer.Option(False, "--rescore", help="Reuse the flipped copy and out-of-fold outputs of an "
                                     "earlier run in --out; only score the variants again."),
        seed: int = SeedOpt,
        set_: Optional[List[str]] = SetOpt,
        as_json: bool = JsonOpt,
        quiet: bool = QuietOpt,
    ) -> None:
        """Flip a known share of labels in a copy (uniform + confusable pairs), run the mislabel
        check on it, and report precision/recall per scoring variant and for cleanlab's defaults."""
        from curate.mislabel.bench import render_bench, run_bench
        from curate.workspace import Workspace

        summary = run_bench(Workspace.open(workspace), out, subset=subset, flip_rate=flip_rate, seed=seed,
                            overrides=set_, report=report, rescore=rescore, quiet=quiet,
                            log=lambda m: say(m, quiet))
        emit(summary, as_json, render_bench, quiet)
