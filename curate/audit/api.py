"""Run audit checks on a workspace and write their rows into findings.parquet.

``audit(ws, checks=...)`` is what both ``curate audit`` and the pipeline step "audit" call.
Arrays in, scores out: :func:`run_checks` works on a pixel array alone (used by the
benchmark); :func:`audit` adds the workspace I/O, the findings write and the run record.
"""
from __future__ import annotations

import time
from typing import Any, Iterable

import numpy as np
import pandas as pd

from curate.audit.base import AuditContext
from curate.audit.registry import CHECKS, resolve_checks
from curate.config import load_config
from curate.errors import CurateError
from curate.findings import make_findings, write_findings
from curate.progress import chunks
from curate.workspace import Workspace, utc_now


def run_check(name: str, ctx: AuditContext) -> pd.DataFrame:
    """Findings rows of one check for every image of ``ctx``.

    The check scores chunks of rows; a chunk that raises is retried image by image, and an
    image that still fails gets score NaN, flagged False and evidence "error: ...".
    """
    check = CHECKS[name](ctx.params(name))
    n = len(ctx.image_ids)
    scores = np.full(n, np.nan)
    evidence: list[str] = [""] * n
    size = int(ctx.config.get("chunk_size", 4096))
    for sl in chunks(n, size):
        rows = np.arange(sl.start, sl.stop)
        try:
            s, ev = check.score(ctx, rows)
            scores[rows] = s
            evidence[sl] = ev
        except Exception:  # isolate the failing image(s)
            for r in rows:
                try:
                    s, ev = check.score(ctx, np.array([r]))
                    scores[r], evidence[r] = float(s[0]), ev[0]
                except Exception as exc:  # noqa: BLE001 - one bad image never sinks the run
                    scores[r] = np.nan
                    evidence[r] = f"error: {type(exc).__name__}: {exc}"[:300]
    flagged = check.flag(scores)
    return make_findings(ctx.image_ids, name, scores, flagged, evidence)


def run_checks(images: np.ndarray, image_ids: Iterable[str], names: list[str] | None, config: dict[str, Any], *,
               seed: int = 0, quiet: bool = True, load_original=None) -> tuple[pd.DataFrame, dict[str, float]]:
    """Run ``names`` on uint8 crops; returns (findings rows, seconds per check)."""
    ctx = AuditContext(images=images, image_ids=[str(i) for i in image_ids], config=config, seed=seed,
                       quiet=quiet, load_original=load_original)
    frames, seconds = [], {}
    for name in resolve_checks(names):
        t0 = time.perf_counter()
        frames.append(run_check(name, ctx))
        seconds[name] = round(time.perf_counter() - t0, 2)
    if "defect_model" in ctx.cache:
        seconds["defect_model_training"] = ctx.cache["defect_model"].info.get("train_seconds")
    return pd.concat(frames, ignore_index=True), seconds


def originals_loader(ws: Workspace, mode: str):
    """``load_original(row) -> uint8 array`` when originals are larger or colour (mode auto), else None."""
    if mode == "never":
        return None
    manifest = ws.manifest()
    size = ws.image_size
    if mode == "auto":
        has_files = manifest["source_path"].notna()
        bigger = (manifest["width"].fillna(0) > size) | (manifest["height"].fillna(0) > size)
        colour = manifest["channels"].fillna(1) > 1
        if not (has_files & (bigger | colour)).any():
            return None
    elif mode != "always":
        raise CurateError(f"use_originals must be auto, always or never, not {mode!r}", exit_code=2)

    def load(row: int) -> np.ndarray:
        return np.asarray(ws.load_original(row))

    return load


def audit(ws: Workspace, checks: list[str] | None = None, *, overrides: Any = None, config_file=None,
          seed: int = 0, quiet: bool = False) -> dict[str, Any]:
    """Run the audit checks on ``ws``, replace their rows in findings.parquet, record the run."""
    started = utc_now()
    t0 = time.perf_counter()
    cfg = load_config("audit", overrides, config_file)
    names = resolve_checks(checks if checks is not None else cfg.get("checks"))
    ws = Workspace.open(ws.root) if not ws.exists() else ws
    manifest = ws.manifest()
    if len(manifest) == 0:
        raise CurateError(f"{ws.root}: the workspace holds no images; ingest some first")
    images = ws.pixels()
    loader = originals_loader(ws, str(cfg.get("use_originals", "auto")))
    rows, seconds = run_checks(images, manifest["image_id"].tolist(), names, cfg, seed=seed, quiet=quiet,
                               load_original=loader)
    write_findings(ws, rows, checks=names)
    flagged = rows.groupby("check", sort=False)["flagged"].sum().astype(int).to_dict()
    errors = rows[rows["evidence"].str.startswith("error:").fillna(False)].groupby("check", sort=False).size()
    summary = {
        "workspace": str(ws.root), "images": int(len(manifest)), "checks": names,
        "flagged": {n: int(flagged.get(n, 0)) for n in names},
        "errors": {n: int(errors.get(n, 0)) for n in names},
        "flagged_any": int(rows.loc[rows["flagged"], "image_id"].nunique()),
        "used_originals": loader is not None, "seed": seed,
        "seconds": round(time.perf_counter() - t0, 2), "seconds_per_check": seconds,
        "findings_file": str(ws.path("findings.parquet")),
    }
    ws.record_run("audit", seed=seed, started=started, options={"checks": names, "overrides": overrides or {}},
                  counts={"images": summary["images"], "flagged": summary["flagged"], "errors": summary["errors"]})
    return summary


def audit_step(ws: Workspace, options: dict[str, Any], *, seed: int, quiet: bool) -> dict[str, Any]:
    """Pipeline step: ``{checks: [blank, non_face], set: {watermark.threshold: 0.9}}``."""
    opts = dict(options)
    checks = opts.pop("checks", None)
    if isinstance(checks, str):
        checks = [c.strip() for c in checks.split(",") if c.strip()]
    overrides = opts.pop("set", None) or {}
    if isinstance(overrides, dict):
        overrides = [f"{k}={v}" for k, v in overrides.items()]
    if opts:
        raise CurateError(f"audit step: unknown option(s) {', '.join(opts)}; use checks and set", exit_code=2)
    return audit(ws, checks, overrides=overrides or None, seed=seed, quiet=quiet)


def render_summary(s: dict[str, Any]) -> str:
    """Human-readable audit summary."""
    lines = [f"audit of {s['images']:,} images in {s['workspace']} ({s['seconds']:.1f}s)"]
    for name in s["checks"]:
        err = f", {s['errors'][name]} errors" if s["errors"].get(name) else ""
        lines.append(f"  {name:<16} flagged {s['flagged'][name]:>6,}{err}")
    lines.append(f"images flagged by any check: {s['flagged_any']:,}; findings in {s['findings_file']}")
    return "\n".join(lines)


def list_checks(config: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every registered check with its description and default options."""
    cfg = config if config is not None else load_config("audit")
    return [{"name": n, "description": c.description, "defaults": cfg.get(n, {})} for n, c in CHECKS.items()]

