"""The audit registry validates every check as it registers: name, uniqueness, fields, methods."""
from __future__ import annotations

import numpy as np
import pytest

from curate.audit import registry
from curate.audit.base import Check, WorkspaceCheck
from curate.audit.registry import CheckRegistrationError, check_table, validate_check


class Good(Check):
    name = "good_one"
    description = "A complete check."

    def score(self, ctx, rows):
        return np.zeros(len(rows)), [""] * len(rows)


class GoodStage(WorkspaceCheck):
    name = "good_stage"
    description = "A complete workspace check."

    @classmethod
    def defaults(cls, overrides=None):
        return {}

    @classmethod
    def run(cls, ws, overrides, *, seed, quiet, log):
        return {}

    @classmethod
    def render(cls, summary):
        return ""


def _variant(base: type, **fields) -> type:
    return type("Bad", (base,), fields)


def test_the_registered_checks_pass_and_every_name_is_unique():
    for table, base, applies_to in ((registry.CHECKS, Check, "crop"), (registry.PHOTO_CHECKS, Check, "photo"),
                                    (registry.WORKSPACE_CHECKS, WorkspaceCheck, "workspace")):
        for name, cls in table.items():
            assert cls.name == name
            validate_check(cls, base, applies_to)
    assert len(registry.ALL_CHECKS) == len(set(registry.ALL_CHECKS))
    assert not set(registry.WORKSPACE_CHECKS) & (set(registry.CHECKS) | set(registry.PHOTO_CHECKS))
    assert check_table([Good], Check, "crop") == {"good_one": Good}
    assert check_table([GoodStage], WorkspaceCheck, "workspace") == {"good_stage": GoodStage}


@pytest.mark.parametrize("name", ["", "Blank", "low-contrast", "2dark", "low contrast", None, 3, "all"])
def test_a_name_that_is_not_a_lowercase_identifier_is_refused(name):
    with pytest.raises(CheckRegistrationError, match=r"test_audit_registry\.Bad: name .* (must be a "
                                                     r"lowercase identifier|is reserved)"):
        check_table([_variant(Good, name=name)], Check, "crop")


def test_a_name_registered_twice_is_refused_naming_both_classes():
    twin = _variant(Good, description="Another check of the same name.")
    with pytest.raises(CheckRegistrationError, match=r"name 'good_one' is already registered by "
                                                     r"\S*test_audit_registry\.Good$"):
        check_table([Good, twin], Check, "crop")
    stage = _variant(GoodStage, name="blank")
    with pytest.raises(CheckRegistrationError, match="name 'blank' is already registered by curate.audit"):
        check_table([stage], WorkspaceCheck, "workspace", taken=registry.CHECKS)


@pytest.mark.parametrize("fields, message", [
    ({"description": ""}, "description must be a non-empty string"),
    ({"description": None}, "description must be a non-empty string"),
    ({"applies_to": "photo"}, "applies_to is 'photo', but it is registered among the 'crop' checks"),
    ({"default_enabled": "yes"}, "default_enabled must be True or False"),
    ({"judges_uncropped": 1}, "judges_uncropped must be True or False"),
])
def test_a_missing_or_mistyped_field_is_refused(fields, message):
    with pytest.raises(CheckRegistrationError, match=rf"Bad \(good_one\): {message}"):
        check_table([_variant(Good, **fields)], Check, "crop")


def test_a_check_without_its_methods_or_of_the_wrong_kind_is_refused():
    no_score = type("NoScore", (Check,), {"name": "no_score", "description": "Forgets score."})
    with pytest.raises(CheckRegistrationError, match=r"NoScore \(no_score\): does not implement Check.score"):
        check_table([no_score], Check, "crop")
    no_run = type("NoRun", (WorkspaceCheck,), {"name": "no_run", "description": "Forgets run.",
                                               "defaults": GoodStage.defaults, "render": GoodStage.render})
    with pytest.raises(CheckRegistrationError, match=r"NoRun \(no_run\): does not implement WorkspaceCheck.run"):
        check_table([no_run], WorkspaceCheck, "workspace")
    with pytest.raises(CheckRegistrationError, match="is not a subclass of WorkspaceCheck"):
        check_table([Good], WorkspaceCheck, "workspace")
    with pytest.raises(CheckRegistrationError, match="is not a subclass of Check"):
        check_table(["blank"], Check, "crop")
