"""``curate mislabel`` and ``curate mislabel-bench`` commands."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from curate.cli_common import emit, guarded, shared_options


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


def render_rescore(summary: dict) -> str:
    """Readable lines of a ``--rescore`` summary."""
    lines = [f"mislabel --rescore: {summary['decided']} reviewed images ({summary['confirmed_errors']} wrong labels, "
             f"{summary['confirmed_labels']} confirmed) of {summary['images']}",
             f"  flagged {summary['flagged']} (estimated wrong labels {summary['estimated_issues']}; "
             f"{summary['flagged_ambiguous']} with an ambiguous suggestion)"]
    for pair, count in summary.get("top_flagged_pairs", {}).items():
        lines.append(f"    {pair:<34} {count}")
    return "\n".join(lines)


@guarded
@shared_options
def mislabel(
    workspace: Path,
    mode: Optional[str] = typer.Option(None, "--mode", help="oof (k-fold out-of-fold models, default) | "
                                       "dynamics (one run, area under the margin; cheaper)"),
    folds: Optional[int] = typer.Option(None, "--folds", "-k", help="Number of folds (default 5)."),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="Trainer recipe name or YAML (default oof_cpu)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda"),
    rescore: bool = typer.Option(False, "--rescore", help="No training: re-rank the last run's findings with "
                                 "the reviewer's decisions (decisions.parquet, from `curate review pull`): "
                                 "relabels confirm wrong labels, keeps confirm labels, per class pair."),
    *, seed: int, set_: Optional[List[str]], config: Optional[Path], as_json: bool, quiet: bool,
) -> None:
    """Find wrong labels: cross-validated model disagreement, confident learning, embedding
    neighbours and training dynamics. Resumable per fold; writes findings (check=mislabel);
    suggestions read `ambiguous: a|b` when the two likeliest classes are close."""
    from curate.config import parse_overrides
    from curate.mislabel.api import rescore_mislabel, run_mislabel
    from curate.workspace import Workspace

    if rescore:
        summary = rescore_mislabel(Workspace.open(workspace), overrides=parse_overrides(set_ or []) or None,
                                   config_file=config)
        emit(summary, as_json, render_rescore, quiet)
        return
    overrides = parse_overrides(set_ or [])
    for key, value in (("mode", mode), ("folds", folds), ("recipe", recipe), ("device", device)):
        if value is not None:
            overrides[key] = value
    summary = run_mislabel(Workspace.open(workspace), overrides=overrides or None, config_file=config,
                           seed=seed, quiet=quiet)
    emit(summary, as_json, render, quiet)


@guarded
@shared_options
def mislabel_bench(
    workspace: Path,
    out: Path = typer.Option(Path("./curate-mislabel-bench"), "--out", help="Workspace for the flipped copy."),
    subset: int = typer.Option(0, "--subset", help="Images drawn (stratified) from the workspace; 0 = all (default)."),
    flip_rate: float = typer.Option(0.10, "--flip-rate", help="Share of labels flipped."),
    report: Path = typer.Option(Path("reports/mislabel.md"), "--report", help="Markdown report to write."),
    rescore: bool = typer.Option(False, "--rescore", help="Reuse the flipped copy and out-of-fold outputs of an "
                                 "earlier run in --out; only score the variants again."),
    review: Optional[Path] = typer.Option(None, "--review", help="Instead of flipping labels: score every "
                                          "variant of the workspace's last `curate mislabel` run against this "
                                          "by-eye review CSV (e.g. reports/review/fer2013-labels-reviewed.csv) "
                                          "and write the report's review section."),
    second_view: bool = typer.Option(True, "--second-view/--no-second-view", help="With --review: also fit the "
                                     "HOG/LBP linear view (about 2 CPU minutes on FER2013)."),
    baseline: Optional[List[Path]] = typer.Option(None, "--baseline", help="With --review: another workspace "
                                                  "holding a `curate mislabel` run of the same images (e.g. "
                                                  "another recipe); adds its row. Repeatable."),
    *, seed: int, set_: Optional[List[str]], as_json: bool, quiet: bool,
) -> None:
    """Flip a known share of labels in a copy (uniform + confusable pairs), run the mislabel
    check on it, and report precision/recall per scoring variant and for cleanlab's defaults;
    or, with --review, measure the variants against real errors found by eye."""
    from curate.mislabel.bench import render_bench, run_bench
    from curate.workspace import Workspace

    if review is not None:
        from curate.mislabel.review_bench import run_review_bench
        from curate.mislabel.review_report import render_review

        result = run_review_bench(Workspace.open(workspace), review, report=report, overrides=set_,
                                  second_view=second_view, baselines=[Workspace.open(b) for b in baseline or []])
        emit(result, as_json, render_review, quiet)
        return

    summary = run_bench(Workspace.open(workspace), out, subset=subset, flip_rate=flip_rate, seed=seed,
                        overrides=set_, report=report, rescore=rescore, quiet=quiet)
    emit(summary, as_json, render_bench, quiet)


def register(app: typer.Typer) -> None:
    """Add the mislabel commands to the ``curate`` app."""
    app.command("mislabel")(mislabel)
    app.command("mislabel-bench")(mislabel_bench)
