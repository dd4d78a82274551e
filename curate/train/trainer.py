"""The one trainer of the toolkit: fit, predict_proba, embed (used by train-eval, mislabel, dedupe).

Arrays in, model out: images are uint8 (N, S, S) grey or (N, S, S, 3) colour, labels int64. CUDA when available
(mixed precision), else CPU with the threads of :mod:`curate.threads`. Same seed, same result on a CPU:
the shuffling and augmentation of epoch ``e`` come from generators seeded by (seed, e), so a
run resumed from a checkpoint continues exactly as the uninterrupted one would.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from curate import atomic
from curate.train.augment import MEAN, STD, augment_batch, augment_params, center_crop, normalise, to_float, tta_views
from curate.train.models import BackboneNet, build_from_recipe, build_model, load_backbone_checkpoint
from curate.train.recipes import DEFAULTS, load_recipe


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


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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


def _as_u8(images: np.ndarray) -> torch.Tensor:
    arr = np.array(images, dtype=np.uint8, order="C")  # writable copy (memmaps are read-only)
    if not (arr.ndim == 3 or (arr.ndim == 4 and arr.shape[-1] == 3)):
        raise ValueError(f"images must be (N, S, S) grey or (N, S, S, 3) colour uint8, got shape {arr.shape}")
    return torch.from_numpy(arr)


def _prepare(x_u8: torch.Tensor, device: torch.device) -> torch.Tensor:
    return to_float(x_u8.to(device, non_blocking=True))


class _InputNorm:
    """A model's input normalisation: the fixed grey mean/std for FER nets (colour is turned to
    luminance first), a backbone's per-channel mean/std (grey is replicated to three channels)."""

    _LUMA = (0.299, 0.587, 0.114)

    def __init__(self, model: nn.Module):
        self.channels = int(getattr(model, "in_channels", 1))
        mean, std = getattr(model, "input_mean", None), getattr(model, "input_std", None)
        self.per_channel = mean is not None
        self.mean = torch.tensor(mean).view(1, -1, 1, 1) if self.per_channel else MEAN
        self.std = torch.tensor(std).view(1, -1, 1, 1) if self.per_channel else STD

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 3 and self.channels == 1:
            x = (x * torch.tensor(self._LUMA, device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
        if not self.per_channel:
            return normalise(x)
        return normalise(x, self.mean.to(x.device), self.std.to(x.device))


def _finish(x: torch.Tensor, channels_last: bool, norm: _InputNorm | None = None) -> torch.Tensor:
    x = norm(x) if norm is not None else normalise(x)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


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


def _autocast(device: torch.device, enabled: bool):
    if device.type == "cuda" and enabled:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    import contextlib

    return contextlib.nullcontext()


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
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def fit(train_images: np.ndarray, train_labels: np.ndarray, recipe: str | dict[str, Any], *,
        val_images: np.ndarray | None = None, val_labels: np.ndarray | None = None, num_classes: int,
        seed: int = 0, device: str = "auto", quiet: bool = False, checkpoint_dir: str | Path | None = None,
        sample_weights: np.ndarray | None = None, record_dynamics: bool = False, resume: bool = False,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
        snapshot_images: np.ndarray | None = None) -> FitResult:
    """Train a model from ``recipe`` on uint8 images; returns the best-validation model.

    ``sample_weights`` multiply each image's loss (with the recipe's class weights).
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
    x_train = _as_u8(train_images)
    y_np = np.array(train_labels, dtype=np.int64)  # a private, writable copy
    n = len(y_np)
    if n == 0 or len(x_train) != n:
        raise ValueError(f"{len(x_train)} training images for {n} labels")
    if y_np.min() < 0 or y_np.max() >= num_classes:
        raise ValueError(f"training labels must lie in [0, {num_classes}), found {y_np.min()}..{y_np.max()}")
    y_train = torch.from_numpy(y_np)
    cw = class_weight_vector(y_np, num_classes, recipe["class_weights"])
    w_np = cw[y_np] * (np.ones(n, np.float32) if sample_weights is None else np.asarray(sample_weights, np.float32))
    weights = torch.from_numpy(w_np.astype(np.float32))
    has_val = val_images is not None and val_labels is not None and len(val_labels) > 0
    x_val = _as_u8(val_images) if has_val else None
    y_val = np.asarray(val_labels, dtype=np.int64) if has_val else None

    torch.manual_seed(seed)
    model = build_from_recipe(recipe, num_classes)
    model.image_size = int(recipe["image_size"])
    norm = _InputNorm(model)
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    resuming = ckpt is not None and resume and (ckpt / "last.pt").exists()
    pretrained = None
    if isinstance(model, BackboneNet):
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
    freeze_epochs = int(recipe["freeze_epochs"])
    try:
        frozen_names, frozen_modules = freeze_plan(model, recipe["freeze"]) if freeze_epochs else ([], [])
    except ValueError as exc:
        from curate.config import ConfigError

        raise ConfigError(f"recipe {exc}") from None
    channels_last = bool(recipe["channels_last"])
    model = model.to(dev, memory_format=torch.channels_last) if channels_last else model.to(dev)
    opt = _make_optimizer(model, recipe)
    bs = int(recipe["batch_size"])
    steps_per_epoch = math.ceil(n / bs)
    sched = _make_scheduler(opt, recipe, steps_per_epoch)
    use_amp = dev.type == "cuda" and bool(recipe["mixed_precision"])
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and not torch.cuda.is_bf16_supported())
    aug = augment_params(recipe["augment"])
    dynamics = np.zeros((recipe["epochs"], n), np.float32) if record_dynamics else None
    history: list[dict[str, Any]] = []
    best = {"epoch": 0, "val_acc": -1.0, "state": None}
    start_epoch = 0
    fingerprint = {"recipe": recipe, "seed": int(seed), "n_train": n, "n_val": 0 if y_val is None else len(y_val),
                   "label_sum": int(y_np.sum())}
    if resuming:
        start_epoch, history, best = _load_checkpoint(ckpt, fingerprint, model, opt, sched, scaler, dev)
        if dynamics is not None and (ckpt / "dynamics.npy").exists():
            dynamics[:start_epoch] = np.load(ckpt / "dynamics.npy")[:start_epoch]
        _log(f"resumed from {ckpt / 'last.pt'} after epoch {start_epoch}", quiet)

    _log(f"training {recipe['model']} ({sum(p.numel() for p in model.parameters()):,} params) on {n:,} images, "
         f"{recipe['epochs']} epochs, device {dev}{f' ({threads} threads)' if dev.type == 'cpu' else ''}", quiet)
    x_train_dev = x_train.to(dev) if dev.type == "cuda" else x_train
    t_start = time.perf_counter()
    train_seconds = sum(h["seconds"] for h in history)
    seen_images = sum(h["images"] for h in history)
    stopped_early = False
    patience = int(recipe["early_stopping"])
    small_loss_on = float(recipe["small_loss_drop"]) > 0
    n_snapshots = int(recipe["snapshots"]) if snapshot_images is not None else 0
    snapshot_sum: np.ndarray | None = None
    for epoch in range(start_epoch, recipe["epochs"]):
        gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + epoch)
        torch.manual_seed(int(seed) * 7_919 + epoch + 1)  # dropout
        perm = torch.randperm(n, generator=gen)
        model.train()
        if frozen_modules:
            frozen = epoch < freeze_epochs
            _set_frozen(frozen_modules, frozen)
            if frozen and epoch == start_epoch:
                _log(f"epochs 1-{freeze_epochs}: {', '.join(frozen_names)} frozen (only the rest trains)", quiet)
        t0 = time.perf_counter()
        loss_sum, correct, count = 0.0, 0, 0
        from curate.progress import progress

        bar = progress(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{recipe['epochs']}", quiet=quiet, unit="batch")
        for s in range(steps_per_epoch):
            idx = perm[s * bs:(s + 1) * bs]
            if len(idx) < 2 and s > 0:
                continue  # batch norm needs two samples
            x = _prepare(x_train_dev[idx.to(x_train_dev.device)], dev)
            x = _finish(augment_batch(x, aug, recipe["input_size"], recipe["image_size"], gen), channels_last, norm)
            y = y_train[idx].to(dev)
            w = weights[idx].to(dev)
            with _autocast(dev, use_amp):
                logits = model(x)
                losses = F.cross_entropy(logits.float(), y, reduction="none",
                                         label_smoothing=float(recipe["label_smoothing"]))
                if small_loss_on and epoch >= int(recipe["small_loss_warmup"]):
                    w = w * small_loss_mask(losses, float(recipe["small_loss_drop"]))
                loss = (losses * w).sum() / w.sum().clamp_min(1e-8)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            if sched is not None and recipe["schedule"] in ("onecycle", "cosine"):
                sched.step()
            with torch.no_grad():
                lf = logits.detach().float()
                pred = lf.argmax(1)
                correct += int((pred == y).sum())
                count += len(y)
                loss_sum += float(losses.detach().sum())
                if dynamics is not None:
                    given = lf.gather(1, y[:, None]).squeeze(1)
                    other = lf.scatter(1, y[:, None], float("-inf")).max(1).values
                    dynamics[epoch, idx.numpy()] = (given - other).cpu().numpy()
            bar.update(1)
            if s % 20 == 0:
                bar.set_postfix(loss=f"{loss_sum / max(count, 1):.3f}", acc=f"{correct / max(count, 1):.3f}",
                                ips=f"{count / max(time.perf_counter() - t0, 1e-6):.0f}")
        bar.close()
        seconds = time.perf_counter() - t0
        row = {"epoch": epoch + 1, "train_loss": loss_sum / max(count, 1), "train_acc": correct / max(count, 1),
               "lr": float(opt.param_groups[0]["lr"]), "seconds": round(seconds, 3), "images": count,
               "images_per_s": round(count / max(seconds, 1e-6), 1)}
        if has_val:
            vprobs = predict_proba(model, x_val.numpy(), tta=False, batch_size=int(recipe["eval_batch_size"]),
                                   device=str(dev))
            row["val_loss"] = float(-np.log(np.clip(vprobs[np.arange(len(y_val)), y_val], 1e-12, None)).mean())
            row["val_acc"] = float((vprobs.argmax(1) == y_val).mean())
            model.train()
        if n_snapshots and epoch >= recipe["epochs"] - n_snapshots:
            snap = predict_proba(model, snapshot_images, tta=False, batch_size=int(recipe["eval_batch_size"]),
                                 device=str(dev))
            snapshot_sum = snap if snapshot_sum is None else snapshot_sum + snap
            model.train()
        monitor = row.get("val_acc", row["train_acc"])
        if sched is not None and recipe["schedule"] == "plateau":
            sched.step(monitor)
        if monitor > best["val_acc"]:
            best = {"epoch": epoch + 1, "val_acc": monitor,
                    "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
        history.append(row)
        train_seconds += seconds
        seen_images += count
        remaining = (recipe["epochs"] - epoch - 1) * (train_seconds / max(1, len(history)))
        _log(f"epoch {epoch + 1}/{recipe['epochs']}  loss {row['train_loss']:.4f}  acc {row['train_acc']:.4f}"
             + (f"  val_loss {row['val_loss']:.4f}  val_acc {row['val_acc']:.4f}" if has_val else "")
             + f"  lr {row['lr']:.2e}  {row['images_per_s']:.0f} img/s  {seconds:.0f}s  ETA {_fmt_eta(remaining)}",
             quiet)
        if ckpt is not None:
            _save_checkpoint(ckpt, fingerprint, epoch + 1, history, best, model, opt, sched, scaler, dynamics)
        if on_epoch is not None:
            on_epoch(row)
        if patience and has_val and epoch + 1 - best["epoch"] >= patience:
            stopped_early = True
            _log(f"early stop: no val_acc gain for {patience} epochs (best epoch {best['epoch']})", quiet)
            break
        if recipe["max_minutes"] and (time.perf_counter() - t_start) / 60 >= float(recipe["max_minutes"]):
            stopped_early = True
            _log(f"stopped after max_minutes={recipe['max_minutes']}", quiet)
            break
    if frozen_modules:
        _set_frozen(frozen_modules, False)
    if has_val and best["state"] is not None:
        model.load_state_dict(best["state"])
    model.eval()
    done = len(history)
    return FitResult(model=model, history=history,
                     dynamics=None if dynamics is None else dynamics[:done],
                     best_epoch=best["epoch"] if has_val else done,
                     images_per_s=round(seen_images / max(train_seconds, 1e-6), 1),
                     seconds=round(train_seconds, 2), stopped_early=stopped_early, recipe=recipe,
                     pretrained=pretrained,
                     snapshot_probs=None if snapshot_sum is None else snapshot_sum / n_snapshots)


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


def _eval_sizes(model: nn.Module) -> tuple[int, int]:
    crop = int(getattr(model, "in_size", 48))
    return crop, int(getattr(model, "image_size", None) or crop)


@torch.no_grad()
def _batched(model: nn.Module, images: np.ndarray, fn: Callable[[torch.Tensor], torch.Tensor],
             batch_size: int, device: str) -> np.ndarray:
    dev = resolve_device(device)
    if next(model.parameters()).device != dev:
        model.to(dev)
    was_training = model.training
    model.eval()
    x_all = _as_u8(images)
    outs = []
    try:
        for start in range(0, len(x_all), batch_size):
            x = to_float(x_all[start:start + batch_size].to(dev))
            with _autocast(dev, True):
                outs.append(fn(x).float().cpu())
    finally:
        model.train(was_training)
    if not outs:
        return np.zeros((0, 0), np.float32)
    return torch.cat(outs).numpy().astype(np.float32)


def predict_proba(model: nn.Module, images: np.ndarray, *, tta: bool = False, batch_size: int = 512,
                  device: str = "auto") -> np.ndarray:
    """Class probabilities (N, C) float32; ``tta`` averages flip + shifted-crop views."""
    crop, image_size = _eval_sizes(model)
    channels_last = any(p.is_contiguous(memory_format=torch.channels_last) and p.ndim == 4
                        for p in model.parameters())
    norm = _InputNorm(model)

    def run(x: torch.Tensor) -> torch.Tensor:
        if not tta:
            return F.softmax(model(_finish(center_crop(x, crop, image_size), channels_last, norm)).float(), 1)
        views = tta_views(x, crop, image_size)
        probs = [F.softmax(model(_finish(v, channels_last, norm)).float(), 1) for v in views]
        return torch.stack(probs).mean(0)

    out = _batched(model, images, run, batch_size, device)
    return out.reshape(len(images), -1) if len(images) else np.zeros((0, model.num_classes), np.float32)


def embed(model: nn.Module, images: np.ndarray, *, batch_size: int = 512, device: str = "auto") -> np.ndarray:
    """Penultimate-layer embeddings (N, D) float32, L2-normalised."""
    crop, image_size = _eval_sizes(model)
    channels_last = any(p.is_contiguous(memory_format=torch.channels_last) and p.ndim == 4
                        for p in model.parameters())
    norm = _InputNorm(model)

    def run(x: torch.Tensor) -> torch.Tensor:
        return F.normalize(model.features(_finish(center_crop(x, crop, image_size), channels_last, norm)).float(),
                           dim=1)

    out = _batched(model, images, run, batch_size, device)
    return out.reshape(len(images), -1) if len(images) else np.zeros((0, model.embed_dim), np.float32)


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
