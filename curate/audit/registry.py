"""The one explicit registry of audit checks (name -> class), in run order."""
from __future__ import annotations

from curate.audit.base import Check, WorkspaceCheck
from curate.audit.checks_learned import LEARNED_CHECKS
from curate.audit.checks_mislabel import WORKSPACE_CHECKS as _WORKSPACE
from curate.audit.checks_photo import PHOTO_CHECKS as _PHOTO
from curate.audit.checks_quality import QUALITY_CHECKS
from curate.errors import CurateError

CHECKS: dict[str, type[Check]] = {cls.name: cls for cls in QUALITY_CHECKS + LEARNED_CHECKS}
"""Checks judged on face crops (and, for image statistics, on whole photos)."""

PHOTO_CHECKS: dict[str, type[Check]] = {cls.name: cls for cls in _PHOTO}
"""Checks judged on the original photo; a name in both tables (cartoon, watermark) is one
check whose photo rows are judged by the photo variant, its crop rows by the crop variant."""

WORKSPACE_CHECKS: dict[str, type[WorkspaceCheck]] = {cls.name: cls for cls in _WORKSPACE}
"""Checks run on the whole workspace by their own stage, after the image checks (mislabel)."""

ALL_CHECKS: list[str] = list(CHECKS) + [n for n in PHOTO_CHECKS if n not in CHECKS] + list(WORKSPACE_CHECKS)
"""Every check name, in run order. Findings rows use these names in the ``check`` column."""

DEFAULT_CHECKS: list[str] = [n for n in ALL_CHECKS
                             if (CHECKS.get(n) or PHOTO_CHECKS.get(n) or WORKSPACE_CHECKS[n]).default_enabled]
"""The checks run when none are named (or "all"); the others are opt-in and run only when named."""


def resolve_checks(names: list[str] | None) -> list[str]:
    """Validate check names (None or [] or ["all"] = every default-enabled check), keeping registry order."""
    if not names or names == ["all"]:
        return list(DEFAULT_CHECKS)
    unknown = [n for n in names if n not in ALL_CHECKS]
    if unknown:
        raise CurateError(f"unknown audit check(s) {', '.join(unknown)}; known checks: {', '.join(ALL_CHECKS)}",
                          exit_code=2)
    return [n for n in ALL_CHECKS if n in names]
