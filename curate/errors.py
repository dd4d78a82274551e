"""The one error tree: every error the CLI turns into a clear message and an exit code.

Each class carries its exit code as the class attribute ``exit_code``; an instance may override
it (``CurateError(message, exit_code=2)``). The codes the CLI returns:

* 1 - nothing done: a missing prerequisite (run another command first), unusable input, a
  missing or inconsistent workspace (:class:`CurateError`, :class:`InputError`,
  :class:`WorkspaceError`);
* 2 - bad usage: an unknown option, a refused value, a bad config file or override
  (:class:`UsageError`, :class:`ConfigError`).

Anything else that escapes a command is a bug and keeps its traceback.
"""
from __future__ import annotations


class CurateError(RuntimeError):
    """A user-facing error: bad input, missing prerequisite, refused option.

    ``exit_code`` 1 means "nothing done", 2 means "bad usage".
    """

    exit_code: int = 1

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(CurateError):
    """Bad usage: an unknown option, a value out of range, contradicting flags."""

    exit_code = 2


class ConfigError(UsageError, ValueError):
    """A configuration file, override or setting is invalid.

    Also a :class:`ValueError`, as it was before the error tree, for callers that catch that.
    """


class InputError(CurateError, ValueError):
    """An input source (CSV, folder, review sheet) cannot be read as asked.

    Also a :class:`ValueError`, as the readers raised before the error tree.
    """


class WorkspaceError(CurateError):
    """The workspace is missing, locked or inconsistent."""
