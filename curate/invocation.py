"""The command line that started this run, as recorded in workspace.json and reports.

``sys.argv`` is the right answer for the console script but not when the CLI is invoked in-process
(tests, notebooks, ``typer.testing.CliRunner``); the CLI's group records the arguments it parses.
"""
from __future__ import annotations

import sys
from contextvars import ContextVar

_ARGV: ContextVar[list[str] | None] = ContextVar("curate_argv", default=None)
_ENGINE: dict[str, object] = {"name": "local", "source": "default"}


def set_current_argv(args: list[str]) -> None:
    """Remember the arguments of the ``curate`` invocation being parsed."""
    _ARGV.set(["curate", *args])


def current_argv() -> list[str]:
    """``["curate", <arguments>]`` of the running command, else ``sys.argv``."""
    argv = _ARGV.get()
    return list(argv) if argv is not None else list(sys.argv)


def set_current_engine(record: dict[str, object]) -> None:
    """Remember which engine runs this process's per-image work (:mod:`curate.engine.choice` calls it)."""
    _ENGINE.clear()
    _ENGINE.update(record)


def current_engine() -> dict[str, object]:
    """The engine record of workspace.json's command runs: ``{"name": "local", ...}`` or Ray's address."""
    return dict(_ENGINE)


def format_command(argv: list[str]) -> str:
    """``argv`` as one shell-quoted line, the program by its name only (``curate dedupe -w ws ...``)."""
    import shlex
    from pathlib import Path

    args = list(argv) or ["curate"]
    return " ".join(shlex.quote(a) for a in [Path(args[0]).name, *args[1:]])


def current_command() -> str:
    """The running command as one shell-quoted line."""
    return format_command(current_argv())
