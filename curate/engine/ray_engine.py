"""The Ray engine: Ray Data actor pools for per-item maps, Ray tasks for the mislabel folds.

Imported only when ``--engine ray`` is chosen; Ray itself is the optional extra
``curate[ray]`` (``ray[data]``). What runs where:

- :meth:`RayEngine.map_items`: the items (pickled) become a Ray dataset of ``ceil(n / batch_size)``
  blocks, mapped by ``map_batches`` on a fixed pool of one-CPU actors (one per CPU of the
  cluster, at most one per block; the input blocks are put in the object store by the driver,
  so no read task competes with the actors for CPUs). Each actor calls ``factory()`` once
  (models and detectors load once per worker) and returns the pickled results with their
  positions; the driver yields them in input order. A worker that dies is restarted and its
  batch retried (:data:`RETRIES` times).
- :meth:`RayEngine.run_tasks`: one Ray task per call, the ``shared`` arguments put in the
  object store once, one GPU per task where the cluster has GPUs; a task whose worker dies is
  retried.

Workers return results and never write to the workspace: the driver commits.
"""
from __future__ import annotations

import logging
import math
import os
import pickle
import warnings
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from curate.engine.base import Engine, EngineError, Factory

RETRIES = 5
"""Restarts of a dead actor and retries of a failed batch or task (system failures: a killed
worker, a lost node); finite, so that an input that crashes its worker every time ends the run."""

INSTALL_HINT = "pip install 'curate[ray]' (ray[data]==2.60.0)"


def import_ray():
    """The ``ray`` module, or an EngineError (exit 2) saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - the map uses Ray Data
    except ImportError as exc:
        raise EngineError(f"--engine ray needs Ray, which is not installed here ({exc}); {INSTALL_HINT}",
                          exit_code=2) from None
    return ray


def limit_threads(threads: int, *, blas: bool = True) -> None:
    """Set torch, OpenCV and (``blas``) the BLAS / OpenMP pools (threadpoolctl) to ``threads`` threads in
    this worker process. The face stage's and the trainer's floating-point sums depend on torch's thread
    count, so a worker uses the count the local engine uses for the same work."""
    import sys

    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    cv2 = sys.modules.get("cv2")
    if cv2 is not None and cv2.getNumThreads() != threads:
        cv2.setNumThreads(threads)
    if blas:
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(threads)
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            pass


class MapWorker:
    """A Ray Data actor: builds the per-item function once, then maps batches of pickled items."""

    def __init__(self, box: list, threads: int):
        import ray

        limit_threads(threads)
        self.threads = threads
        self.fn = ray.get(box[0])()
        limit_threads(threads)  # the factory may have imported torch or OpenCV

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        limit_threads(self.threads, blas=False)  # torch / OpenCV imported by the first items
        out = np.empty(len(batch["i"]), dtype=object)
        for k, blob in enumerate(batch["x"]):
            out[k] = pickle.dumps(self.fn(pickle.loads(blob)), protocol=5)
        return {"i": np.asarray(batch["i"], np.int64), "r": out}


def run_task(fn: Callable[..., Any], args: Sequence[Any], shared: Mapping[str, Any], threads: int | None) -> Any:
    """Body of a Ray task: the curate thread count of the driver, then ``fn(*args, **shared)``."""
    if threads:
        from curate.threads import set_cli_threads

        set_cli_threads(threads)
        limit_threads(threads)
    return fn(*args, **dict(shared))


class RayEngine(Engine):
    """Ray Data / Ray tasks on the cluster at ``address`` (None = a Ray instance on this machine)."""

    name = "ray"

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None):
        ray = import_ray()
        self.address = address
        self._started = False
        if not ray.is_initialized():
            quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
            try:
                if address:
                    ray.init(address=address, **quiet)
                else:
                    from curate.threads import usable_cores

                    ray.init(num_cpus=num_cpus or usable_cores(), include_dashboard=False, **quiet)
            except Exception as exc:  # noqa: BLE001 - a cluster that cannot be reached, a bad address
                raise EngineError(f"cannot start or reach Ray{f' at {address}' if address else ''}: "
                                  f"{type(exc).__name__}: {exc}") from None
            self._started = True
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.ERROR)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        ctx.execution_options.preserve_order = True

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "address": self.address or "local instance"}

    def cluster_cpus(self) -> int:
        import ray

        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def cluster_gpus(self) -> int:
        import ray

        return int(ray.cluster_resources().get("GPU", 0))

    def map_items(self, factory: Factory, items: Iterable[Any], *, batch_size: int = 1, workers: int = 1,
                  threads: int = 1) -> Iterator[Any]:
        import ray

        items = list(items)
        n = len(items)
        if n == 0:
            return iter(())
        batch_size = max(1, int(batch_size))
        blocks = math.ceil(n / batch_size)
        rows = [{"i": i, "x": pickle.dumps(item, protocol=5)} for i, item in enumerate(items)]
        ref = ray.put(factory)
        with warnings.catch_warnings():  # finite retries are set through ray_remote_args (deprecated in 2.60)
            warnings.simplefilter("ignore", DeprecationWarning)
            ds = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
                MapWorker, fn_constructor_args=([ref], max(1, int(threads))), batch_size=batch_size,
                batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=min(self.cluster_cpus(), blocks)),
                num_cpus=1, max_restarts=RETRIES, max_task_retries=RETRIES)
        return _in_order(ds, n, ref)

    def run_tasks(self, fn: Callable[..., Any], calls: Sequence[Sequence[Any]], *,
                  shared: Mapping[str, Any] | None = None, gpus: bool = False,
                  threads: int | None = None) -> Iterator[tuple[int, Any]]:
        import ray

        shared_refs = {k: ray.put(v) for k, v in (shared or {}).items()}
        gpu = 1 if gpus and self.cluster_gpus() > 0 else 0
        remote = ray.remote(num_cpus=1, num_gpus=gpu, max_retries=RETRIES)(_task)
        pending = {remote.remote(fn, list(args), list(shared_refs), *shared_refs.values(), threads=threads): i
                   for i, args in enumerate(calls)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                yield pending.pop(ref), ray.get(ref)

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


def _task(fn: Callable[..., Any], args: list[Any], names: list[str], *values: Any, threads: int | None = None) -> Any:
    """A Ray task: the ``shared`` object refs arrive resolved as ``values`` (top-level arguments)."""
    return run_task(fn, args, dict(zip(names, values)), threads)


def _in_order(ds: Any, n: int, keep_alive: Any) -> Iterator[Any]:
    """The mapped results in input order (the dataset streams in order; a buffer guards anyway)."""
    pending: dict[int, bytes] = {}
    nxt = 0
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for i, blob in zip(batch["i"], batch["r"]):
            pending[int(i)] = blob
        while nxt in pending:
            yield pickle.loads(pending.pop(nxt))
            nxt += 1
    del keep_alive
    if nxt != n:
        raise EngineError(f"the ray engine returned {nxt} of {n} results")
