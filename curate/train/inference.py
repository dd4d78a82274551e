"""Inference with a trained net: the device, input normalisation, batched probabilities and embeddings.

Shared by training (validation), the expression model and the checks that score with a net; kept apart
from :mod:`curate.train.trainer` so that loading a model never imports the training loop.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from curate.train.augment import MEAN, STD, center_crop, normalise, to_float, tta_views


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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


def _autocast(device: torch.device, enabled: bool):
    if device.type == "cuda" and enabled:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    import contextlib

    return contextlib.nullcontext()


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


__all__ = ["resolve_device", "predict_proba", "embed"]
