"""Errors that the CLI turns into a clear message and an exit code."""
from __future__ import annotations


class CurateError(RuntimeError):
    """A user-facing error: bad input, missing prerequisite, refused option.

    ``exit_code`` 1 means "nothing done", 2 means "bad usage".
    """

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code
