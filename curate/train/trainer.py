"""The one trainer of the toolkit: fit, predict_proba, embed (used by train-eval, mislabel, dedupe).

Arrays in, model out: images are uint8 (N, S, S) grey or (N, S, S, 3) colour, labels int64. CUDA when available
(mixed precision), else CPU with the threads of :mod:`curate.threads`. Same seed, same result on a CPU:
the shuffling and augmentation of epoch ``e`` come from generators seeded by (seed, e), so a
run resumed from a checkpoint continues exactly as the uninterrupted one would.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from curate import atomic
from curate.logs import get_logger
from curate.progress import progress
from curate.train.augment import augment_batch, augment_params
from curate.train.inference import (  # noqa: F401  (re-exported: callers import them from here)
    _as_u8, _autocast, _finish, _InputNorm, _prepare, embed, predict_proba, resolve_device)
from curate.train.models import BackboneNet, build_from_recipe, build_model, load_backbone_checkpoint
from curate.train.recipes import DEFAULTS, load_recipe

logger = get_logger(__name__)


@dataclass
class FitResult:
    """A trained model (best validation epoch when a validation set was given) and its history."""

    model: nn.Module
    history: list[dict[str, Any]]
    dynamics: np.ndarray | None = None
    best_epoch: int = 0
    images_per_s: float = 0.0
    seconds: float = 0.0
    stopped_early: bool = False
    recipe: dict[str, Any] = field(default_factory=dict)
    pretrained: dict[str, Any] | None = None
    """A backbone's start: ``checkpoint`` (path, or None = from scratch), tensors loaded, head keys left out."""
    snapshot_probs: np.ndarray | None = None
    """Mean probabilities of ``snapshot_images`` over the last ``recipe['snapshots']`` epochs' models."""


def small_loss_mask(losses: torch.Tensor, drop: float) -> torch.Tensor:
    """True for the images kept in the gradient: all but the ``drop`` share with the highest loss."""
    keep = len(losses) - int(round(drop * len(losses)))
    if drop <= 0 or keep >= len(losses) or keep < 1:
        return torch.ones_like(losses, dtype=torch.bool)
    threshold = losses.detach().kthvalue(keep).values
    return losses.detach() <= threshold


class ResumeMismatch(ValueError):
    """A checkpoint belongs to another recipe, seed or data."""


def configure_threads(num_threads: int = 0, log: Callable[[str], None] | None = None) -> int:
    """Use ``num_threads`` CPU threads; 0 = :func:`curate.threads.resolve_threads` (``--threads``,
    CURATE_THREADS, OMP_NUM_THREADS, else the cores this process may use; never the load average)."""
    from curate.threads import apply_threads

    return apply_threads(num_threads if num_threads > 0 else None, source="recipe num_threads", log=log).threads


def class_weight_vector(labels: np.ndarray, num_classes: int, mode: str) -> np.ndarray:
    """Per-class loss weights: ``balanced`` = inverse frequency, ``sqrt`` = its square root; mean 1."""
    if mode == "none":
        return np.ones(num_classes, np.float32)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    inv = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / num_classes, 0.0)
    w = np.sqrt(inv) if mode == "sqrt" else inv
    present = counts > 0
    w[present] = w[present] / w[present].mean()
    return w.astype(np.float32)


def freeze_plan(model: nn.Module, spec: str | list[str]) -> tuple[list[str], list[nn.Module]]:
    """The modules a recipe's ``freeze`` names: ``backbone`` = everything but the new head, or
    a list of layer names inside the backbone (``[conv1, bn1, layer1]`` for a ResNet) or inside
    a FER net (``[trunk.0, trunk.1]``). ValueError naming the available layers for an unknown one."""
    root = model.backbone if isinstance(model, BackboneNet) else model
    if spec == "backbone":
        if isinstance(model, BackboneNet):
            return ["backbone"], [model.backbone]
        names = [n for n, _ in model.named_children() if n not in ("classifier", "dropout")]
        return names, [getattr(model, n) for n in names]
    modules = []
    for name in spec:
        try:
            modules.append(root.get_submodule(str(name)))
        except AttributeError:
            layers = ", ".join(n for n, _ in root.named_children())
            raise ValueError(f"freeze: no layer {name!r} in {getattr(model, 'arch', model.name)} "
                             f"(its top-level layers: {layers})") from None
    return [str(n) for n in spec], modules


def _set_frozen(modules: list[nn.Module], frozen: bool) -> None:
    """Freeze (no gradients; batch-norm statistics and dropout in eval mode) or release ``modules``."""
    for module in modules:
        for p in module.parameters():
            p.requires_grad_(not frozen)
        if frozen:
            module.eval()


def _make_optimizer(model: nn.Module, recipe: dict[str, Any]) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": float(recipe["weight_decay"])},
              {"params": no_decay, "weight_decay": 0.0}]
    lr = float(recipe["lr"])
    if recipe["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=float(recipe["momentum"]), nesterov=bool(recipe["nesterov"]))
    if recipe["optimizer"] == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    return torch.optim.Adam(groups, lr=lr)


def _make_scheduler(opt: torch.optim.Optimizer, recipe: dict[str, Any], steps_per_epoch: int):
    total = max(1, recipe["epochs"] * steps_per_epoch)
    if recipe["schedule"] == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=float(recipe["lr"]), total_steps=total,
                                                   pct_start=float(recipe["warmup_pct"]))
    if recipe["schedule"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    if recipe["schedule"] == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=float(recipe["plateau_factor"]),
                                                          patience=int(recipe["plateau_patience"]))
    return None


def _fmt_eta(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def _log(message: str, quiet: bool) -> None:
    """A training progress line for the ``curate`` logger; none when ``quiet`` (e.g. a mislabel fold)."""
    if not quiet:
        logger.info(message)


@dataclass
class _FitData:
    """A fit's checked training and validation arrays (tensors on the device where they are used)."""

    x_train: torch.Tensor
    y_np: np.ndarray
    y_train: torch.Tensor
    weights: torch.Tensor
    x_val: torch.Tensor | None
    y_val: np.ndarray | None
    targets: torch.Tensor | None = None

    @property
    def n(self) -> int:
        return len(self.y_np)

    @property
    def has_val(self) -> bool:
        return self.y_val is not None


def _fit_data(train_images: np.ndarray, train_labels: np.ndarray, val_images: np.ndarray | None,
              val_labels: np.ndarray | None, num_classes: int, class_weights: str,
              sample_weights: np.ndarray | None, soft_targets: np.ndarray | None = None) -> _FitData:
    """Check the training labels against ``num_classes``; the per-image loss weights (class x sample) and
    the soft targets (rows of class probabilities; ValueError for a wrong shape or a row not summing to 1)."""
    x_train = _as_u8(train_images)
    y_np = np.array(train_labels, dtype=np.int64)  # a private, writable copy
    n = len(y_np)
    if n == 0 or len(x_train) != n:
        raise ValueError(f"{len(x_train)} training images for {n} labels")
    if y_np.min() < 0 or y_np.max() >= num_classes:
        raise ValueError(f"training labels must lie in [0, {num_classes}), found {y_np.min()}..{y_np.max()}")
    cw = class_weight_vector(y_np, num_classes, class_weights)
    w_np = cw[y_np] * (np.ones(n, np.float32) if sample_weights is None else np.asarray(sample_weights, np.float32))
    has_val = val_images is not None and val_labels is not None and len(val_labels) > 0
    return _FitData(x_train=x_train, y_np=y_np, y_train=torch.from_numpy(y_np),
                    weights=torch.from_numpy(w_np.astype(np.float32)),
                    x_val=_as_u8(val_images) if has_val else None,
                    y_val=np.asarray(val_labels, dtype=np.int64) if has_val else None,
                    targets=None if soft_targets is None else torch.from_numpy(_checked_targets(soft_targets, n,
                                                                                               num_classes)))


def _checked_targets(soft_targets: np.ndarray, n: int, num_classes: int) -> np.ndarray:
    """``soft_targets`` as float32 (n, num_classes) rows of probabilities; ValueError otherwise."""
    t = np.asarray(soft_targets, dtype=np.float32)
    if t.shape != (n, num_classes):
        raise ValueError(f"soft targets of shape {t.shape} for {n} images and {num_classes} classes")
    if not np.isfinite(t).all() or (t < 0).any() or np.abs(t.sum(1) - 1).max() > 1e-3:
        raise ValueError("soft targets must be finite, non-negative rows summing to 1")
    return np.ascontiguousarray(t)


def _start_model(recipe: dict[str, Any], num_classes: int, seed: int, resuming: bool,
                 quiet: bool) -> tuple[nn.Module, dict[str, Any] | None]:
    """The recipe's model seeded by ``seed``; a backbone's pretrained start (None for a FER net)."""
    torch.manual_seed(seed)
    if recipe.get("init") and not isinstance(recipe.get("init"), bool):
        return _expression_start(recipe, num_classes, resuming, quiet)
    model = build_from_recipe(recipe, num_classes)
    model.image_size = int(recipe["image_size"])
    if not isinstance(model, BackboneNet):
        return model, None
    if recipe["checkpoint"] and not resuming:
        pretrained = load_backbone_checkpoint(model, recipe["checkpoint"])
        _log(f"backbone {model.arch}: {pretrained['tensors']} tensors from {pretrained['checkpoint']}"
             + (f" (its classifier {model.head_prefix}.* left out; new head for {num_classes} classes)"
                if pretrained["head_left_out"] else f" (new head for {num_classes} classes)"), quiet)
    elif recipe["checkpoint"]:
        pretrained = {"checkpoint": str(Path(recipe["checkpoint"]).expanduser()), "tensors": None,
                      "head_left_out": []}
    else:
        pretrained = {"checkpoint": None, "tensors": 0, "head_left_out": []}
        _log(f"backbone {model.arch}: checkpoint null - training from scratch (random initialisation; "
             "nothing is downloaded: pass --set checkpoint=PATH for pretrained weights)", quiet)
    return model, pretrained


def _expression_start(recipe: dict[str, Any], num_classes: int, resuming: bool,
                      quiet: bool) -> tuple[nn.Module, dict[str, Any]]:
    """A FER net with the expression model's network and arguments, its trunk and embedding copied
    from the model (``recipe["init"]``: ``expression`` = the bundled one, or a path), a new head."""
    from curate.train.expression import load_expression_model, resolve
    from curate.train.models import build_model

    source = load_expression_model(None if recipe["init"] == "expression" else recipe["init"])
    meta = source.meta
    model = build_model(meta["model"], num_classes, in_size=int(meta["in_size"]), **meta.get("model_args", {}))
    model.image_size = int(recipe["image_size"])
    if int(meta["in_size"]) != int(recipe["input_size"]):
        from curate.config import ConfigError

        raise ConfigError(f"recipe input_size {recipe['input_size']} differs from the expression model's "
                          f"{meta['in_size']} (init: {recipe['init']})")
    state = {k: v for k, v in source.net.state_dict().items() if not k.startswith("classifier.")}
    if not resuming:
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("classifier.") for k in missing):
            raise RuntimeError(f"expression model does not fit its own network: {missing} {unexpected}")
    _log(f"init: {len(state)} tensors of the expression model {resolve(None if recipe['init'] == 'expression' else recipe['init']).name} "
         f"({meta['model']} {meta.get('model_args', {})}); new head for {num_classes} classes", quiet)
    return model, {"checkpoint": str(source.path), "tensors": len(state), "head_left_out": ["classifier.weight",
                                                                                              "classifier.bias"]}


def _recipe_freeze_plan(model: nn.Module, recipe: dict[str, Any]) -> tuple[list[str], list[nn.Module]]:
    """:func:`freeze_plan` for the recipe's ``freeze`` (nothing when ``freeze_epochs`` is 0); ConfigError."""
    try:
        return freeze_plan(model, recipe["freeze"]) if int(recipe["freeze_epochs"]) else ([], [])
    except ValueError as exc:
        from curate.config import ConfigError

        raise ConfigError(f"recipe {exc}") from None


@dataclass
class _FitRun:
    """What stays fixed during one fit: the recipe and what follows from it, the device, the options."""

    recipe: dict[str, Any]
    dev: torch.device
    seed: int
    quiet: bool
    norm: _InputNorm
    channels_last: bool
    use_amp: bool
    aug: Any
    steps_per_epoch: int
    frozen_names: list[str]
    frozen_modules: list[nn.Module]
    ckpt: Path | None
    fingerprint: dict[str, Any]
    n_snapshots: int
    snapshot_images: np.ndarray | None
    has_val: bool


@dataclass
class _FitState:
    """What a fit carries from one epoch to the next (a checkpoint saves and restores it)."""

    model: nn.Module
    opt: torch.optim.Optimizer
    sched: Any
    scaler: Any
    dynamics: np.ndarray | None
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=lambda: {"epoch": 0, "val_acc": -1.0, "state": None})
    start_epoch: int = 0
    train_seconds: float = 0.0
    seen_images: int = 0
    snapshot_sum: np.ndarray | None = None
    stopped_early: bool = False


def _start_state(run: _FitRun, model: nn.Module, n: int, resuming: bool, record_dynamics: bool) -> _FitState:
    """Optimizer, schedule and scaler for ``model``; restored from the checkpoint when ``resuming``."""
    recipe = run.recipe
    opt = _make_optimizer(model, recipe)
    state = _FitState(model=model, opt=opt, sched=_make_scheduler(opt, recipe, run.steps_per_epoch),
                      scaler=torch.amp.GradScaler("cuda", enabled=run.use_amp and not torch.cuda.is_bf16_supported()),
                      dynamics=np.zeros((recipe["epochs"], n), np.float32) if record_dynamics else None)
    if resuming:
        state.start_epoch, state.history, state.best = _load_checkpoint(
            run.ckpt, run.fingerprint, model, opt, state.sched, state.scaler, run.dev)
        if state.dynamics is not None and (run.ckpt / "dynamics.npy").exists():
            state.dynamics[:state.start_epoch] = np.load(run.ckpt / "dynamics.npy")[:state.start_epoch]
        _log(f"resumed from {run.ckpt / 'last.pt'} after epoch {state.start_epoch}", run.quiet)
    state.train_seconds = sum(h["seconds"] for h in state.history)
    state.seen_images = sum(h["images"] for h in state.history)
    return state


def _train_epoch(run: _FitRun, state: _FitState, data: _FitData, x_train_dev: torch.Tensor,
                 epoch: int) -> tuple[dict[str, Any], float]:
    """One pass over the shuffled training images (seeded by (seed, epoch)); the epoch's history row
    and its seconds."""
    recipe, dev, model, bs = run.recipe, run.dev, state.model, int(run.recipe["batch_size"])
    gen = torch.Generator().manual_seed(int(run.seed) * 1_000_003 + epoch)
    torch.manual_seed(int(run.seed) * 7_919 + epoch + 1)  # dropout
    perm = torch.randperm(data.n, generator=gen)
    model.train()
    if run.frozen_modules:
        frozen = epoch < int(recipe["freeze_epochs"])
        _set_frozen(run.frozen_modules, frozen)
        if frozen and epoch == state.start_epoch:
            _log(f"epochs 1-{int(recipe['freeze_epochs'])}: {', '.join(run.frozen_names)} frozen "
                 "(only the rest trains)", run.quiet)
    small_loss = float(recipe["small_loss_drop"]) > 0 and epoch >= int(recipe["small_loss_warmup"])
    t0 = time.perf_counter()
    loss_sum, correct, count = 0.0, 0, 0
    bar = progress(total=run.steps_per_epoch, desc=f"epoch {epoch + 1}/{recipe['epochs']}", quiet=run.quiet,
                   unit="batch")
    for s in range(run.steps_per_epoch):
        idx = perm[s * bs:(s + 1) * bs]
        if len(idx) < 2 and s > 0:
            continue  # batch norm needs two samples
        x = _prepare(x_train_dev[idx.to(x_train_dev.device)], dev)
        x = _finish(augment_batch(x, run.aug, recipe["input_size"], recipe["image_size"], gen), run.channels_last,
                    run.norm)
        y = data.y_train[idx].to(dev)
        target = y if data.targets is None else data.targets[idx].to(dev)
        logits, losses = _train_step(run, state, x, target, data.weights[idx].to(dev), small_loss)
        with torch.no_grad():
            lf = logits.detach().float()
            correct += int((lf.argmax(1) == y).sum())
            count += len(y)
            loss_sum += float(losses.detach().sum())
            if state.dynamics is not None:
                given = lf.gather(1, y[:, None]).squeeze(1)
                other = lf.scatter(1, y[:, None], float("-inf")).max(1).values
                state.dynamics[epoch, idx.numpy()] = (given - other).cpu().numpy()
        bar.update(1)
        if s % 20 == 0:
            bar.set_postfix(loss=f"{loss_sum / max(count, 1):.3f}", acc=f"{correct / max(count, 1):.3f}",
                            ips=f"{count / max(time.perf_counter() - t0, 1e-6):.0f}")
    bar.close()
    seconds = time.perf_counter() - t0
    return {"epoch": epoch + 1, "train_loss": loss_sum / max(count, 1), "train_acc": correct / max(count, 1),
            "lr": float(state.opt.param_groups[0]["lr"]), "seconds": round(seconds, 3), "images": count,
            "images_per_s": round(count / max(seconds, 1e-6), 1)}, seconds


def _train_step(run: _FitRun, state: _FitState, x: torch.Tensor, target: torch.Tensor, w: torch.Tensor,
                small_loss: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on a batch (weighted cross-entropy against class indices or soft-target rows;
    the small-loss share left out when ``small_loss``); the batch's logits and per-image losses."""
    recipe = run.recipe
    with _autocast(run.dev, run.use_amp):
        logits = state.model(x)
        losses = F.cross_entropy(logits.float(), target, reduction="none",
                                 label_smoothing=float(recipe["label_smoothing"]))
        if small_loss:
            w = w * small_loss_mask(losses, float(recipe["small_loss_drop"]))
        loss = (losses * w).sum() / w.sum().clamp_min(1e-8)
    state.opt.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    state.scaler.step(state.opt)
    state.scaler.update()
    if state.sched is not None and recipe["schedule"] in ("onecycle", "cosine"):
        state.sched.step()
    return logits, losses


def _validate(run: _FitRun, state: _FitState, data: _FitData, epoch: int, row: dict[str, Any]) -> None:
    """After an epoch: ``val_loss`` and ``val_acc`` into ``row`` (with a validation set), the snapshot
    predictions of the last N epochs, the plateau schedule and the best model so far."""
    recipe = run.recipe
    if data.has_val:
        vprobs = predict_proba(state.model, data.x_val.numpy(), tta=False, batch_size=int(recipe["eval_batch_size"]),
                               device=str(run.dev))
        y_val = data.y_val
        row["val_loss"] = float(-np.log(np.clip(vprobs[np.arange(len(y_val)), y_val], 1e-12, None)).mean())
        row["val_acc"] = float((vprobs.argmax(1) == y_val).mean())
        state.model.train()
    if run.n_snapshots and epoch >= recipe["epochs"] - run.n_snapshots:
        snap = predict_proba(state.model, run.snapshot_images, tta=False, batch_size=int(recipe["eval_batch_size"]),
                             device=str(run.dev))
        state.snapshot_sum = snap if state.snapshot_sum is None else state.snapshot_sum + snap
        state.model.train()
    monitor = row.get("val_acc", row["train_acc"])
    if state.sched is not None and recipe["schedule"] == "plateau":
        state.sched.step(monitor)
    if monitor > state.best["val_acc"]:
        state.best = {"epoch": epoch + 1, "val_acc": monitor,
                      "state": {k: v.detach().cpu().clone() for k, v in state.model.state_dict().items()}}


def _end_epoch(run: _FitRun, state: _FitState, epoch: int, row: dict[str, Any], seconds: float,
               on_epoch: Callable[[dict[str, Any]], None] | None, t_start: float) -> bool:
    """Record the epoch (history, log line, checkpoint, ``on_epoch``); True when training stops here
    (early stopping on a validation set, or ``max_minutes``)."""
    recipe, quiet, has_val = run.recipe, run.quiet, run.has_val
    state.history.append(row)
    state.train_seconds += seconds
    state.seen_images += row["images"]
    remaining = (recipe["epochs"] - epoch - 1) * (state.train_seconds / max(1, len(state.history)))
    _log(f"epoch {epoch + 1}/{recipe['epochs']}  loss {row['train_loss']:.4f}  acc {row['train_acc']:.4f}"
         + (f"  val_loss {row['val_loss']:.4f}  val_acc {row['val_acc']:.4f}" if has_val else "")
         + f"  lr {row['lr']:.2e}  {row['images_per_s']:.0f} img/s  {seconds:.0f}s  ETA {_fmt_eta(remaining)}",
         quiet)
    if run.ckpt is not None:
        _save_checkpoint(run.ckpt, run.fingerprint, epoch + 1, state.history, state.best, state.model, state.opt,
                         state.sched, state.scaler, state.dynamics)
    if on_epoch is not None:
        on_epoch(row)
    patience = int(recipe["early_stopping"])
    if patience and has_val and epoch + 1 - state.best["epoch"] >= patience:
        _log(f"early stop: no val_acc gain for {patience} epochs (best epoch {state.best['epoch']})", quiet)
        return True
    if recipe["max_minutes"] and (time.perf_counter() - t_start) / 60 >= float(recipe["max_minutes"]):
        _log(f"stopped after max_minutes={recipe['max_minutes']}", quiet)
        return True
    return False


def fit(train_images: np.ndarray, train_labels: np.ndarray, recipe: str | dict[str, Any], *,
        val_images: np.ndarray | None = None, val_labels: np.ndarray | None = None, num_classes: int,
        seed: int = 0, device: str = "auto", quiet: bool = False, checkpoint_dir: str | Path | None = None,
        sample_weights: np.ndarray | None = None, record_dynamics: bool = False, resume: bool = False,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
        snapshot_images: np.ndarray | None = None, soft_targets: np.ndarray | None = None) -> FitResult:
    """Train a model from ``recipe`` on uint8 images; returns the best-validation model.

    ``sample_weights`` multiply each image's loss (with the recipe's class weights).
    ``soft_targets`` (n, num_classes rows summing to 1) replace the one-hot labels in the loss (the
    labels still give the class weights, the accuracy and the margins).
    ``record_dynamics`` keeps, per epoch, each training image's logit margin (given-label
    logit minus the largest other logit, on its augmented view) for area-under-margin.
    ``checkpoint_dir`` gets ``last.pt`` + ``last.json`` after every epoch (atomic);
    ``resume=True`` continues from them. ``snapshot_images`` (with recipe ``snapshots`` N > 0)
    are predicted (no TTA) after each of the last N epochs; the mean is ``snapshot_probs``.
    Recipe ``small_loss_drop`` leaves each batch's highest-loss share out of the gradient after
    ``small_loss_warmup`` epochs (their margins are still recorded).
    """
    recipe = load_recipe(recipe if isinstance(recipe, (dict, str, Path)) else None)
    dev = resolve_device(device)
    threads = (configure_threads(int(recipe["num_threads"]), log=lambda m: _log(m, quiet)) if dev.type == "cpu"
               else torch.get_num_threads())
    data = _fit_data(train_images, train_labels, val_images, val_labels, num_classes, recipe["class_weights"],
                     sample_weights, soft_targets)
    recipe = epochs_for_min_steps(recipe, data.n, quiet)
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    resuming = ckpt is not None and resume and (ckpt / "last.pt").exists()
    model, pretrained = _start_model(recipe, num_classes, seed, resuming, quiet)
    norm = _InputNorm(model)
    frozen_names, frozen_modules = _recipe_freeze_plan(model, recipe)
    channels_last = bool(recipe["channels_last"])
    model = model.to(dev, memory_format=torch.channels_last) if channels_last else model.to(dev)
    run = _FitRun(recipe=recipe, dev=dev, seed=seed, quiet=quiet, norm=norm, channels_last=channels_last,
                  use_amp=dev.type == "cuda" and bool(recipe["mixed_precision"]), aug=augment_params(recipe["augment"]),
                  steps_per_epoch=math.ceil(data.n / int(recipe["batch_size"])), frozen_names=frozen_names,
                  frozen_modules=frozen_modules, ckpt=ckpt,
                  fingerprint={"recipe": recipe, "seed": int(seed), "n_train": data.n,
                               "n_val": 0 if data.y_val is None else len(data.y_val),
                               "label_sum": int(data.y_np.sum()),
                               **({} if data.targets is None else
                                  {"target_sum": round(float((data.targets * torch.arange(num_classes)).sum()), 3)})},
                  n_snapshots=int(recipe["snapshots"]) if snapshot_images is not None else 0,
                  snapshot_images=snapshot_images, has_val=data.has_val)
    state = _start_state(run, model, data.n, resuming, record_dynamics)
    _log(f"training {recipe['model']} ({sum(p.numel() for p in model.parameters()):,} params) on {data.n:,} images, "
         f"{recipe['epochs']} epochs, device {dev}{f' ({threads} threads)' if dev.type == 'cpu' else ''}", quiet)
    x_train_dev = data.x_train.to(dev) if dev.type == "cuda" else data.x_train
    t_start = time.perf_counter()
    for epoch in range(state.start_epoch, recipe["epochs"]):
        row, seconds = _train_epoch(run, state, data, x_train_dev, epoch)
        _validate(run, state, data, epoch, row)
        if _end_epoch(run, state, epoch, row, seconds, on_epoch, t_start):
            state.stopped_early = True
            break
    return _fit_result(run, state, pretrained)


def epochs_for_min_steps(recipe: dict[str, Any], n_train: int, quiet: bool = True) -> dict[str, Any]:
    """``recipe`` with ``epochs`` raised so that training takes at least ``min_steps`` optimizer steps on
    ``n_train`` images (unchanged when ``min_steps`` is 0 or already met; ``raw`` is resolved by
    train-eval from the split, see :func:`steps_before_cleaning`, and means 0 anywhere else)."""
    min_steps = recipe.get("min_steps") or 0
    steps_per_epoch = math.ceil(n_train / int(recipe["batch_size"]))
    need = math.ceil((0 if min_steps == "raw" else int(min_steps)) / max(steps_per_epoch, 1))
    if need <= int(recipe["epochs"]):
        return recipe
    _log(f"min_steps {recipe['min_steps']}: {need} epochs of {steps_per_epoch} steps instead of {recipe['epochs']} "
         f"({n_train:,} training images)", quiet)
    return recipe | {"epochs": need}


def steps_before_cleaning(recipe: dict[str, Any], n_before: int) -> int:
    """Optimizer steps of the recipe's epochs on ``n_before`` training images (a split before cleaning)."""
    return int(recipe["epochs"]) * math.ceil(int(n_before) / int(recipe["batch_size"]))


def _fit_result(run: _FitRun, state: _FitState, pretrained: dict[str, Any] | None) -> FitResult:
    """The trained model in eval mode (the best validation epoch's weights when there is a validation set)."""
    model, best, has_val = state.model, state.best, run.has_val
    if run.frozen_modules:
        _set_frozen(run.frozen_modules, False)
    if has_val and best["state"] is not None:
        model.load_state_dict(best["state"])
    model.eval()
    done = len(state.history)
    return FitResult(model=model, history=state.history,
                     dynamics=None if state.dynamics is None else state.dynamics[:done],
                     best_epoch=best["epoch"] if has_val else done,
                     images_per_s=round(state.seen_images / max(state.train_seconds, 1e-6), 1),
                     seconds=round(state.train_seconds, 2), stopped_early=state.stopped_early, recipe=run.recipe,
                     pretrained=pretrained,
                     snapshot_probs=None if state.snapshot_sum is None else state.snapshot_sum / run.n_snapshots)


def _save_checkpoint(ckpt: Path, fingerprint: dict, epoch: int, history: list, best: dict, model: nn.Module,
                     opt, sched, scaler, dynamics: np.ndarray | None) -> None:
    ckpt.mkdir(parents=True, exist_ok=True)
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(),
             "scheduler": sched.state_dict() if sched is not None else {},
             "scaler": scaler.state_dict(), "best_state": best["state"] or {}}
    if dynamics is not None:
        with atomic.atomic_path(ckpt / "dynamics.npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, dynamics[:epoch])
    with atomic.atomic_path(ckpt / "last.pt") as tmp:
        torch.save(state, tmp)
    atomic.write_json(ckpt / "last.json", {"epoch": epoch, "history": history, "best_epoch": best["epoch"],
                                           "best_val_acc": best["val_acc"], **fingerprint})


def _load_checkpoint(ckpt: Path, fingerprint: dict, model: nn.Module, opt, sched, scaler,
                     dev: torch.device) -> tuple[int, list, dict]:
    meta = json.loads((ckpt / "last.json").read_text(encoding="utf-8"))
    if isinstance(meta.get("recipe"), dict):  # a checkpoint from before a recipe key existed: its default
        meta["recipe"] = {k: v for k, v in DEFAULTS.items() if k not in meta["recipe"]} | meta["recipe"]
    for key in ("recipe", "seed", "n_train", "n_val", "label_sum"):
        if json.dumps(meta.get(key), sort_keys=True) != json.dumps(fingerprint[key], sort_keys=True, default=str):
            raise ResumeMismatch(f"{ckpt / 'last.json'}: checkpoint has a different {key} than this run; "
                                 f"start a new run (another name) or drop --resume")
    state = torch.load(ckpt / "last.pt", map_location=dev, weights_only=True)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    if sched is not None and state["scheduler"]:
        sched.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    best_state = state["best_state"] or None
    if best_state is not None:
        best_state = {k: v.cpu() for k, v in best_state.items()}
    best = {"epoch": meta["best_epoch"], "val_acc": meta["best_val_acc"], "state": best_state}
    return int(meta["epoch"]), list(meta["history"]), best


def save_model(model: nn.Module, folder: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model.pt`` (state_dict) and ``model.json`` (how to rebuild it) atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(folder / "model.pt") as tmp:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    spec = {"model": model.name, "num_classes": model.num_classes, "in_size": model.in_size,
            "image_size": int(getattr(model, "image_size", model.in_size)),
            "model_args": dict(getattr(model, "model_args", {})), **(extra or {})}
    atomic.write_json(folder / "model.json", spec)
    return folder / "model.pt"


def load_model(folder: str | Path, device: str = "cpu") -> nn.Module:
    """Rebuild a model saved by :func:`save_model` (``model_args`` from model.json)."""
    folder = Path(folder)
    spec = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    model = build_model(spec["model"], spec["num_classes"], in_size=spec["in_size"], **spec.get("model_args", {}))
    model.image_size = spec["image_size"]
    model.load_state_dict(torch.load(folder / "model.pt", map_location="cpu", weights_only=True))
    return model.to(resolve_device(device)).eval()


__all__ = ["FitResult", "fit", "predict_proba", "embed", "save_model", "load_model", "resolve_device",
           "class_weight_vector", "configure_threads", "ResumeMismatch", "freeze_plan"]
