"""Embedders for near-duplicate search: grey uint8 images (N, S, S) in, L2-normalised float32 (N, D) out.

* ``PixelEmbedder``: no download; blurred low-resolution grey layout (z-normalised, so
  brightness/contrast/gamma changes barely move it) plus a coarse gradient-orientation
  histogram. Used as a candidate generator; candidates are then verified by registration
  (see :mod:`curate.dedupe.verify`).
* ``ClipEmbedder``: an open_clip image tower, from a pretrained tag or a local checkpoint
  file (works offline), on CPU or GPU, batched.
* ``CnnEmbedder``: penultimate features of a FER CNN saved by ``curate.train.trainer.save_model``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from curate.errors import ConfigError

if TYPE_CHECKING:
    from curate.settings import DedupeSettings


class Embedder(Protocol):
    """Maps grey uint8 images (N, S, S) to L2-normalised float32 embeddings (N, D)."""

    name: str

    def embed(self, images: np.ndarray) -> np.ndarray:
        ...


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-8)


class PixelEmbedder:
    """Blurred ``grid x grid`` z-normalised layout + ``cells x cells x bins`` gradient-orientation histogram."""

    name = "pixel"

    def __init__(self, *, grid: int, blur: float, hog_weight: float, cells: int = 4, bins: int = 8,
                 batch_size: int = 4096):
        self.grid, self.blur, self.cells, self.bins = grid, blur, cells, bins
        self.hog_weight, self.batch_size = hog_weight, batch_size

    def embed(self, images: np.ndarray) -> np.ndarray:
        n = len(images)
        dim = self.grid ** 2 + (self.cells ** 2 * self.bins if self.hog_weight > 0 else 0)
        out = np.zeros((n, dim), np.float32)
        for s in range(0, n, self.batch_size):
            out[s:s + self.batch_size] = self._embed(np.asarray(images[s:s + self.batch_size]))
        return out

    def _embed(self, images: np.ndarray) -> np.ndarray:
        x = images.astype(np.float32)
        n, h, w = x.shape
        # blur then block mean is linear: one projection per axis, (grid, h) and (grid, w); stacked small products
        ph, pw = _layout_projection(h, self.grid, self.blur), _layout_projection(w, self.grid, self.blur)
        layout = np.matmul(ph, np.matmul(x, np.ascontiguousarray(pw.T))).reshape(n, -1)
        layout -= layout.mean(axis=1, keepdims=True)
        parts = [_l2(layout)]
        if self.hog_weight > 0:
            from scipy.ndimage import gaussian_filter

            if self.blur > 0:
                x = gaussian_filter(x, sigma=(0, self.blur, self.blur), mode="nearest")
            parts.append(self.hog_weight * _l2(_orientation_histogram(x, self.cells, self.bins)))
        return _l2(np.concatenate(parts, axis=1))


def _layout_projection(size: int, grid: int, blur: float) -> np.ndarray:
    """(grid, size) float32 matrix of a Gaussian blur along one axis (scipy's ``gaussian_filter``
    weights, radius int(4 sigma + 0.5), edges replicated) followed by :func:`_block_mean`'s area average."""
    from curate.dedupe.verify import gaussian_blur_matrix

    blur_m = gaussian_blur_matrix(size, blur, int(4.0 * blur + 0.5))
    f = size // grid
    mean_m = np.zeros((grid, size))
    for g in range(grid):
        mean_m[g, g * f:(g + 1) * f] = 1.0 / f
    return (mean_m @ blur_m).astype(np.float32)


def _block_mean(x: np.ndarray, grid: int) -> np.ndarray:
    """Area-average (N, H, W) down to (N, grid, grid) (crops the remainder when H % grid != 0)."""
    n, h, w = x.shape
    fh, fw = h // grid, w // grid
    x = x[:, :fh * grid, :fw * grid]
    return x.reshape(n, grid, fh, grid, fw).mean(axis=(2, 4))


def _orientation_histogram(x: np.ndarray, cells: int, bins: int) -> np.ndarray:
    """Magnitude-weighted unsigned gradient-orientation histograms on a cells x cells grid."""
    gy, gx = np.gradient(x, axis=(1, 2))
    mag = np.hypot(gx, gy)
    ang = np.mod(np.arctan2(gy, gx), np.pi)
    idx = np.minimum((ang / np.pi * bins).astype(np.int64), bins - 1)
    n, h, w = x.shape
    hist = np.zeros((n, bins, h, w), np.float32)
    np.put_along_axis(hist, idx[:, None], mag[:, None], axis=1)
    return _block_mean(hist.reshape(n * bins, h, w), cells).reshape(n, bins * cells * cells)


class ClipEmbedder:
    """open_clip image embeddings.

    ``pretrained`` is an open_clip tag (needs the weights cached or a network) or a local
    checkpoint path; None gives random weights (tests only). Grey images are replicated to
    RGB, resized to the model's input size (bicubic) and normalised with its mean/std.
    """

    name = "clip"

    def __init__(self, model: str, *, pretrained: str | None, device: str, batch_size: int):
        import open_clip
        import torch

        if pretrained and not Path(pretrained).exists() and ("/" in pretrained or pretrained.endswith((".pt", ".bin", ".safetensors"))):
            raise ConfigError(f"open_clip checkpoint {pretrained}: file not found")
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.model, _, _ = open_clip.create_model_and_transforms(model, pretrained=pretrained or None,
                                                                  device=self.device)
        self.model.eval()
        cfg = getattr(self.model.visual, "preprocess_cfg", {}) or {}
        size = cfg.get("size", getattr(self.model.visual, "image_size", 224))
        self.size = tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))
        self.mean = torch.tensor(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg.get("std", open_clip.OPENAI_DATASET_STD)).view(1, 3, 1, 1)
        self.batch_size = batch_size

    def embed(self, images: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        outs = []
        with torch.no_grad():
            for s in range(0, len(images), self.batch_size):
                x = torch.from_numpy(np.asarray(images[s:s + self.batch_size], np.float32) / 255.0).unsqueeze(1)
                x = F.interpolate(x, size=self.size, mode="bicubic", align_corners=False).clamp(0, 1)
                x = ((x.expand(-1, 3, -1, -1) - self.mean) / self.std).to(self.device)
                outs.append(self.model.encode_image(x).float().cpu().numpy())
        dim = outs[0].shape[1] if outs else 0
        return _l2(np.concatenate(outs) if outs else np.zeros((0, dim), np.float32))


class CnnEmbedder:
    """Penultimate features of a FER CNN folder written by ``curate.train.trainer.save_model``."""

    name = "cnn"

    def __init__(self, checkpoint: str | Path, *, device: str, batch_size: int = 512):
        from curate.train.trainer import load_model

        folder = Path(checkpoint)
        if not (folder / "model.json").exists():
            raise ConfigError(f"{folder}: no model.json/model.pt from curate train (save_model)")
        self.model = load_model(folder, device="cpu" if device == "auto" else device)
        self.device, self.batch_size = device, batch_size

    def embed(self, images: np.ndarray) -> np.ndarray:
        from curate.train.trainer import embed

        return _l2(embed(self.model, np.asarray(images, np.uint8), batch_size=self.batch_size, device=self.device))


def make_embedder(kind: str | None, cfg: DedupeSettings) -> Embedder | None:
    """The embedder named ``kind`` (pixel | clip | cnn | none) built from its settings section."""
    if kind in (None, "none", ""):
        return None
    if kind == "pixel":
        p = cfg.pixel
        return PixelEmbedder(grid=p.grid, blur=p.blur, hog_weight=p.hog_weight)
    if kind == "clip":
        c = cfg.clip
        return ClipEmbedder(c.model, pretrained=c.pretrained, device=c.device, batch_size=c.batch_size)
    if kind == "cnn":
        if not cfg.cnn.checkpoint:
            raise ConfigError("embedder cnn needs cnn.checkpoint (a folder written by curate train)")
        return CnnEmbedder(cfg.cnn.checkpoint, device=cfg.cnn.device)
    raise ConfigError(f"unknown embedder {kind!r}; choose pixel, clip, cnn or none")


def batch_of(kind: str, cfg: DedupeSettings) -> int:
    """The batch size the embedder ``kind`` works in (chunks sent to workers are multiples of it,
    so every batch holds the same images whichever engine runs it)."""
    if kind == "pixel":
        return 4096
    if kind == "clip":
        return int(cfg.clip.batch_size)
    return 512


@dataclass(frozen=True, eq=False)
class EmbedChunks:
    """Engine factory of the embeddings: builds the embedder once per worker; an item ``(start, stop,
    mirrored)`` -> the embeddings of ``images[start:stop]`` (or of their mirror images)."""

    kind: str
    cfg: DedupeSettings
    images: np.ndarray

    def __call__(self):
        embedder = make_embedder(self.kind, self.cfg)

        def embed(item: tuple[int, int, bool]) -> np.ndarray:
            start, stop, mirrored = item
            part = np.asarray(self.images[start:stop])
            return embedder.embed(np.ascontiguousarray(part[:, :, ::-1]) if mirrored else part)

        return embed


def embed_images(kind: str, cfg: DedupeSettings, images: np.ndarray, *, engine, mirror: bool = False
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """``(embeddings, embeddings of the mirror images or None)`` of ``images`` by the embedder ``kind``,
    on ``engine``: locally one call over all images (as the embedder always ran), remotely chunks of
    whole batches spread over the workers (equal results: each batch holds the same images)."""
    n = len(images)
    if engine.is_local:
        items = [(0, n, False)] + ([(0, n, True)] if mirror else [])
    else:
        images = np.ascontiguousarray(images)
        step = batch_of(kind, cfg) * max(1, 4096 // batch_of(kind, cfg))
        items = [(s, min(n, s + step), m) for m in ([False, True] if mirror else [False]) for s in range(0, n, step)]
    parts = list(engine.map_items(EmbedChunks(kind, cfg, images), items, batch_size=1, workers=1, threads=1))
    plain = [p for p, (_, _, m) in zip(parts, items) if not m]
    flipped = [p for p, (_, _, m) in zip(parts, items) if m]
    return np.concatenate(plain), (np.concatenate(flipped) if mirror else None)
