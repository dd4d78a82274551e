"""``curate audit``, ``curate audit-model train | info`` and ``curate audit-bench``."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from curate.cli_common import JsonOpt, deprecated_alias, emit, guarded, shared_options
from curate.logs import get_logger


def _render_list(checks: dict) -> str:
    lines = []
    for c in checks["checks"]:
        defaults = ", ".join(f"{k}={v}" for k, v in c["defaults"].items())
        lines.append(f"{c['name']:<16} {c['description']}\n{'':<16} defaults: {defaults}")
    return "\n".join(lines)


def _render_audit(summary: dict) -> str:
    from curate.audit.api import render_summary
    from curate.audit.registry import WORKSPACE_CHECKS

    parts = [render_summary(summary)] if "checks" in summary else []
    parts += [entry.render(summary[name]) for name, entry in WORKSPACE_CHECKS.items() if name in summary]
    return "\n".join(parts)


def _render_model_info(m: dict) -> str:
    t = m.get("training", {})
    return "\n".join([f"{m['weights']} ({(m['bytes'] or 0) / 1024:.0f} KB, sha256 {m['weights_sha256'][:12]})",
                      f"  classes: {', '.join(m['classes'])}",
                      f"  network: {m['model']} {m['model_args']}, {m['image_size']}x{m['image_size']} grey",
                      f"  trained on: {t.get('data')} ({t.get('images_used', 0):,} images; held out: "
                      f"{', '.join(t.get('held_out', {})) or 'nothing'}), seed {m.get('seed')}",
                      f"  curate {m.get('curate_version')}: {m.get('command')}"])


def open_ui(ws, port: int, quiet: bool) -> dict:
    """Open the review app on the findings (lazy import; clear error when it is not available)."""
    from curate.errors import CurateError

    try:
        from curate.review.app import open_review
    except ImportError as exc:
        raise CurateError(f"--open-ui needs the review app (curate.review.app.open_review), which is not "
                          f"available: {exc}") from None
    return open_review(ws, port=port, launch=True, quiet=quiet)


@guarded
@shared_options
def audit(
    workspace: Path,
    checks: Optional[str] = typer.Option(None, "--checks", help="Comma-separated checks (default: all). See --list."),
    list_: bool = typer.Option(False, "--list", help="List the checks with descriptions and defaults, then exit."),
    open_ui_: bool = typer.Option(False, "--open-ui", help="Open the review app on the findings afterwards."),
    port: int = typer.Option(5151, "--port", help="Port of the review app (with --open-ui)."),
    *, seed: int, set_: Optional[List[str]], config: Optional[Path], as_json: bool, quiet: bool,
) -> None:
    """Flag blank, dark/light, low-contrast, blurry, non-face, misaligned, watermarked, cartoon and occluded images.

    Writes one row per image and check to findings.parquet (re-running a check replaces its rows only).
    `--checks mislabel` adds the cross-validated mislabel check (same as `curate mislabel`).
    """
    from curate.audit.api import list_checks, run_audit, split_overrides
    from curate.settings import load_settings
    from curate.workspace import Workspace

    if list_:
        audit_set, own_sets = split_overrides(set_ or [])
        emit({"checks": list_checks(load_settings("audit", audit_set, config), own_sets)}, as_json, _render_list,
             False)
        return
    names = [c.strip() for c in checks.split(",") if c.strip()] if checks else None
    ws = Workspace.open(workspace)
    summary = run_audit(ws, names, overrides=set_ or [], config_file=config, seed=seed, quiet=quiet)
    if open_ui_:
        get_logger(__name__).info(f"opening the review app on port {port} ...")
        summary["review"] = open_ui(ws, port, quiet)
    emit(summary, as_json, _render_audit, quiet)


@guarded
@shared_options
def audit_model_train(
    workspace: Path,
    out: Path = typer.Option(..., "--out", help="Weights file to write (NAME.pt; NAME.json is written next to it)."),
    holdout_bench: Optional[int] = typer.Option(None, "--holdout-bench-seed", help="Leave out the `curate "
                                                "audit-bench --seed N` reporting half of this workspace (the "
                                                "workspace must hold the benchmark's data, in ingest order)."),
    reviewed: Optional[Path] = typer.Option(None, "--reviewed", help="CSV (image_id, issue) of confirmed real "
                                            "defects: kept out of the clean class."),
    *, seed: int, set_: Optional[List[str]], config: Optional[Path], as_json: bool, quiet: bool,
) -> None:
    """Train the defect model on a workspace (model.* settings of configs/audit.yaml) and write a weights file.

    Use it with `curate audit --set model.weights=PATH`; the package's own model was made with this command
    (see reports/audit.md).
    """
    from curate.audit.model_train import train_bundle
    from curate.workspace import Workspace

    ws = Workspace.open(workspace)
    result = train_bundle(ws, out, overrides=set_, config_file=config, seed=seed,
                          holdout_bench_seed=holdout_bench, reviewed=reviewed, quiet=quiet)
    emit(result, as_json, lambda r: (f"wrote {r['weights']} ({r['bytes'] / 1024:.0f} KB) and {r['sidecar']}: "
                                     f"{r['images_used']:,} training images, {r['train_seconds']:.0f} s"),
         quiet)


@guarded
def audit_model_info(
    weights: Optional[Path] = typer.Argument(None, help="Weights file (default: the bundled model)."),
    as_json: bool = JsonOpt,
) -> None:
    """Show a weights file's sidecar: classes, network, training data, seed, version, command."""
    from curate.audit.defect_weights import BUNDLED_WEIGHTS
    from curate.audit.model_train import describe

    emit(describe(weights or BUNDLED_WEIGHTS), as_json, _render_model_info, False)


@guarded
@shared_options
def audit_bench(
    data: Path = typer.Option(Path("../shared/data/fer2013/fer2013.csv.gz"), "--data",
                              help="FER2013 CSV (or any source `curate ingest` reads) to inject defects into."),
    out: Path = typer.Option(Path("reports/audit.md"), "--out", help="Markdown report to write."),
    scratch: Path = typer.Option(Path("./curate-bench-audit"), "--scratch", help="Scratch folder for workspaces."),
    per_type: int = typer.Option(300, "--per-type", help="Injected images per defect type."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use only the first N images of the data."),
    reviewed: Optional[Path] = typer.Option(None, "--reviewed", help="CSV (image_id, issue) of images a reviewer "
                                             "confirmed as real defects: left out of the negatives."),
    timing: bool = typer.Option(True, "--timing/--no-timing", help="Also time every check on all images."),
    shift: Optional[str] = typer.Option(None, "--shift", help="Apply a domain shift to every image first "
                                        "(tight: faces framed 1/6 tighter), to measure adaptation."),
    *, seed: int, set_: Optional[List[str]], as_json: bool, quiet: bool,
) -> None:
    """Benchmark the audit checks on injected defects (recall at the clean images' FPR); writes a report."""
    from curate.audit.bench import run_bench

    result = run_bench(data, out=out, scratch=scratch, per_type=per_type, limit=limit, seed=seed,
                       overrides=set_, reviewed=reviewed, timing=timing, shift=shift,
                       quiet=quiet)
    emit(result, as_json, lambda r: f"report written to {r['report']}", quiet)


def register(app: typer.Typer) -> None:
    """Add the audit commands to ``app``."""
    app.command("audit")(audit)
    model_app = typer.Typer(help="The defect model of the learned audit checks: train a weights file, show one.",
                            no_args_is_help=True)
    app.add_typer(model_app, name="audit-model")
    model_app.command("train")(audit_model_train)
    model_app.command("info")(audit_model_info)
    app.command("audit-bench")(audit_bench)
    deprecated_alias(app, "bench-audit", "audit-bench", audit_bench)
