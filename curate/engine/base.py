"""The executor interface every engine implements.

Two operations, both order-stable so that outputs do not depend on the engine:

- :meth:`Engine.map_items`: ``factory()`` builds the per-item function once per worker (a
  model, a detector, a reference to the pixel store); the function is applied to every item
  and the results come back in input order. ``factory`` must be picklable (a top-level class
  or function, e.g. a frozen dataclass whose ``__call__`` returns the function) so that a
  remote engine can ship it; the local engine calls it once, in this process.
- :meth:`Engine.run_tasks`: a few coarse tasks (the mislabel folds), each ``fn(*args,
  **shared)``; results are yielded as ``(index, result)`` as they finish, so the caller can
  save each one (atomically) before the next arrives.
"""
from __future__ import annotations

import abc
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from curate.errors import CurateError

Factory = Callable[[], Callable[[Any], Any]]
"""A picklable zero-argument callable returning the per-item function."""


class EngineError(CurateError):
    """An engine that cannot run (Ray missing, a cluster that cannot be reached, lost results)."""


class Engine(abc.ABC):
    """Runs per-item maps and coarse tasks; see the module docstring for the contract."""

    name: str = ""

    @property
    def is_local(self) -> bool:
        """True when work runs in this process (threads), so call sites may share live objects."""
        return False

    @abc.abstractmethod
    def map_items(self, factory: Factory, items: Iterable[Any], *, batch_size: int = 1, workers: int = 1,
                  threads: int = 1) -> Iterator[Any]:
        """``factory()(item)`` for every item, yielded in input order.

        ``batch_size``: items per remote call (the local engine's ``chunksize``); ``workers``:
        threads of the local engine (1 = in the calling thread); ``threads``: torch / BLAS /
        OpenCV threads of each remote worker (the local engine leaves its process's own).
        """

    @abc.abstractmethod
    def run_tasks(self, fn: Callable[..., Any], calls: Sequence[Sequence[Any]], *,
                  shared: Mapping[str, Any] | None = None, gpus: bool = False,
                  threads: int | None = None) -> Iterator[tuple[int, Any]]:
        """``fn(*calls[i], **shared)`` for every i, yielded as ``(i, result)`` when each finishes.

        ``shared``: large arguments every call gets (sent to a cluster once); ``gpus``: one GPU
        per task where the cluster has GPUs; ``threads``: the curate thread count each task
        uses (None = the engine's default).
        """

    def record(self) -> dict[str, Any]:
        """What workspace.json records about this engine."""
        return {"name": self.name}

    def close(self) -> None:
        """Release what the engine holds (threads, a Ray connection)."""
