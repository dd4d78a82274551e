"""The check interface and the context shared by the checks of one audit run."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np

from curate.settings import AuditSettings, Settings


@dataclass
class AuditContext:
    """What every check sees: the crops, the config, the seed and a cache of shared results.

    ``images`` is the uint8 (N, S, S) grey pixel store (row i = image i). ``load_original`` is
    set when the workspace's originals are larger or colour: ``load_original(i)`` returns the
    original as a uint8 array (H, W) or (H, W, 3).
    """

    images: np.ndarray
    image_ids: list[str]
    config: AuditSettings
    seed: int = 0
    quiet: bool = True
    load_original: Callable[[int], np.ndarray] | None = None
    cache: dict[str, Any] = field(default_factory=dict)
    photo: Any = None
    """:class:`curate.audit.checks_photo.PhotoData` when the run holds photos, else None."""

    @property
    def crop_rows(self) -> np.ndarray:
        """Rows whose pixel-store image is a real face crop: every crop-source row, and the photo
        rows where the face stage found a face. Whatever learns "clean" from the workspace
        draws from these only."""
        n = len(self.image_ids)
        if self.photo is None:
            return np.arange(n)
        keep = np.ones(n, dtype=bool)
        keep[self.photo.rows[self.photo.status != "ok"]] = False
        return np.flatnonzero(keep)

    def shared(self, key: str, compute: Callable[[], Any]) -> Any:
        """Compute a result once per run (e.g. the trained defect model) and reuse it."""
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    def params(self, check: str) -> Settings | None:
        """The settings section of ``check`` (configs/audit.yaml), None for a check without one."""
        return self.config.get(check)


class Check:
    """One audit check: a name, a description, defaults in configs/audit.yaml, a score and a flag.

    Subclasses implement :meth:`score` for a batch of row positions and return one score
    per row (higher = more likely an issue) and one short evidence text per row.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    applies_to: ClassVar[str] = "crop"
    """crop: judged on the face crop (photo rows without a found face are "not judged");
    photo: judged on the original photo, photo rows only."""
    judges_uncropped: ClassVar[bool] = False
    """True for image statistics (blank, dark, ...) that mean the same on a whole photo."""
    judges_photos: ClassVar[bool] = True
    """False for a crop check that photo rows leave to a photo check of their own (``non_face``:
    on photos, ``no_face`` judges whether there is a usable face)."""
    default_enabled: ClassVar[bool] = True
    """False: an opt-in check, run only when named (``--checks NAME``), never by default or "all"."""

    def __init__(self, params: Any):
        self.params = params
        """The check's settings section (e.g. :class:`curate.settings.ThresholdSettings`)."""

    @property
    def threshold(self) -> float:
        return self.params.threshold

    def score(self, ctx: AuditContext, rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
        raise NotImplementedError

    def flag(self, scores: np.ndarray) -> np.ndarray:
        """Flagged at the check's threshold (NaN scores are never flagged)."""
        scores = np.asarray(scores, dtype=np.float64)
        return np.nan_to_num(scores, nan=-np.inf) >= self.threshold


class WorkspaceCheck:
    """A check run on the whole workspace by its own stage (e.g. ``mislabel``: cross-validated
    models), with its own config file; the stage writes its own rows of findings.parquet.

    It is an entry of the audit registry like the image checks: ``curate audit --checks NAME``
    runs it after the image checks, ``--set NAME.KEY=VALUE`` sets its options, ``--list``
    shows it. Opt-in unless ``default_enabled``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    applies_to: ClassVar[str] = "workspace"
    default_enabled: ClassVar[bool] = False

    @classmethod
    def defaults(cls, overrides: list[str] | None = None) -> dict[str, Any]:
        """Its options (its config file with ``overrides`` applied), as ``--list`` shows them."""
        raise NotImplementedError

    @classmethod
    def run(cls, ws: Any, overrides: list[str] | None, *, seed: int, quiet: bool,
            log: Callable[[str], None]) -> dict[str, Any]:
        """Run the stage on workspace ``ws``; returns its summary."""
        raise NotImplementedError

    @classmethod
    def render(cls, summary: dict[str, Any]) -> str:
        """Readable lines of the summary :meth:`run` returned."""
        raise NotImplementedError
