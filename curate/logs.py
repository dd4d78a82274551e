"""One logger: ``logging.getLogger("curate")`` and its children (``curate.mislabel.api``, ...).

Library code logs through :func:`get_logger` and never prints: INFO for progress and notes,
WARNING for what a user must not miss (e.g. a mislabel run that could not judge labels).
Progress bars are not log records; they stay on stderr (:mod:`curate.progress`).

The command line installs the one handler, per command (:func:`cli_logging`, from
:func:`curate.cli_common.guarded`): plain messages on stderr, INFO and up, only WARNING and up
under ``--quiet``; stdout is left to the results (and to ``--json``). Used as a library, curate
configures nothing: INFO records go wherever the application's logging sends them, and warnings
reach stderr through Python's last-resort handler when nothing is configured.
"""
from __future__ import annotations

import contextlib
import logging
import sys
from typing import Iterator

LOGGER_NAME = "curate"


def get_logger(name: str = LOGGER_NAME) -> logging.Logger:
    """The ``curate`` logger or one of its children: pass a module's ``__name__`` (``curate.x.y``)
    or a short name (``"pipeline"`` -> ``curate.pipeline``)."""
    if name != LOGGER_NAME and not name.startswith(LOGGER_NAME + "."):
        name = f"{LOGGER_NAME}.{name}"
    return logging.getLogger(name)


class _StderrHandler(logging.StreamHandler):
    """Plain messages on whatever ``sys.stderr`` is at the time of the record (a test runner may swap it,
    as ``typer.echo(err=True)`` allows)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property  # type: ignore[override]
    def stream(self):  # noqa: D401 - the current stderr, not the one at creation
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; the current stderr wins
        pass


@contextlib.contextmanager
def cli_logging(quiet: bool = False) -> Iterator[logging.Logger]:
    """For one command: the ``curate`` logger writes plain messages to stderr, INFO and up (WARNING and
    up when ``quiet``), and only there (no propagation to the root logger). The previous handlers,
    level and propagation come back afterwards, so a nested command or a test's ``caplog`` is unaffected."""
    logger = logging.getLogger(LOGGER_NAME)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    logger.handlers = [_StderrHandler()]
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    try:
        yield logger
    finally:
        logger.handlers, logger.propagate = saved[0], saved[2]
        logger.setLevel(saved[1])
