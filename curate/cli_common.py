"""Options and output helpers shared by every ``curate`` command."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from curate.workspace import DEFAULT_WORKSPACE

WorkspaceOpt = typer.Option(DEFAULT_WORKSPACE, "--workspace", "-w", help="Workspace folder (one per dataset).")
JsonOpt = typer.Option(False, "--json", help="Print a JSON summary on stdout for scripts.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress bars or chatter.")
SeedOpt = typer.Option(0, "--seed", help="Random seed (same seed, same outputs).")
SetOpt = typer.Option(None, "--set", help="Override a config value, e.g. --set phash.threshold=8 (repeatable).")
ConfigOpt = typer.Option(None, "--config", help="YAML file merged over the defaults from configs/.")
ThreadsOpt = typer.Option(None, "--threads", min=0,
                          help="CPU threads for torch/OpenCV (global: curate --threads N CMD). Default: "
                               "CURATE_THREADS, else OMP_NUM_THREADS, else every core this process may use; "
                               "give each of several processes sharing the cores its share (e.g. 1).")


def say(message: str, quiet: bool = False) -> None:
    """Human-readable message on stderr (stdout stays clean for --json)."""
    if not quiet:
        typer.echo(message, err=True)


def emit(summary: dict[str, Any], as_json: bool, render: Callable[[dict[str, Any]], str] | None = None,
         quiet: bool = False) -> None:
    """Print ``summary`` as JSON (``--json``) or through ``render`` as text."""
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=_default))
    elif render is not None and not quiet:
        typer.echo(render(summary))


def _default(obj: Any) -> Any:
    from curate.atomic import _json_default

    return _json_default(obj)


def run_guarded(fn: Callable[[], Any]) -> Any:
    """Run ``fn``; user-facing errors become a message and an exit code, not a traceback."""
    from curate.config import ConfigError
    from curate.errors import CurateError
    from curate.workspace import WorkspaceError

    try:
        return fn()
    except CurateError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code)
    except (ConfigError, WorkspaceError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2 if isinstance(exc, ConfigError) else 1)
