"""The mislabel check (:mod:`curate.mislabel`) as an opt-in entry of the audit registry."""
from __future__ import annotations

from typing import Any, Callable

from curate.audit.base import WorkspaceCheck


class Mislabel(WorkspaceCheck):
    """Cross-validated mislabel check; same run and findings as ``curate mislabel``."""

    name = "mislabel"
    description = ("Likely wrong label: out-of-fold model disagreement (confident learning, embedding neighbours, "
                   "area under the margin); suggests a label. Runs only when named; options as "
                   "--set mislabel.KEY=VALUE.")
    default_enabled = False

    @classmethod
    def defaults(cls, overrides: list[str] | None = None) -> dict[str, Any]:
        from curate.settings import load_settings

        return load_settings("mislabel", overrides or None).to_dict()

    @classmethod
    def run(cls, ws: Any, overrides: list[str] | None, *, seed: int, quiet: bool,
            log: Callable[[str], None]) -> dict[str, Any]:
        from curate.mislabel.api import run_mislabel

        return run_mislabel(ws, overrides=overrides or None, seed=seed, quiet=quiet, log=log)

    @classmethod
    def render(cls, summary: dict[str, Any]) -> str:
        from curate.mislabel.cli import render

        return render(summary)


WORKSPACE_CHECKS: list[type[WorkspaceCheck]] = [Mislabel]
