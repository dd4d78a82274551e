"""The local engine: the calling process's threads, as curate has always run (the default)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from curate.engine.base import Engine, Factory


class LocalEngine(Engine):
    """``map_items`` on a thread pool of ``workers`` threads (inline for one); tasks one after another."""

    name = "local"

    @property
    def is_local(self) -> bool:
        return True

    def map_items(self, factory: Factory, items: Iterable[Any], *, batch_size: int = 1, workers: int = 1,
                  threads: int = 1) -> Iterator[Any]:
        fn = factory()
        items = list(items)
        if workers <= 1 or len(items) <= 1:
            return map(fn, items)
        return _pooled(fn, items, workers, max(1, batch_size))

    def run_tasks(self, fn: Callable[..., Any], calls: Sequence[Sequence[Any]], *,
                  shared: Mapping[str, Any] | None = None, gpus: bool = False,
                  threads: int | None = None) -> Iterator[tuple[int, Any]]:
        for i, args in enumerate(calls):
            yield i, fn(*args, **dict(shared or {}))


def _pooled(fn: Callable[[Any], Any], items: list[Any], workers: int, chunksize: int) -> Iterator[Any]:
    """``pool.map`` whose pool lives as long as the iterator (closed when it is exhausted or dropped)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(fn, items, chunksize=chunksize)
