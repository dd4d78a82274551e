"""The one explicit registry of audit checks (name -> class), in run order."""
from __future__ import annotations

from curate.audit.base import Check
from curate.audit.checks_learned import LEARNED_CHECKS
from curate.audit.checks_quality import QUALITY_CHECKS
from curate.errors import CurateError

CHECKS: dict[str, type[Check]] = {cls.name: cls for cls in QUALITY_CHECKS + LEARNED_CHECKS}
"""Every audit check. Findings rows use these names in the ``check`` column."""


def resolve_checks(names: list[str] | None) -> list[str]:
    """Validate check names (None or [] or ["all"] = every check), keeping registry order."""
    if not names or names == ["all"]:
        return list(CHECKS)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise CurateError(f"unknown audit check(s) {', '.join(unknown)}; known checks: {', '.join(CHECKS)}",
                          exit_code=2)
    return [n for n in CHECKS if n in names]
