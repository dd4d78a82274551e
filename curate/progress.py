"""Progress bars (tqdm on stderr) that a ``quiet`` flag turns off."""
from __future__ import annotations

import os
import sys
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "",
             quiet: bool = False, unit: str = "it") -> "tqdm":  # noqa: F821
    """Return a tqdm bar over ``iterable`` (or a manual bar when None); silent when ``quiet``.

    Bars are also off when ``CURATE_QUIET=1`` is set (used by the test-suite).
    """
    from tqdm.auto import tqdm

    disable = quiet or os.environ.get("CURATE_QUIET") == "1"
    return tqdm(iterable, total=total, desc=desc, disable=disable, unit=unit, file=sys.stderr,
                dynamic_ncols=True, mininterval=0.5, leave=False)


def chunks(n: int, size: int) -> Iterator[slice]:
    """Yield consecutive slices covering ``range(n)`` in steps of ``size``."""
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))
