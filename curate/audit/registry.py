"""The one explicit registry of audit checks (name -> class), in run order."""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from curate.audit.base import Check, WorkspaceCheck
from curate.audit.checks_learned import LEARNED_CHECKS
from curate.audit.checks_mislabel import WORKSPACE_CHECKS as _WORKSPACE
from curate.audit.checks_photo import PHOTO_CHECKS as _PHOTO
from curate.audit.checks_quality import QUALITY_CHECKS
from curate.errors import CurateError


class CheckRegistrationError(TypeError):
    """A check class the registry refuses: a bug in the check's definition, raised when it registers."""


CHECK_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
"""A check name: a lowercase identifier (it is a findings ``check`` value, a config section and a CLI word)."""

RESERVED_NAMES = frozenset({"all"})
"""Names with a meaning of their own in ``--checks`` (``all`` = every default-enabled check)."""

_REQUIRED = {Check: ("score",), WorkspaceCheck: ("defaults", "run", "render")}
"""Methods each kind of check must implement (the base class's raise NotImplementedError)."""


def _implementation(cls: type, method: str) -> Any:
    attr = getattr(cls, method)
    return getattr(attr, "__func__", attr)  # a classmethod's function, or the plain function


def validate_check(cls: Any, base: type, applies_to: str) -> None:
    """Refuse ``cls`` unless it is a complete ``base`` subclass for the table of ``applies_to`` checks:
    a lowercase-identifier ``name`` (not a reserved one), a non-empty ``description``, that
    ``applies_to``, boolean flags, and its own implementation of the methods the base leaves open."""
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise CheckRegistrationError(f"audit registry: {cls!r} is not a subclass of {base.__name__}")
    where = f"audit check {cls.__module__}.{cls.__qualname__}"
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not CHECK_NAME.match(name):
        raise CheckRegistrationError(f"{where}: name {name!r} must be a lowercase identifier "
                                     "(a-z, 0-9, _, starting with a letter; e.g. low_contrast)")
    if name in RESERVED_NAMES:
        raise CheckRegistrationError(f"{where}: name {name!r} is reserved ({', '.join(sorted(RESERVED_NAMES))})")
    description = getattr(cls, "description", None)
    if not isinstance(description, str) or not description.strip():
        raise CheckRegistrationError(f"{where} ({name}): description must be a non-empty string, got {description!r}")
    if getattr(cls, "applies_to", None) != applies_to:
        raise CheckRegistrationError(f"{where} ({name}): applies_to is {getattr(cls, 'applies_to', None)!r}, "
                                     f"but it is registered among the {applies_to!r} checks")
    flags = ("default_enabled", "judges_uncropped", "judges_photos") if base is Check else ("default_enabled",)
    for flag in flags:
        if not isinstance(getattr(cls, flag, None), bool):
            raise CheckRegistrationError(f"{where} ({name}): {flag} must be True or False, "
                                         f"got {getattr(cls, flag, None)!r}")
    for method in _REQUIRED[base]:
        if _implementation(cls, method) is _implementation(base, method):
            raise CheckRegistrationError(f"{where} ({name}): does not implement {base.__name__}.{method}")


def check_table(classes: Iterable[Any], base: type, applies_to: str, *,
                taken: Mapping[str, type] | None = None) -> dict[str, Any]:
    """name -> class of ``classes`` in order, each validated by :func:`validate_check` as it registers;
    a name registered twice, or one already in ``taken`` (another table's), is refused."""
    table: dict[str, Any] = {}
    for cls in classes:
        validate_check(cls, base, applies_to)
        other = table.get(cls.name) or (taken or {}).get(cls.name)
        if other is not None:
            raise CheckRegistrationError(f"audit check {cls.__module__}.{cls.__qualname__}: name {cls.name!r} is "
                                         f"already registered by {other.__module__}.{other.__qualname__}")
        table[cls.name] = cls
    return table


CHECKS: dict[str, type[Check]] = check_table(QUALITY_CHECKS + LEARNED_CHECKS, Check, "crop")
"""Checks judged on face crops (and, for image statistics, on whole photos)."""

PHOTO_CHECKS: dict[str, type[Check]] = check_table(_PHOTO, Check, "photo")
"""Checks judged on the original photo; a name in both tables (cartoon, watermark) is one
check whose photo rows are judged by the photo variant, its crop rows by the crop variant."""

WORKSPACE_CHECKS: dict[str, type[WorkspaceCheck]] = check_table(_WORKSPACE, WorkspaceCheck, "workspace",
                                                                  taken={**CHECKS, **PHOTO_CHECKS})
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
