"""What a source reader returns: kept rows with their pixels, and rejects with reasons."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class Reject:
    """One rejected CSV row or file."""

    code: str
    reason: str
    source_row: int | None = None
    source_path: str | None = None


@dataclass
class SourceResult:
    """Rows kept from one source (manifest columns minus ids) plus pixels and rejects."""

    rows: pd.DataFrame
    pixels: np.ndarray
    rejects: list[Reject] = field(default_factory=list)
    read: int = 0
    warnings: list[str] = field(default_factory=list)
    photos: list | None = None
    """Face-stage results (:class:`curate.faces.stage.PhotoResult`) per kept row, for photo sources."""

    def __post_init__(self) -> None:
        if len(self.rows) != len(self.pixels):
            raise ValueError(f"{len(self.rows)} rows but {len(self.pixels)} pixel arrays")

    @property
    def kept(self) -> int:
        return len(self.rows)


def unknown_label_warnings(labels: pd.Series, originals: pd.Series, where: str) -> list[str]:
    """Warnings for labels that map to no canonical class (they are kept, not dropped)."""
    unknown = originals[labels.isna() & originals.notna()]
    if unknown.empty:
        return []
    counts = unknown.value_counts()
    listed = ", ".join(f"{k!r} ({v})" for k, v in counts.head(8).items())
    return [f"{where}: {len(unknown)} images have labels that are not FER classes, kept as they are: {listed}"]
