"""Pair verification by image registration: align B onto A, score the aligned correlation.

Near copies made by cropping, shifting, rescaling or rotating a photo defeat global
descriptors on aligned faces (every FER face looks alike at low resolution). A candidate
pair (A, B) is therefore verified by fitting a similarity warp (shift, rotation, scale)
plus gain and bias that maps B onto A with batched Gauss-Newton (Lucas-Kanade) steps,
coarse to fine, and scoring the normalised cross-correlation of the central region
after alignment. True copies score ~0.97-1.0; distinct faces stay lower even after the
warp has been optimised for them. Everything runs batched over pairs in torch.
"""
from __future__ import annotations

import numpy as np


def _prepare(images: np.ndarray, size: int, blur: float):
    """uint8 (P, H, W) -> float tensor (P, 1, size, size), blurred and resized with area averaging."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).unsqueeze(1) / 255.0
    if blur > 0:
        radius = max(1, int(round(2.5 * blur)))
        t = torch.arange(-radius, radius + 1, dtype=torch.float32)
        k = torch.exp(-0.5 * (t / blur) ** 2)
        k = k / k.sum()
        x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
        x = F.conv2d(x, k.view(1, 1, 1, -1))
        x = F.conv2d(x, k.view(1, 1, -1, 1))
    return F.interpolate(x, size=(size, size), mode="area")


def _grid(params, size: int):
    """Sampling grid for similarity params (P, 4) = (tx, ty, a, b) in normalised coordinates."""
    import torch

    lin = torch.linspace(-1.0, 1.0, size)
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    tx, ty, a, b = (params[:, i].view(-1, 1, 1) for i in range(4))
    gx = (1 + a) * xx - b * yy + tx
    gy = b * xx + (1 + a) * yy + ty
    return torch.stack([gx, gy], dim=-1), xx, yy


def _central_mask(size: int, border: float):
    import torch

    m = torch.zeros(size, size)
    k = int(round(size * border))
    m[k:size - k, k:size - k] = 1.0
    return m


def _ncc(a, b, mask):
    """Masked normalised cross-correlation per pair (P,)."""
    w = mask.sum()
    am = (a * mask).sum((1, 2, 3), keepdim=True) / w
    bm = (b * mask).sum((1, 2, 3), keepdim=True) / w
    da, db = (a - am) * mask, (b - bm) * mask
    num = (da * db).sum((1, 2, 3))
    den = _sqrt((da * da).sum((1, 2, 3)) * (db * db).sum((1, 2, 3))) + 1e-8
    return num / den


def _sqrt(x):
    import torch

    return torch.sqrt(torch.clamp(x, min=0.0))


def _lk_level(A, B, params, size: int, iters: int, mask, damping: float = 1e-4):
    """Gauss-Newton refinement of the similarity warp at one pyramid level; returns params."""
    import torch
    import torch.nn.functional as F

    P = A.shape[0]
    m = mask.view(1, -1)
    a_flat = A.view(P, -1)
    for _ in range(iters):
        grid, xx, yy = _grid(params, size)
        Bw = F.grid_sample(B, grid, mode="bilinear", padding_mode="border", align_corners=True)
        gy_img, gx_img = torch.gradient(Bw[:, 0], dim=(1, 2))
        scale = (size - 1) / 2.0  # pixels per normalised unit
        gx, gy = (gx_img * scale).view(P, -1), (gy_img * scale).view(P, -1)
        x, y = xx.reshape(1, -1), yy.reshape(1, -1)
        bw = Bw.view(P, -1)
        # residual model: A ~ g * Bw(p + dp) + c ; unknowns dp (4), dg, dc
        J = torch.stack([gx, gy, gx * x + gy * y, -gx * y + gy * x, bw, torch.ones_like(bw)], dim=2)
        # gain and bias: least squares on this iterate, refined jointly with the warp
        mean_a = (a_flat * m).sum(1, keepdim=True) / m.sum()
        mean_b = (bw * m).sum(1, keepdim=True) / m.sum()
        var_b = (((bw - mean_b) * m) ** 2).sum(1, keepdim=True) + 1e-8
        gain = (((a_flat - mean_a) * (bw - mean_b) * m).sum(1, keepdim=True)) / var_b
        bias = mean_a - gain * mean_b
        r = (a_flat - (gain * bw + bias)) * m
        Jg = torch.cat([J[:, :, :4] * gain.unsqueeze(2), J[:, :, 4:]], dim=2)
        Jg = Jg * m.unsqueeze(2)
        H = torch.bmm(Jg.transpose(1, 2), Jg) + damping * torch.eye(6).unsqueeze(0)
        g = torch.bmm(Jg.transpose(1, 2), r.unsqueeze(2))
        delta = torch.linalg.solve(H, g).squeeze(2)
        params = params + delta[:, :4]
        params[:, :2] = params[:, :2].clamp(-0.3, 0.3)
        params[:, 2:] = params[:, 2:].clamp(-0.25, 0.25)
    return params


def aligned_similarity(images_a: np.ndarray, images_b: np.ndarray, *, size: int = 32, coarse_size: int = 16,
                       blur: float = 1.0, iters: int = 8, coarse_iters: int = 8, border: float = 0.12,
                       rotations: tuple[float, ...] = (0.0,), coarse_reject: float = -1.0,
                       batch_size: int = 256, threads: int | None = 1) -> np.ndarray:
    """Best aligned NCC (P,) between pairs of grey uint8 images (P, H, W) after warping B onto A.

    ``rotations`` (degrees) are starting points; the best-scoring start wins. Pairs whose
    coarse-level aligned NCC is below ``coarse_reject`` skip the fine level and keep the
    coarse score (a cheap first cut). ``threads`` caps torch's intra-op threads (small
    batches run faster single-threaded; None leaves torch's setting).
    """
    import torch
    import torch.nn.functional as F

    n = len(images_a)
    out = np.zeros(n, np.float32)
    mask_f = _central_mask(size, border)
    mask_c = _central_mask(coarse_size, border)
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            _run(images_a, images_b, out, size, coarse_size, blur, iters, coarse_iters, mask_f, mask_c,
                 rotations, coarse_reject, batch_size)
    finally:
        torch.set_num_threads(previous)
    return out


def _run(images_a, images_b, out, size, coarse_size, blur, iters, coarse_iters, mask_f, mask_c, rotations,
         coarse_reject, batch_size) -> None:
    import torch
    import torch.nn.functional as F

    n = len(images_a)
    for s in range(0, n, batch_size):
        a_np, b_np = images_a[s:s + batch_size], images_b[s:s + batch_size]
        A, B = _prepare(a_np, size, blur), _prepare(b_np, size, blur)
        Ac, Bc = F.interpolate(A, size=coarse_size, mode="area"), F.interpolate(B, size=coarse_size, mode="area")
        best = torch.full((len(A),), -1.0)
        for rot in rotations:
            params = torch.zeros(len(A), 4)
            th = np.deg2rad(rot)
            params[:, 2] = float(np.cos(th) - 1.0)
            params[:, 3] = float(np.sin(th))
            params = _lk_level(Ac, Bc, params, coarse_size, coarse_iters, mask_c)
            grid, _, _ = _grid(params, coarse_size)
            Bw = F.grid_sample(Bc, grid, mode="bilinear", padding_mode="border", align_corners=True)
            coarse = _ncc(Ac, Bw, mask_c.view(1, 1, coarse_size, coarse_size))
            score = coarse.clone()
            go = torch.nonzero(coarse >= coarse_reject).view(-1)
            if len(go):
                p_fine = _lk_level(A[go], B[go], params[go], size, iters, mask_f)
                grid, _, _ = _grid(p_fine, size)
                Bw = F.grid_sample(B[go], grid, mode="bilinear", padding_mode="border", align_corners=True)
                score[go] = _ncc(A[go], Bw, mask_f.view(1, 1, size, size))
            best = torch.maximum(best, score)
        out[s:s + len(A)] = best.numpy()
