"""Declarative pipelines: a YAML list of steps with options, run in order on one workspace.

A pipeline file::

    name: demo
    workspace: ./curate-demo      # default, -w overrides
    seed: 0
    steps:
      - ingest: {sources: ["{sample}"]}
      - dedupe: {}
      - audit: {checks: [blank, non_face]}

``{sample}`` expands to the bundled FER2013 sample, ``{pipeline_dir}`` to the file's folder,
``{workspace}`` to the workspace, ``{seed}`` to the run's seed (e.g. in run names). Every step is
validated before the first one runs.
"""
from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any, Callable

from curate.config import ConfigError, deep_merge, parse_overrides, read_yaml
from curate.errors import CurateError
from curate.logs import get_logger
from curate.threads import apply_threads
from curate.workspace import Workspace

StepFn = Callable[..., dict]

STEPS: dict[str, str] = {
    "ingest": "curate.ingest.api:ingest_step",
    "info": "curate.info.api:info_step",
    "audit": "curate.audit.api:audit_step",
    "ingest-bench": "curate.bench.ingest:bench_ingest_step",
    "mislabel": "curate.mislabel.api:mislabel_step",
    "mislabel-bench": "curate.mislabel.bench:mislabel_bench_step",
    "split": "curate.split.api:split_step",
    "train-eval": "curate.train.api:train_eval_step",
    "compare": "curate.train.api:compare_step",
    "report": "curate.report.api:report_step",
    "dedupe": "curate.dedupe.api:dedupe_step",
    "dedupe-bench": "curate.dedupe.bench:bench_dedupe_step",
}
"""Step name -> "module:function". Each function is ``fn(ws, options, *, seed, quiet) -> dict``.
A step is named like the command that does the same (a benchmark: ``<stage>-bench``)."""

DEPRECATED_STEPS: dict[str, str] = {
    "bench-ingest": "ingest-bench",
    "dedupe_bench": "dedupe-bench",
    "mislabel_bench": "mislabel-bench",
}
"""Old step name -> its name now; pipeline files with the old name still run, with a note."""


def resolve_step(name: str) -> StepFn:
    """The function behind a step name; a clear error listing known steps otherwise."""
    target = STEPS.get(DEPRECATED_STEPS.get(name, name))
    if target is None:
        raise CurateError(f"unknown pipeline step {name!r}; known steps: {', '.join(sorted(STEPS))}", exit_code=2)
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def sample_path() -> Path:
    """The bundled FER2013 sample CSV."""
    return Path(__file__).resolve().parent / "data" / "fer2013_sample.csv.gz"


def _expand(value: Any, variables: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, sub in variables.items():
            value = value.replace("{" + key + "}", sub)
        return value
    if isinstance(value, list):
        return [_expand(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, variables) for k, v in value.items()}
    return value


def load_pipeline(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read and validate a pipeline file; ``overrides`` like ``dedupe.phash.threshold=8``."""
    path = Path(path)
    spec = read_yaml(path)
    steps = spec.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ConfigError(f"{path}: 'steps' must be a non-empty list")
    parsed: list[tuple[str, dict[str, Any]]] = []
    notes: list[str] = []
    for i, item in enumerate(steps):
        if isinstance(item, str):
            item = {item: {}}
        if not isinstance(item, dict) or len(item) != 1:
            raise ConfigError(f"{path}: step {i + 1} must be a name or a one-key mapping, got {item!r}")
        (name, options), = item.items()
        if name in DEPRECATED_STEPS:
            notes.append(f"note: pipeline step {name!r} is deprecated; use {DEPRECATED_STEPS[name]!r}")
            name = DEPRECATED_STEPS[name]
        if name not in STEPS:
            raise CurateError(f"{path}: step {i + 1}: unknown step {name!r}; known steps: {', '.join(sorted(STEPS))}",
                              exit_code=2)
        parsed.append((name, dict(options or {})))
    extra = {DEPRECATED_STEPS.get(k, k): v for k, v in parse_overrides(overrides or []).items()}
    for key in extra:
        if key not in {n for n, _ in parsed}:
            raise ConfigError(f"override for {key!r}: the pipeline has no such step")
    parsed = [(n, deep_merge(o, extra.get(n, {}))) for n, o in parsed]
    return {"name": spec.get("name", path.stem), "workspace": spec.get("workspace"),
            "seed": int(spec.get("seed", 0)), "steps": parsed, "path": path, "notes": notes}


def run_pipeline(path: str | Path, *, workspace: str | Path | None = None, seed: int | None = None,
                 overrides: list[str] | None = None, quiet: bool = False,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every step of a pipeline in order; returns each step's summary and timing.

    The pipeline's lines (``[name] step ...``) go to ``log`` when given, else to the ``curate`` logger;
    a step that cannot judge (e.g. mislabel's ``judged: false``) warns through the logger itself.
    """
    log = log or get_logger(__name__).info
    spec = load_pipeline(path, overrides)
    ws_root = workspace or spec["workspace"] or "./curate-ws"
    seed = spec["seed"] if seed is None else seed
    variables = {"sample": str(sample_path()), "pipeline_dir": str(Path(path).resolve().parent),
                 "workspace": str(Path(ws_root).resolve()), "seed": str(seed)}
    ws = Workspace(ws_root)
    for note in spec["notes"]:
        log(f"[{spec['name']}] {note}")
    results = []
    for name, options in spec["steps"]:
        fn = resolve_step(name)
        apply_threads(log=log)  # the step's libraries are imported now; the same choice for every step
        log(f"[{spec['name']}] {name} ...")
        t0 = time.perf_counter()
        summary = fn(ws, _expand(options, variables), seed=seed, quiet=quiet)
        ws.refresh()
        seconds = round(time.perf_counter() - t0, 2)
        results.append({"step": name, "seconds": seconds, "summary": summary})
        log(f"[{spec['name']}] {name} done in {seconds:.1f}s")
    return {"pipeline": spec["name"], "workspace": str(ws.root), "seed": seed, "steps": results}
