"""``curate review open | pull | export | import``: review flagged images in the FiftyOne App or a CSV."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from curate.cli_common import JsonOpt, QuietOpt, WorkspaceOpt, emit, guarded
from curate.logs import get_logger

ReviewerOpt = typer.Option(None, "--reviewer", help="Who decided (default: $USER).")


def _render_open(s: dict) -> str:
    lines = [f"dataset {s['dataset']}: {s['samples']} samples ({s['added']} added, {s['updated']} updated, "
             f"{s['removed']} removed) in {s['seconds']:.1f}s; {s['flagged']} flagged; "
             f"{s['pngs_written']} PNGs written",
             f"saved views: {', '.join(s['views'])}"]
    if s.get("url"):
        lines.append(f"App: {s['url']}")
    return "\n".join(lines)


def _render_pull(s: dict) -> str:
    m = s["manifest"]
    lines = [f"{s['tagged']} tagged samples: {s['appended']} new/changed decisions appended by {s['reviewer']}, "
             f"{s['unchanged']} unchanged",
             f"manifest: {m['labels_changed']} labels changed; latest decisions: {m['relabel']} relabel, "
             f"{m['exclude']} exclude, {m['keep']} keep"]
    if s["conflicts"]:
        lines.append(f"{len(s['conflicts'])} conflicts (not recorded; fix the tags and pull again):")
        lines += [f"  {c['image_id']}: {c['reason']}" for c in s["conflicts"][:50]]
    if s["decided_but_untagged_count"]:
        lines.append(f"{s['decided_but_untagged_count']} samples have a recorded decision but no review tag now; "
                     "decisions are append-only: tag them `keep` to override")
    lines += _verdict_lines(s.get("check_verdicts"))
    return "\n".join(lines)


def _verdict_lines(v: dict | None) -> list[str]:
    if not v or not v.get("appended"):
        return []
    per = ", ".join(f"{c} {d['verdicts']} ({d['issue']} is, {d['verdicts'] - d['issue']} not)" for c, d in v["by_check"].items())
    return [f"photo-check verdicts appended to check_feedback.parquet: {v['appended']} ({per}); "
            "`curate audit` learns from them (learn_from_review)"]


def _render_import(s: dict) -> str:
    m = s["manifest"]
    lines = [f"{s['decisions']} decisions read from {s['csv']}: {s['appended']} appended by {s['reviewer']}, "
             f"{s['unchanged']} unchanged; {m['labels_changed']} manifest labels changed"]
    lines += _verdict_lines(s.get("check_verdicts"))
    lines += [f"warning: {w}" for w in s["warnings"]]
    if s["errors"]:
        lines.append(f"{len(s['errors'])} bad rows skipped:")
        lines += [f"  {e}" for e in s["errors"]]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add the ``review`` command group to the CLI."""
    review = typer.Typer(help="Review flagged images (FiftyOne App or CSV) and record decisions.",
                         no_args_is_help=True)

    @review.command("open")
    @guarded
    def open_(workspace: Path = WorkspaceOpt,
              port: int = typer.Option(5151, "--port", help="App port on 127.0.0.1."),
              no_launch: bool = typer.Option(False, "--no-launch", help="Only build/update the dataset."),
              as_json: bool = JsonOpt, quiet: bool = QuietOpt) -> None:
        """Build/update the workspace's FiftyOne dataset (evidence, tags, saved views) and serve the App."""
        from curate.review.app import open_review
        from curate.workspace import Workspace

        summary = open_review(Workspace.open(workspace), port=port, launch=not no_launch, quiet=quiet)
        emit(summary, as_json, _render_open, quiet)

    @review.command("pull")
    @guarded
    def pull(workspace: Path = WorkspaceOpt, reviewer: Optional[str] = ReviewerOpt,
             as_json: bool = JsonOpt, quiet: bool = QuietOpt) -> None:
        """Record the App's review tags (keep / exclude / relabel:<class>) in decisions.parquet."""
        from curate.review.api import pull_review
        from curate.workspace import Workspace

        emit(pull_review(Workspace.open(workspace), reviewer=reviewer), as_json, _render_pull, quiet)

    @review.command("export")
    @guarded
    def export(out: Path = typer.Option(..., "-o", "--output", help="CSV to write."),
               workspace: Path = WorkspaceOpt,
               only_flagged: bool = typer.Option(False, "--only-flagged", help="Only flagged or duplicated images."),
               as_json: bool = JsonOpt, quiet: bool = QuietOpt) -> None:
        """Write a review CSV: evidence per image plus `decision` and `new_label` columns to fill in."""
        from curate.review.api import export_review
        from curate.workspace import Workspace

        summary = export_review(Workspace.open(workspace), out, only_flagged=only_flagged, quiet=quiet)
        emit(summary, as_json, lambda s: f"{s['rows']} rows written to {s['csv']}", quiet)

    @review.command("import")
    @guarded
    def import_(csv: Path = typer.Argument(..., help="A review CSV with image_id, decision[, new_label]."),
                workspace: Path = WorkspaceOpt, reviewer: Optional[str] = ReviewerOpt,
                as_json: bool = JsonOpt, quiet: bool = QuietOpt) -> None:
        """Append the CSV's decisions to decisions.parquet; bad rows are named and skipped (exit 1)."""
        from curate.review.api import import_review
        from curate.workspace import Workspace

        summary = import_review(Workspace.open(workspace), csv, reviewer=reviewer)
        emit(summary, as_json, _render_import, quiet)
        if summary["errors"]:
            if as_json or quiet:
                get_logger(__name__).info(f"{len(summary['errors'])} bad rows skipped")
            raise typer.Exit(1)

    app.add_typer(review, name="review")
