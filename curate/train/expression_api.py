"""``curate expression-model``: package a train-eval run as the shipped expression model, describe one."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

from curate.errors import CurateError
from curate.invocation import current_command
from curate.workspace import Workspace


def _digests(ws: Workspace) -> list[str | None]:
    digest = ws.manifest()["digest"]
    return digest.astype(object).where(digest.notna(), None).tolist()


def export_run(workspace: Path, run: str, out: Path, seen: Iterable[Path] = ()) -> dict[str, Any]:
    """Write the expression model of ``runs/<run>`` of ``workspace`` to ``out`` (see
    :mod:`curate.train.expression`). Every image of the run's workspace, and of the ``seen``
    workspaces, goes into the never-judge list."""
    from curate.train.expression import export_expression_model

    ws = Workspace.open(workspace)
    run_dir = ws.path("runs") / run
    metrics_path = run_dir / "metrics.json"
    if not (run_dir / "model.pt").is_file() or not metrics_path.is_file():
        raise CurateError(f"{run_dir}: not a finished train-eval run (model.pt and metrics.json missing)", exit_code=2)
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    digests = _digests(ws)
    for other in seen:
        digests += _digests(Workspace.open(other))
    train_digest = hashlib.sha256("\n".join(sorted(d for d in _digests(ws) if d)).encode()).hexdigest()
    spec = json.loads((run_dir / "model.json").read_text(encoding="utf-8"))
    recipe = metrics.get("recipe") or {}
    meta = {"classes": list(spec.get("classes", [])), "tta": bool(metrics.get("tta", True)),
            "recipe": recipe, "seed": metrics.get("seed"), "split": metrics.get("split"),
            "train_images": metrics.get("n_train"), "epochs": metrics.get("epochs_run"),
            "train_seconds": metrics.get("train_seconds"), "device": metrics.get("device"),
            "test_accuracy": metrics.get("accuracy"), "test_accuracy_without_tta": metrics.get("accuracy_no_tta"),
            "test_macro_f1": metrics.get("macro_f1"), "test_images": metrics.get("n_eval"),
            "eval_split": metrics.get("eval_split"), "workspace_images_sha256": train_digest,
            "made_by": current_command(), "from_run": str(run_dir)}
    if not meta["classes"]:
        raise CurateError(f"{run_dir / 'model.json'}: names no classes", exit_code=2)
    return export_expression_model(run_dir, out, seen_digests=digests, meta=meta)


def expression_info(path: Path | None = None) -> dict[str, Any]:
    """The sidecar of an expression model (default: the bundled one), checked by loading it."""
    from curate.train.expression import load_expression_model

    model = load_expression_model(path)
    return {"weights": str(model.path), **{k: v for k, v in model.meta.items()
                                           if k not in ("weights_sha256", "seen_sha256")}}
