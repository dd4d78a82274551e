"""``curate audit`` and ``curate bench-audit``."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from curate.cli_common import ConfigOpt, JsonOpt, QuietOpt, SeedOpt, SetOpt, WorkspaceOpt, emit, run_guarded, say


def _render_list(checks: dict) -> str:
    lines = []
    for c in checks["checks"]:
        defaults = ", ".join(f"{k}={v}" for k, v in c["defaults"].items())
        lines.append(f"{c['name']:<16} {c['description']}\n{'':<16} defaults: {defaults}")
    return "\n".join(lines)


def open_ui(ws, port: int, quiet: bool) -> dict:
    """Open the review app on the findings (lazy import; clear error when it is not available)."""
    from curate.errors import CurateError

    try:
        from curate.review.app import open_review
    except ImportError as exc:
        raise CurateError(f"--open-ui needs the review app (curate.review.app.open_review), which is not "
                          f"available: {exc}") from None
    return open_review(ws, port=port, launch=True, quiet=quiet)


def register(app: typer.Typer) -> None:
    """Add the audit commands to ``app``."""

    @app.command()
    def audit(
        workspace: Path = WorkspaceOpt,
        checks: Optional[str] = typer.Option(None, "--checks", help="Comma-separated checks (default: all). See --list."),
        list_: bool = typer.Option(False, "--list", help="List the checks with descriptions and defaults, then exit."),
        open_ui_: bool = typer.Option(False, "--open-ui", help="Open the review app on the findings afterwards."),
        port: int = typer.Option(5151, "--port", help="Port of the review app (with --open-ui)."),
        seed: int = SeedOpt,
        set_: Optional[List[str]] = SetOpt,
        config: Optional[Path] = ConfigOpt,
        as_json: bool = JsonOpt,
        quiet: bool = QuietOpt,
    ) -> None:
        """Flag blank, dark/light, low-contrast, blurry, non-face, misaligned, watermarked, cartoon and occluded images.

        Writes one row per image and check to findings.parquet (re-running a check replaces its rows only).
        """
        from curate.audit.api import audit as do_audit, list_checks, render_summary
        from curate.config import load_config
        from curate.workspace import Workspace

        def go():
            if list_:
                emit({"checks": list_checks(load_config("audit", set_, config))}, as_json, _render_list, False)
                return
            names = [c.strip() for c in checks.split(",") if c.strip()] if checks else None
            ws = Workspace.open(workspace)
            summary = do_audit(ws, names, overrides=set_, config_file=config, seed=seed, quiet=quiet)
            if open_ui_:
                say(f"opening the review app on port {port} ...", quiet)
                summary["review"] = open_ui(ws, port, quiet)
            emit(summary, as_json, render_summary, quiet)

        run_guarded(go)

    @app.command("bench-audit")
    def bench_audit(
        data: Path = typer.Option(Path("/work/shared/data/fer2013/fer2013.csv.gz"), "--data",
                                  help="FER2013 CSV (or any source `curate ingest` reads) to inject defects into."),
        out: Path = typer.Option(Path("reports/audit.md"), "--out", help="Markdown report to write."),
        scratch: Path = typer.Option(Path("./curate-bench-audit"), "--scratch", help="Scratch folder for workspaces."),
        per_type: int = typer.Option(300, "--per-type", help="Injected images per defect type."),
        limit: Optional[int] = typer.Option(None, "--limit", help="Use only the first N images of the data."),
        seed: int = SeedOpt,
        set_: Optional[List[str]] = SetOpt,
        as_json: bool = JsonOpt,
        quiet: bool = QuietOpt,
    ) -> None:
        """Benchmark the audit checks on injected defects (recall at the clean images' FPR); writes a report."""
        from curate.audit.bench import run_bench

        def go():
            result = run_bench(data, out=out, scratch=scratch, per_type=per_type, limit=limit, seed=seed,
                               overrides=set_, quiet=quiet)
            emit(result, as_json, lambda r: f"report written to {r['report']}", quiet)

        run_guarded(go)
