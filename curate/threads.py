"""How many CPU threads curate's compute libraries use (torch, OpenCV): decided once, never by load.

:func:`usable_cores` is what the process may use: its CPU affinity and its cgroup CPU quota
(v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), the smallest, rounded
down (a 1.5-core quota gives 1 thread: never more threads than the quota runs at once), at
least 1. :func:`resolve_threads` picks the thread count, first found wins:

1. an explicit request: ``curate --threads N`` (the global option) or a command's own
   thread option (a recipe's ``num_threads``), passed as ``requested``;
2. the environment variable ``CURATE_THREADS``;
3. ``OMP_NUM_THREADS`` (its first value);
4. :func:`usable_cores`.

The load average is never consulted: it changes from second to second (and counts this
process's own threads once it runs), so a busy moment at start-up would fix a slow choice for
the whole run. Several processes sharing a machine should each be given their share
explicitly (``--threads 1`` or ``CURATE_THREADS=1`` for two processes on two cores).

:func:`apply_threads` applies the choice to torch (``set_num_threads``; the inter-op pool
too, while torch still allows it) and to OpenCV when it is imported, and logs the choice
and where it came from the first time it changes anything.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

from curate.errors import CurateError

ENV_VAR = "CURATE_THREADS"
CGROUP_ROOT = Path("/sys/fs/cgroup")


class ThreadChoice(NamedTuple):
    """A thread count and where it came from (for logs and run records)."""

    threads: int
    source: str


# -- what the process may use ------------------------------------------------------------------

def affinity_cores() -> int:
    """CPUs in this process's affinity mask (os.cpu_count() where that is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def parse_cpu_max(text: str) -> float | None:
    """cgroup v2 ``cpu.max`` (``"<quota> <period>"`` or ``"max <period>"``) -> cores, None = no limit."""
    parts = text.split()
    if not parts or parts[0] == "max":
        return None
    quota = float(parts[0])
    period = float(parts[1]) if len(parts) > 1 else 100000.0
    return quota / period if quota > 0 and period > 0 else None


def parse_cfs(quota_text: str, period_text: str) -> float | None:
    """cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` -> cores, None = no limit (quota -1)."""
    quota, period = float(quota_text.strip()), float(period_text.strip())
    return quota / period if quota > 0 and period > 0 else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None


def _own_cgroup_dirs(root: Path, proc_cgroup: str | None, v1_controller: str | None) -> list[Path]:
    """The process's cgroup folder and its parents up to ``root`` (the limit may sit on any level)."""
    rel = None
    for line in (proc_cgroup or "").splitlines():
        hier, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if v1_controller is None and hier == "0" and controllers == "":
            rel = path
        elif v1_controller is not None and v1_controller in controllers.split(","):
            rel = path
    dirs = []
    if rel:
        here = root / rel.lstrip("/")
        while here != root and root in here.parents:
            if here.is_dir():
                dirs.append(here)
            here = here.parent
    dirs.append(root)
    return dirs


def cgroup_cores(root: Path | str = CGROUP_ROOT, proc_cgroup: str | None = None) -> float | None:
    """Cores allowed by the cgroup CPU quota (v2, else v1; the tightest level), None = no quota found."""
    root = Path(root)
    if proc_cgroup is None:
        proc_cgroup = _read(Path("/proc/self/cgroup"))
    limits: list[float] = []
    for folder in _own_cgroup_dirs(root, proc_cgroup, None):  # v2: one unified tree
        text = _read(folder / "cpu.max")
        if text is not None:
            try:
                value = parse_cpu_max(text)
            except ValueError:
                value = None
            if value is not None:
                limits.append(value)
    if not limits:  # v1: the cpu controller's own mount
        for mount in (root / "cpu", root / "cpu,cpuacct", root / "cpuacct,cpu"):
            if not mount.is_dir():
                continue
            for folder in _own_cgroup_dirs(mount, proc_cgroup, "cpu"):
                quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
                if quota is None or period is None:
                    continue
                try:
                    value = parse_cfs(quota, period)
                except ValueError:
                    value = None
                if value is not None:
                    limits.append(value)
            break
    return min(limits) if limits else None


def usable_cores() -> int:
    """The cores this process may use: affinity and cgroup quota, the smallest, rounded down, >= 1."""
    cores = affinity_cores()
    quota = cgroup_cores()
    if quota is not None:
        cores = min(cores, math.floor(quota + 1e-9))
    return max(1, int(cores))


# -- the choice --------------------------------------------------------------------------------

_cli_request: int | None = None


def set_cli_threads(threads: int | None) -> None:
    """Record the global ``curate --threads N`` option (None or 0 = not given)."""
    global _cli_request
    _cli_request = int(threads) if threads else None


class ThreadsError(CurateError, ValueError):
    """A thread count that is not a whole number >= 1 (exit status 2)."""

    def __init__(self, message: str):
        super().__init__(message, exit_code=2)


def _positive_int(value: str, name: str) -> int:
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
    if n < 1:
        raise ThreadsError(f"{name}={value!r}: give a whole number of threads, 1 or more")
    return n


def thread_choice(requested: int | None = None, *, source: str = "--threads") -> ThreadChoice:
    """The thread count and its source: ``requested`` (or the global ``--threads``), then
    CURATE_THREADS, then OMP_NUM_THREADS, else :func:`usable_cores`. ``requested`` None or 0
    means "not given"; a malformed CURATE_THREADS is an error, a malformed OMP_NUM_THREADS is
    skipped (it belongs to other programs too)."""
    if requested:
        return ThreadChoice(_positive_int(str(requested), source), source)
    if _cli_request:
        return ThreadChoice(_cli_request, "--threads")
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return ThreadChoice(_positive_int(env, ENV_VAR), ENV_VAR)
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp:
        try:
            return ThreadChoice(_positive_int(omp.split(",")[0], "OMP_NUM_THREADS"), "OMP_NUM_THREADS")
        except ValueError:
            pass
    return ThreadChoice(usable_cores(), "usable cores")


def resolve_threads(requested: int | None = None) -> int:
    """The number of threads to use (see :func:`thread_choice` for the order)."""
    return thread_choice(requested).threads


_applied: dict[str, ThreadChoice] = {}


def apply_threads(requested: int | None = None, *, source: str = "--threads",
                  log: Callable[[str], None] | None = None) -> ThreadChoice:
    """Set torch's and OpenCV's (when imported) thread counts to :func:`thread_choice`.

    Idempotent: a library already set to this choice is left alone, so calling it before
    every training run costs nothing and the choice cannot drift during a process. ``log``
    gets one line (count and source) when something was changed.
    """
    choice = thread_choice(requested, source=source)
    changed = []
    torch = sys.modules.get("torch")
    if torch is not None and _applied.get("torch") != choice:
        torch.set_num_threads(choice.threads)
        if "torch_interop" not in _applied:
            try:  # allowed once, before any inter-op parallel work
                torch.set_num_interop_threads(choice.threads)
            except RuntimeError:
                pass
            _applied["torch_interop"] = choice
        _applied["torch"] = choice
        changed.append("torch")
    cv2 = sys.modules.get("cv2")
    if cv2 is not None and hasattr(cv2, "setNumThreads") and _applied.get("cv2") != choice:
        cv2.setNumThreads(choice.threads)
        _applied["cv2"] = choice
        changed.append("OpenCV")
    if changed and log is not None:
        cores = usable_cores()
        extra = "" if choice.source == "usable cores" else f"; {cores} usable cores"
        log(f"threads: {choice.threads} for {' and '.join(changed)} ({choice.source}{extra})")
    return choice


@contextlib.contextmanager
def torch_single_threaded() -> Iterator[None]:
    """torch ops on one thread while the face stage's worker threads each run MTCNN on their own
    photo: nested thread pools on a few cores only contend (200 photos, 4 workers, 2 cores: 26.8 s
    vs 30.3 s), and one thread gives the same floating-point sums whatever the worker count. The
    count is restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def applied() -> dict[str, ThreadChoice]:
    """What :func:`apply_threads` has set so far, per library (for run records and tests)."""
    return dict(_applied)


def _reset_for_tests() -> None:
    global _cli_request
    _cli_request = None
    _applied.clear()
