"""Options and output helpers shared by every ``curate`` command."""
from __future__ import annotations

import functools
import inspect
import json
from typing import Any, Callable, TypeVar

import typer

from curate.logs import cli_logging
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

EngineOpt = typer.Option(None, "--engine",
                         help="Where per-image work and mislabel folds run (global: curate --engine ray CMD): "
                              "local (threads in this process, the default) or ray (a Ray cluster; pip install "
                              "'curate\\[ray]'). Default: CURATE_ENGINE, else ray when a Ray address is given, else local.")
RayAddressOpt = typer.Option(None, "--ray-address",
                             help="Ray cluster to use with --engine ray (HOST:PORT of its head node; implies "
                                  "--engine ray). Default: CURATE_RAY_ADDRESS, else RAY_ADDRESS, else a Ray "
                                  "instance started on this machine.")


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
    """Run ``fn``; user-facing errors become a message and an exit code, not a traceback.

    ``CurateError``: its ``exit_code``; ``ConfigError``: 2; ``WorkspaceError`` and
    ``FileNotFoundError``: 1. Anything else (a bug) keeps its traceback.
    """
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


F = TypeVar("F", bound=Callable[..., Any])


def guarded(command: F) -> F:
    """Decorator for a command's function: its body runs under :func:`run_guarded`, with the ``curate``
    logger writing to stderr (:func:`curate.logs.cli_logging`; only warnings under ``--quiet``).

    Put it below ``@app.command(...)``; the signature (the options Typer reads) is kept::

        @app.command("dedupe")
        @guarded
        def dedupe(workspace: Path = WorkspaceOpt, ...) -> None:
            ...
    """

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        with cli_logging(quiet=bool(kwargs.get("quiet", False))):
            return run_guarded(lambda: command(*args, **kwargs))

    run.curate_guarded = True  # type: ignore[attr-defined]  # what tests check every command for
    return run  # type: ignore[return-value]


SHARED_OPTIONS: dict[str, Any] = {"workspace": WorkspaceOpt, "seed": SeedOpt, "set_": SetOpt, "config": ConfigOpt,
                                  "as_json": JsonOpt, "quiet": QuietOpt}
"""The options most commands share, by the name of the parameter that takes each."""


def shared_options(command: F) -> F:
    """Decorator: each parameter of ``command`` named as in :data:`SHARED_OPTIONS` and declared without
    a default takes that option (``--workspace/-w``, ``--seed``, ``--set``, ``--config``, ``--json``,
    ``--quiet/-q``), so a command names its shared options instead of repeating them::

        @guarded
        @shared_options
        def faces(workspace: Path, *, set_: Optional[List[str]], config: Optional[Path], as_json: bool,
                  quiet: bool) -> None:
            ...
    """
    sig = inspect.signature(command)
    params = [p.replace(default=SHARED_OPTIONS[p.name]) if p.name in SHARED_OPTIONS and p.default is p.empty else p
              for p in sig.parameters.values()]
    command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]  # what Typer reads
    return command


def deprecated_alias(app: typer.Typer, old: str, new: str, command: Callable[..., Any]) -> None:
    """Register ``old`` as a hidden command that says it is deprecated (one line on stderr) and then
    runs ``command``, the function of ``curate new`` (same options, same outputs)."""

    @functools.wraps(command)
    def alias(*args: Any, **kwargs: Any) -> Any:
        typer.echo(f"note: `curate {old}` is deprecated; use `curate {new}`", err=True)
        return command(*args, **kwargs)

    app.command(old, hidden=True, help=f"Deprecated name of `curate {new}`.")(alias)
