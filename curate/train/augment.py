"""Batched tensor augmentation and evaluation views for grey faces (fast on a CPU).

One ``affine_grid`` + ``grid_sample`` call per batch does flip, rotation, shift, zoom and the
random crop together; brightness/contrast/gamma are elementwise. No per-image Python loop.
Inputs are float tensors (B, K, S, S) in [0, 1] (K = 1 grey or 3 colour channels; colour
jitter acts on all channels alike); outputs (B, K, C, C) with C the crop size.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

LEVELS: dict[str, dict[str, float]] = {
    "none": {"flip": 0.0, "rotate": 0.0, "shift": 0.0, "zoom": 0.0, "brightness": 0.0, "contrast": 0.0,
             "gamma": 0.0, "erase": 0.0},
    "low": {"flip": 0.5, "rotate": 5.0, "shift": 0.04, "zoom": 0.05, "brightness": 0.0, "contrast": 0.0,
            "gamma": 0.0, "erase": 0.0},
    "mid": {"flip": 0.5, "rotate": 10.0, "shift": 0.08, "zoom": 0.10, "brightness": 0.1, "contrast": 0.1,
            "gamma": 0.1, "erase": 0.0},
    "high": {"flip": 0.5, "rotate": 15.0, "shift": 0.10, "zoom": 0.20, "brightness": 0.2, "contrast": 0.2,
             "gamma": 0.2, "erase": 0.25},
}
"""Augmentation strength per level: flip probability, max rotation (degrees), max shift
(fraction of the side), max zoom (+/- fraction), brightness/contrast/gamma jitter, and the
probability of erasing one random rectangle (random erasing)."""

MEAN, STD = 0.5, 0.25
"""Fixed input normalisation (FER2013 grey levels have mean ~0.51, std ~0.25)."""


def augment_params(level: str | dict[str, Any]) -> dict[str, float]:
    """The parameters of a level name, or a dict of parameters (missing keys from ``none``)."""
    if isinstance(level, dict):
        base = dict(LEVELS[str(level.get("level", "none"))])
        base.update({k: float(v) for k, v in level.items() if k != "level"})
        return base
    if level not in LEVELS:
        raise ValueError(f"unknown augmentation level {level!r}; known: {', '.join(LEVELS)}")
    return dict(LEVELS[level])


def to_float(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, S, S) grey -> float (B, 1, S, S); (B, S, S, 3) colour -> (B, 3, S, S); in [0, 1]."""
    if images_u8.ndim == 4:
        return images_u8.permute(0, 3, 1, 2).float().div_(255.0)
    return images_u8.unsqueeze(1).float().div_(255.0)


def normalise(x: torch.Tensor, mean: torch.Tensor | float = MEAN, std: torch.Tensor | float = STD) -> torch.Tensor:
    """Mean/std normalisation: the fixed grey one, or per channel with (1, 3, 1, 1) tensors (a grey
    batch then becomes three identical, separately normalised channels)."""
    return (x - mean) / std


def _resize(x: torch.Tensor, side: int) -> torch.Tensor:
    if x.shape[-1] == side:
        return x
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)


def center_crop(x: torch.Tensor, crop: int, image_size: int) -> torch.Tensor:
    """Resize to ``image_size`` (when different) then take the central ``crop`` square."""
    x = _resize(x, image_size)
    off = (image_size - crop) // 2
    return x[..., off:off + crop, off:off + crop]


def augment_batch(x: torch.Tensor, params: dict[str, float], crop: int, image_size: int,
                  generator: torch.Generator) -> torch.Tensor:
    """Randomly augment a batch (B, 1, S, S) in [0, 1]; returns (B, 1, crop, crop) in [0, 1]."""
    x = _resize(x, image_size)
    b = x.shape[0]
    geometric = any(params[k] > 0 for k in ("flip", "rotate", "shift", "zoom")) or crop != image_size

    def uniform(lo: float, hi: float) -> torch.Tensor:
        # random numbers come from the (CPU) generator, then move to the batch's device
        return (torch.rand(b, generator=generator) * (hi - lo) + lo).to(x.device)

    if geometric:
        angle = uniform(-params["rotate"], params["rotate"]) * (math.pi / 180.0)
        zoom = uniform(1.0 - params["zoom"], 1.0 + params["zoom"])
        # a crop is a zoom-in by crop/image_size, shifted anywhere inside the image
        frac = crop / image_size
        slack = 1.0 - frac
        tx = uniform(-1, 1) * (slack + 2 * params["shift"])
        ty = uniform(-1, 1) * (slack + 2 * params["shift"])
        flip = torch.where(torch.rand(b, generator=generator) < params["flip"], -1.0, 1.0).to(x.device)
        scale = frac / zoom
        cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
        theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1),
                             torch.stack([sin * flip, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, [b, 1, crop, crop], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if params["gamma"] > 0:
        gamma = torch.exp(uniform(-params["gamma"], params["gamma"])).view(b, 1, 1, 1)
        x = x.clamp(1e-4, 1.0).pow(gamma)
    if params["contrast"] > 0:
        c = uniform(1 - params["contrast"], 1 + params["contrast"]).view(b, 1, 1, 1)
        mean = x.mean(dim=(2, 3), keepdim=True)
        x = (x - mean) * c + mean
    if params["brightness"] > 0:
        x = x + uniform(-params["brightness"], params["brightness"]).view(b, 1, 1, 1)
    if params["erase"] > 0:
        x = _random_erase(x, params["erase"], generator)
    return x.clamp(0.0, 1.0)


def _random_erase(x: torch.Tensor, prob: float, generator: torch.Generator) -> torch.Tensor:
    """Fill one random rectangle (10-30 % of each side) with mid grey in a ``prob`` share of images."""
    b, _, h, w = x.shape
    dev = x.device
    do = (torch.rand(b, generator=generator) < prob).to(dev)
    eh = ((torch.rand(b, generator=generator) * 0.2 + 0.1) * h).to(dev)
    ew = ((torch.rand(b, generator=generator) * 0.2 + 0.1) * w).to(dev)
    y0 = torch.rand(b, generator=generator).to(dev) * (h - eh)
    x0 = torch.rand(b, generator=generator).to(dev) * (w - ew)
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    mask = ((rows >= y0.view(b, 1, 1)) & (rows < (y0 + eh).view(b, 1, 1))
            & (cols >= x0.view(b, 1, 1)) & (cols < (x0 + ew).view(b, 1, 1)) & do.view(b, 1, 1))
    return torch.where(mask.unsqueeze(1), torch.full_like(x, 0.5), x)


def tta_views(x: torch.Tensor, crop: int, image_size: int) -> list[torch.Tensor]:
    """Test-time views: centre, its mirror, and four shifted crops with their mirrors (10 views).

    With ``crop == image_size`` the shifted views move the face by 1/12 of the side (border
    replicated), so TTA still averages over small translations.
    """
    x = _resize(x, image_size)
    views = [center_crop(x, crop, image_size)]
    if crop < image_size:
        off = image_size - crop
        for oy, ox in ((0, 0), (0, off), (off, 0), (off, off)):
            views.append(x[..., oy:oy + crop, ox:ox + crop])
    else:
        d = max(1, image_size // 12)
        padded = F.pad(x, (d, d, d, d), mode="replicate")
        for oy, ox in ((0, 0), (0, 2 * d), (2 * d, 0), (2 * d, 2 * d)):
            views.append(padded[..., oy:oy + crop, ox:ox + crop])
    return views + [torch.flip(v, dims=[-1]) for v in views]
