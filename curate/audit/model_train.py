"""``curate audit-model train``: train the defect model once on a workspace and write a weights file.

This is how the package's own model (:data:`~curate.audit.defect_weights.BUNDLED_WEIGHTS`) is
made: the same self-supervised training as ``model.weights: none`` (the workspace's crops as
the clean class, synthetic defects made from them), with the training images chosen here:
``holdout_bench_seed`` keeps the ``curate audit-bench`` reporting half of that seed out
(so the benchmark's figures are measured on images the model never saw), ``reviewed`` keeps
images a reviewer confirmed as real defects out of the clean class. The sidecar records the
data (workspace sources, a digest of the whole pixel store and of the training ids), the
settings, the seed, the curate version and the command.
"""
from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from curate import __version__
from curate.audit.defect_weights import ids_digest, pixels_digest, save_weights
from curate.settings import load_settings
from curate.invocation import current_command
from curate.workspace import Workspace, utc_now


def train_bundle(ws: Workspace, out: Path, *, overrides: list[str] | None = None, config_file: Path | None = None,
                 seed: int = 0, holdout_bench_seed: int | None = None, reviewed: Path | None = None,
                 quiet: bool = False) -> dict[str, Any]:
    """Train the defect model on ``ws`` (minus the held-out rows) and write ``out`` + its sidecar."""
    import torch

    from curate.audit.bench import bench_halves, load_reviewed
    from curate.audit.defect_model import train_defect_model
    from curate.audit.synthetic import DEFECT_CLASSES

    t0 = time.perf_counter()
    cfg = load_settings("audit", overrides, config_file).model
    manifest = ws.manifest()
    ids = manifest["image_id"].astype(str).tolist()
    images = np.asarray(ws.pixels())
    keep = np.ones(len(ids), bool)
    held_out: dict[str, Any] = {}
    if holdout_bench_seed is not None:
        report_rows = bench_halves(len(ids), holdout_bench_seed)["report"]
        keep[report_rows] = False
        held_out["bench_report_half"] = {"seed": int(holdout_bench_seed), "images": int(len(report_rows)),
                                         "ids_sha256": ids_digest([ids[i] for i in report_rows])}
    if reviewed is not None:
        review = load_reviewed(reviewed)
        hit = np.array([i in review for i in ids])
        held_out["reviewed_defects"] = {"file": str(reviewed), "images": int((hit & keep).sum())}
        keep &= ~hit
    rows = np.flatnonzero(keep)
    model = train_defect_model(images[rows], cfg, seed=seed, quiet=quiet)
    info = ws.info()
    meta = {
        "classes": list(DEFECT_CLASSES),
        "seed": int(seed),
        "training": {
            "data": ", ".join(Path(p).name for p in (info.get("sources_slugs") or {}).values()) or str(ws.root),
            "sources": info.get("sources_slugs") or {},
            "workspace_images": int(len(ids)),
            "workspace_pixels_sha256": pixels_digest(images),
            "images_used": int(len(rows)),
            "train_ids_sha256": ids_digest([ids[i] for i in rows]),
            "held_out": held_out,
            "config": {k: v for k, v in cfg.to_dict().items() if not k.startswith("adapt") and k != "weights"},
            "rounds": model.info["rounds"],
            "seconds": model.info["train_seconds"],
            "device": model.info["device"],
        },
        "curate_version": __version__,
        "torch_version": torch.__version__,
        "machine": platform.machine(),
        "command": current_command(),
        "created": utc_now(),
    }
    path = save_weights(model.net, out, meta)
    return {"weights": str(path), "sidecar": str(path.with_suffix(".json")), "bytes": path.stat().st_size,
            "images_used": int(len(rows)), "held_out": held_out, "train_seconds": model.info["train_seconds"],
            "seconds": round(time.perf_counter() - t0, 1)}


def describe(path: Path) -> dict[str, Any]:
    """The sidecar of a weights file plus its size (``curate audit-model info``)."""
    from curate.audit.defect_weights import read_sidecar

    meta = read_sidecar(path)
    return {"weights": str(path), "bytes": Path(path).stat().st_size if Path(path).exists() else None, **meta}
