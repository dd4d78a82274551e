"""Out-of-fold training with the shared trainer: one model per fold, resumable per fold.

For fold ``f`` a fresh model (``curate.train``) learns every image outside the fold, then
predicts the fold's images (test-time augmentation when asked) and embeds them. The same run
records training dynamics (per-epoch logit margins) for its training images, so every image
also gets an area-under-the-margin averaged over the k-1 runs that trained on it.

Each fold lands atomically in ``<out_dir>/fold_<f>.npz`` with a fingerprint of its inputs
(image ids, labels, folds, recipe, seed); a re-run loads matching folds instead of training.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from curate import atomic
from curate.logs import get_logger


LATER_RECIPE_KEYS = {"init": None}
"""Recipe keys added after fold files were first written, with the value that changes nothing: left out
of the fingerprint at that value, so that folds trained before the key existed still resume."""


def fingerprint(image_ids: list[str] | np.ndarray, labels: np.ndarray, folds: np.ndarray,
                recipe: dict[str, Any], seed: int, extra: dict[str, Any] | None = None) -> str:
    """A short hash naming everything a fold's result depends on."""
    recipe = {k: v for k, v in recipe.items() if not (k in LATER_RECIPE_KEYS and v == LATER_RECIPE_KEYS[k])}
    h = hashlib.sha256()
    h.update("\n".join(map(str, image_ids)).encode())
    h.update(np.asarray(labels, dtype=np.int64).tobytes())
    h.update(np.asarray(folds, dtype=np.int64).tobytes())
    h.update(json.dumps({"recipe": recipe, "seed": int(seed), "extra": extra or {}}, sort_keys=True,
                        default=str).encode())
    return h.hexdigest()[:20]


def fold_path(out_dir: Path, fold: int) -> Path:
    return Path(out_dir) / f"fold_{fold}.npz"


def save_fold(path: Path, **arrays: Any) -> None:
    """Write one fold's arrays as .npz atomically (temp file + rename)."""
    with atomic.atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def load_fold(path: Path, expected_fingerprint: str) -> dict[str, np.ndarray] | None:
    """A finished fold's arrays when the file exists and belongs to these inputs, else None."""
    if not Path(path).exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError):
        return None  # a damaged file is recomputed
    if str(arrays.get("fingerprint", "")) != expected_fingerprint:
        return None
    return arrays


@dataclass
class OOFResult:
    """Assembled out-of-fold outputs for N images."""

    probs: np.ndarray            # (N, C) float32 out-of-fold probabilities
    embeddings: np.ndarray       # (N, D) float32 out-of-fold embeddings (fold model's space)
    aum: np.ndarray              # (N,) mean margin over the runs that trained on the image (NaN: none)
    folds: np.ndarray            # (N,) fold of each image
    trained: list[int] = field(default_factory=list)   # folds computed in this call
    skipped: list[int] = field(default_factory=list)   # folds loaded from a previous run
    seconds: dict[int, float] = field(default_factory=dict)
    probs_final: np.ndarray | None = None  # (N, C) the final models' alone, when snapshots were averaged in


def run_fold(images: np.ndarray, labels: np.ndarray, folds: np.ndarray, fold: int, *, recipe: dict[str, Any],
             n_classes: int, seed: int, device: str, tta: bool, quiet: bool) -> dict[str, np.ndarray]:
    """Train on every fold but ``fold``; predict and embed ``fold``; AUM of the training images."""
    from curate.train.trainer import embed, fit, predict_proba

    train_idx = np.flatnonzero(folds != fold)
    test_idx = np.flatnonzero(folds == fold)
    t0 = time.perf_counter()
    test_images = np.asarray(images[test_idx])
    result = fit(np.asarray(images[train_idx]), labels[train_idx], recipe, num_classes=n_classes,
                 seed=int(seed) * 1000 + fold, device=device, quiet=quiet, record_dynamics=True,
                 snapshot_images=test_images if int(recipe.get("snapshots", 0)) > 0 else None)
    final = predict_proba(result.model, test_images, tta=tta, device=device)
    probs = final
    if result.snapshot_probs is not None:  # the final (TTA) model and the last epochs' snapshots, equally
        n_snap = int(recipe["snapshots"])
        probs = (final + n_snap * result.snapshot_probs) / (1 + n_snap)
    emb = embed(result.model, test_images, device=device)
    dynamics = getattr(result, "dynamics", None)
    if dynamics is not None and len(dynamics):
        aum = np.asarray(dynamics, dtype=np.float64).mean(axis=0).astype(np.float32)
    else:
        aum = np.full(len(train_idx), np.nan, np.float32)
    extra = {} if result.snapshot_probs is None else {"probs_final": np.asarray(final, np.float32)}
    return {**extra, "test_idx": test_idx.astype(np.int64), "probs": np.asarray(probs, np.float32),
            "embeddings": np.asarray(emb, np.float16), "train_idx": train_idx.astype(np.int64),
            "train_aum": aum, "seconds": np.float64(time.perf_counter() - t0)}


def fold_call(fold: int, *, runner: Callable[..., dict[str, np.ndarray]], images: np.ndarray, labels: np.ndarray,
              folds: np.ndarray, options: dict[str, Any]) -> dict[str, np.ndarray]:
    """One fold as an engine task: ``runner(images, labels, folds, fold, **options)``."""
    return runner(images, labels, folds, fold, **options)


def run_oof(images: np.ndarray, labels: np.ndarray, folds: np.ndarray, *, recipe: dict[str, Any],
            n_classes: int, out_dir: Path, fingerprint_: str, seed: int = 0, device: str = "auto",
            tta: bool = True, quiet: bool = False, log: Callable[[str], None] | None = None,
            fold_runner: Callable[..., dict[str, np.ndarray]] = run_fold, engine=None) -> OOFResult:
    """Run (or resume) every fold and assemble the out-of-fold arrays (progress lines to ``log``, else
    to the ``curate`` logger).

    The folds still to train run on ``engine`` (:class:`curate.engine.Engine`; None = the process's
    choice): locally one after another, on Ray as parallel tasks (one GPU each where the cluster has
    GPUs, the driver's thread count each). Each fold is saved (atomically) as soon as it arrives, so
    a killed run resumes from the folds already finished; the arrays are assembled in fold order.
    """
    from curate.engine import get_engine
    from curate.threads import resolve_threads

    log = log or get_logger(__name__).info
    labels = np.asarray(labels, dtype=np.int64)
    folds = np.asarray(folds, dtype=np.int64)
    n = len(labels)
    k = int(folds.max()) + 1
    probs = np.full((n, n_classes), np.nan, np.float32)
    embeddings: np.ndarray | None = None
    aum_sum = np.zeros(n, np.float64)
    aum_count = np.zeros(n, np.int64)
    result = OOFResult(probs=probs, embeddings=np.zeros((n, 0), np.float32), aum=np.full(n, np.nan),
                       folds=folds)
    done: dict[int, dict[str, np.ndarray]] = {}
    for fold in range(k):
        path = fold_path(out_dir, fold)
        arrays = load_fold(path, fingerprint_)
        if arrays is not None:
            result.skipped.append(fold)
            done[fold] = arrays
            log(f"fold {fold + 1}/{k}: finished earlier, loaded {path.name}")
    pending = [f for f in range(k) if f not in done]
    if pending:
        engine = engine or get_engine()

        def training(fold: int) -> str:
            return (f"fold {fold + 1}/{k}: training on {(folds != fold).sum()} images, "
                    f"predicting {(folds == fold).sum()}")

        if not engine.is_local:
            for fold in pending:
                log(training(fold))
        shared = {"runner": fold_runner, "images": images, "labels": labels, "folds": folds,
                  "options": {"recipe": recipe, "n_classes": n_classes, "seed": seed, "device": device, "tta": tta,
                              "quiet": quiet or not engine.is_local}}
        tasks = iter(engine.run_tasks(fold_call, [(fold,) for fold in pending], shared=shared,
                                      gpus=device != "cpu", threads=resolve_threads()))
        for j in range(len(pending)):
            if engine.is_local:  # the next fold trains when it is asked for: its line first
                log(training(pending[j]))
            i, arrays = next(tasks)
            fold = pending[i]
            save_fold(fold_path(out_dir, fold), fingerprint=np.array(fingerprint_), **arrays)
            done[fold] = arrays
            log(f"fold {fold + 1}/{k}: done in {float(arrays['seconds']):.0f}s")
        result.trained.extend(sorted(pending))
    for fold in range(k):  # assembled in fold order whatever order the folds finished in
        arrays = done[fold]
        result.seconds[fold] = float(arrays["seconds"])
        test_idx = arrays["test_idx"]
        probs[test_idx] = arrays["probs"]
        if "probs_final" in arrays:
            if result.probs_final is None:
                result.probs_final = np.full_like(probs, np.nan)
            result.probs_final[test_idx] = arrays["probs_final"]
        emb = arrays["embeddings"].astype(np.float32)
        if embeddings is None:
            embeddings = np.zeros((n, emb.shape[1]), np.float32)
        embeddings[test_idx] = emb
        train_aum = arrays["train_aum"].astype(np.float64)
        ok = np.isfinite(train_aum)
        np.add.at(aum_sum, arrays["train_idx"][ok], train_aum[ok])
        np.add.at(aum_count, arrays["train_idx"][ok], 1)
    if np.isnan(probs).any():
        raise RuntimeError("out-of-fold probabilities missing for some images (folds do not cover every image)")
    result.embeddings = embeddings if embeddings is not None else result.embeddings
    result.aum = np.where(aum_count > 0, aum_sum / np.maximum(aum_count, 1), np.nan)
    return result
