"""Pair verification by image registration: align B onto A, score the aligned correlation.

Near copies made by cropping, shifting, rescaling or rotating a photo defeat global
descriptors on aligned faces (every FER face looks alike at low resolution). A candidate
pair (A, B) is therefore verified by fitting a similarity warp (shift, rotation, scale)
plus gain and bias that maps B onto A with batched Gauss-Newton (Lucas-Kanade) steps,
coarse to fine, and scoring the normalised cross-correlation of the central region
after alignment. True copies score ~0.97-1.0; distinct faces stay lower even after the
warp has been optimised for them. Everything runs batched over pairs in torch.

Speed: :func:`verify_pairs` blurs and resizes every image once (not once per pair it takes
part in; blur and area resize are one matrix product per axis), and each Gauss-Newton step
works on the central region only (the score's region; B is sampled on it plus a one-pixel
ring for the central-difference gradient), with the Jacobian and the residual laid out
(pairs, 7, pixels) so that one batched product gives the normal equations. A pair leaves the
iteration once it has converged (its last step moved the warp by less than ``tol`` pixels of
the level) or, at the fine level, once its NCC after k steps is below ``fine_reject[k]`` (a
pair that ends above ``min_aligned_ncc`` is far above these early values). Batches of pairs
run side by side on curate's thread count (:func:`curate.threads.resolve_threads`), one torch
thread each.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from curate.errors import ConfigError

CHUNK_PAIRS = 65_536
"""Candidate pairs registered per chunk (:func:`verify_pairs`): at most twice as many images prepared
(5 KB each), about 0.6 GB at worst."""


def prepare(images: np.ndarray, size: int = 32, coarse_size: int = 16, blur: float = 1.0, *,
            mirror: bool = False):
    """uint8 (N, H, W) -> (fine (N, 1, size, size), coarse (N, 1, coarse_size, coarse_size)) float tensors.

    Grey values / 255, a separable Gaussian blur (radius round(2.5 sigma), replicated edges)
    and area resizing to ``size`` (and from there to ``coarse_size``): all linear and
    separable, so each level is one (level, H) and one (level, W) matrix product per image.
    ``mirror`` prepares the horizontally flipped images (the flip is folded into the matrix).
    """
    import torch

    images = np.asarray(images)
    fine = np.empty((len(images), size, size), np.float32)
    coarse = np.empty((len(images), coarse_size, coarse_size), np.float32)
    _prepare_into(fine, coarse, 0, images, blur, mirror)
    return torch.from_numpy(fine).unsqueeze(1), torch.from_numpy(coarse).unsqueeze(1)


def _prepare_into(fine: np.ndarray, coarse: np.ndarray, start: int, images: np.ndarray, blur: float, mirror: bool,
                  batch_size: int = 1024) -> None:
    """:func:`prepare` ``images`` into rows ``start:`` of the arrays ``fine`` and ``coarse``."""
    n = len(images)
    if n == 0:
        return
    h, w = images.shape[1:]
    size, coarse_size = fine.shape[1], coarse.shape[1]
    fine_h, fine_w = _prepare_matrix(h, size, blur) / 255.0, _prepare_matrix(w, size, blur)
    coarse_h, coarse_w = _area_matrix(size, coarse_size) @ fine_h, _area_matrix(size, coarse_size) @ fine_w
    if mirror:
        fine_w, coarse_w = fine_w[:, ::-1], coarse_w[:, ::-1]
    mats = [(np.ascontiguousarray(m_h, np.float32), np.ascontiguousarray(m_w.T, np.float32))
            for m_h, m_w in ((fine_h, fine_w), (coarse_h, coarse_w))]
    for s in range(0, n, batch_size):
        x = np.asarray(images[s:s + batch_size], np.float32)
        for out, (m_h, m_w_t) in zip((fine, coarse), mats):
            rows = out[start + s:start + s + len(x)]
            np.matmul(m_h, np.matmul(x, m_w_t), out=rows)  # stacked small products (no BLAS threads)


def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) area averaging along one axis (torch's ``interpolate(mode="area")`` bins)."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        lo, hi = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


def gaussian_blur_matrix(n: int, blur: float, radius: int) -> np.ndarray:
    """(n, n) float64 matrix of a 1-D Gaussian blur of ``blur`` sigma over ``radius`` taps on each side
    (weights normalised, edges replicated); the identity when ``blur`` is 0."""
    if blur <= 0:
        return np.eye(n)
    t = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (t / blur) ** 2)
    weights /= weights.sum()
    m = np.zeros((n, n))
    cols = np.clip(np.arange(n)[:, None] + t[None, :], 0, n - 1)
    np.add.at(m, (np.repeat(np.arange(n), len(t)), cols.ravel()), np.tile(weights, n))
    return m


def _prepare_matrix(n_in: int, size: int, blur: float) -> np.ndarray:
    """(size, n_in): Gaussian blur (radius round(2.5 sigma), edges replicated), then area resizing."""
    return _area_matrix(n_in, size) @ gaussian_blur_matrix(n_in, blur, max(1, int(round(2.5 * blur))))


class _Level:
    """Sampling coordinates of one pyramid level: the central region (border cut off) plus a ring."""

    def __init__(self, size: int, border: float):
        import torch

        k = int(round(size * border))
        if k < 1 or size - 2 * k < 2:
            raise ConfigError(f"border {border} at size {size}: keep at least one pixel of border and two inside")
        lin = torch.linspace(-1.0, 1.0, size)[k - 1:size - k + 1]  # the region and a one-pixel ring
        yy, xx = torch.meshgrid(lin, lin, indexing="ij")
        self.ring = _points(xx, yy)
        self.inner = _points(xx[1:-1, 1:-1], yy[1:-1, 1:-1])
        self.x = xx[1:-1, 1:-1].reshape(1, -1)
        self.y = yy[1:-1, 1:-1].reshape(1, -1)
        self.crop = slice(k, size - k)
        self.size = size
        self.half_scale = 0.5 * (size - 1) / 2.0  # central difference / 2, in pixels per normalised unit


def _points(xx, yy):
    """Homogeneous sampling points (3, h * w) = rows x, y, 1, and the grid shape (h, w)."""
    import torch

    return torch.stack([xx.reshape(-1), yy.reshape(-1), torch.ones(xx.numel())]), tuple(xx.shape)


def _sample(B, params, points):
    """B (P, 1, S, S) sampled (bilinear, border padding) at ``points`` moved by the similarity warp
    params (P, 4) = (tx, ty, a, b): x' = (1 + a) x - b y + tx, y' = b x + (1 + a) y + ty."""
    import torch
    import torch.nn.functional as F

    base, (h, w) = points
    P = len(params)
    tx, ty, a, b = params.unbind(1)
    theta = torch.stack([1 + a, -b, tx, b, 1 + a, ty], 1).view(P * 2, 3)  # the warp's two rows per pair
    grid = torch.mm(theta, base).view(P, 2, h * w).transpose(1, 2).reshape(P, h, w, 2)
    return F.grid_sample(B, grid, mode="bilinear", padding_mode="border", align_corners=True)[:, 0]


def _lk_level(A, B, params, level: _Level, iters: int, *, tol: float = 0.0, reject: tuple[float, ...] = (),
              damping: float = 1e-4):
    """Gauss-Newton refinement of the similarity warp at one pyramid level; returns params.

    Residual model on the central region: A ~ g * Bw(p + dp) + c; unknowns dp (4), dg, dc.
    Gain and bias are re-fitted by least squares at every iterate and refined jointly.
    A pair stops early when its last step moved no point of the region by ``tol`` pixels or
    more (converged), or when its NCC after k steps is below ``reject[k]`` (hopeless); a
    stopped pair keeps the warp reached there. The rest go on, up to ``iters`` steps.
    """
    import torch

    params = params.clone()
    h, w = level.inner[1]
    a_c = A[:, 0, level.crop, level.crop].reshape(len(A), -1)
    a_c = a_c - a_c.mean(1, keepdim=True)
    idx = torch.arange(len(A))  # the pairs still moving, and their data
    p = params.clone()
    buf = torch.empty(len(A), 7, h * w)  # rows: the Jacobian (6), then the residual: one product gives H and J^T r
    buf[:, 5] = 1.0
    eye = torch.zeros(1, 7, 7)
    eye[0, range(6), range(6)] = damping
    pixels = (level.size - 1) / 2.0  # pixels per normalised unit
    for step in range(iters):
        Bw = _sample(B, p, level.ring)  # (P, h + 2, w + 2)
        bw = Bw[:, 1:-1, 1:-1].reshape(len(p), -1)
        b_c = bw - bw.mean(1, keepdim=True)
        ab, bb = (a_c * b_c).sum(1, keepdim=True), (b_c * b_c).sum(1, keepdim=True)
        if step < len(reject):  # the NCC at this warp (the score, were the pair to stop here)
            ncc = ab[:, 0] / (torch.sqrt(torch.clamp((a_c * a_c).sum(1) * bb[:, 0], min=0.0)) + 1e-8)
            go = ncc >= reject[step]
            if not bool(go.all()):
                idx, p, B, a_c, Bw, bw, b_c, ab, bb = (t[go] for t in (idx, p, B, a_c, Bw, bw, b_c, ab, bb))
                if len(idx) == 0:
                    break
        P = len(idx)
        J = buf[:P]
        Jv = J.view(P, 7, h, w)
        gx, gy, r = J[:, 0], J[:, 1], J[:, 6]
        J[:, 4] = bw
        torch.sub(Bw[:, 1:-1, 2:], Bw[:, 1:-1, :-2], out=Jv[:, 0])  # central differences (x 2)
        torch.sub(Bw[:, 2:, 1:-1], Bw[:, :-2, 1:-1], out=Jv[:, 1])
        gain = ab / (bb + 1e-8)
        torch.addcmul(a_c, gain, b_c, value=-1.0, out=r)  # a - (gain bw + bias), bias = mean a - gain mean bw
        J[:, :2] *= (level.half_scale * gain).unsqueeze(1)  # d(gain * Bw) / d(x, y), pixels per normalised unit
        torch.mul(gx, level.x, out=J[:, 2]).addcmul_(gy, level.y)
        torch.mul(gy, level.x, out=J[:, 3]).addcmul_(gx, level.y, value=-1.0)
        HG = torch.baddbmm(eye, J, J.transpose(1, 2))
        delta = torch.linalg.solve(HG[:, :6, :6], HG[:, :6, 6:]).squeeze(2)
        new = p + delta[:, :4]
        new[:, :2] = new[:, :2].clamp(-0.3, 0.3)
        new[:, 2:] = new[:, 2:].clamp(-0.25, 0.25)
        d = (new - p).abs()
        params[idx] = new
        if tol > 0:  # |x' - x| <= |dtx| + |da| + |db| on the region (|x|, |y| <= 1), same for y
            moving = (torch.maximum(d[:, 0], d[:, 1]) + d[:, 2] + d[:, 3]) * pixels >= tol
            if not bool(moving.all()):
                idx, new, B, a_c = idx[moving], new[moving], B[moving], a_c[moving]
                if len(idx) == 0:
                    break
        p = new
    return params


def _ncc(A, B, params, level: _Level):
    """Normalised cross-correlation (P,) of A and B warped by params, over the central region."""
    import torch

    P = A.shape[0]
    a = A[:, 0, level.crop, level.crop].reshape(P, -1)
    b = _sample(B, params, level.inner).reshape(P, -1)
    da, db = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    num = (da * db).sum(1)
    return num / (torch.sqrt(torch.clamp((da * da).sum(1) * (db * db).sum(1), min=0.0)) + 1e-8)


def _score(Af, Ac, Bf, Bc, fine: _Level, coarse: _Level, iters: int, coarse_iters: int,
           rotations: tuple[float, ...], coarse_reject: float, tol, fine_reject: tuple[float, ...]):
    """Best aligned NCC (P,) of one batch of prepared pairs."""
    import torch

    best = torch.full((len(Af),), -1.0)
    tol_c, tol_f = (tol, tol) if np.isscalar(tol) else tol
    for rot in rotations:
        params = torch.zeros(len(Af), 4)
        th = np.deg2rad(rot)
        params[:, 2] = float(np.cos(th) - 1.0)
        params[:, 3] = float(np.sin(th))
        params = _lk_level(Ac, Bc, params, coarse, coarse_iters, tol=tol_c)
        score = _ncc(Ac, Bc, params, coarse)
        go = torch.nonzero(score >= coarse_reject).view(-1)
        if len(go):
            p_fine = _lk_level(Af[go], Bf[go], params[go], fine, iters, tol=tol_f, reject=tuple(fine_reject))
            score[go] = _ncc(Af[go], Bf[go], p_fine, fine)
        best = torch.maximum(best, score)
    return best


def verify_pairs(images: np.ndarray, a: np.ndarray, b: np.ndarray, *, mirror: bool | np.ndarray = False,
                 size: int = 32, coarse_size: int = 16, blur: float = 1.0, iters: int = 8, coarse_iters: int = 8,
                 border: float = 0.12, rotations: tuple[float, ...] = (0.0,), coarse_reject: float = -1.0,
                 fine_reject: tuple[float, ...] = (), tol: float | tuple[float, float] = 0.0,
                 batch_size: int = 512, threads: int | None = None, progress=None,
                 chunk_pairs: int = CHUNK_PAIRS) -> np.ndarray:
    """Best aligned NCC (P,) of the pairs (images[a], images[b]); B mirrored first where ``mirror``
    (one flag, or one per pair).

    Each image is prepared once (blurred and resized; once more mirrored if some pair needs
    it so), then pairs are registered in batches of ``batch_size`` on ``threads`` threads
    (None: the usable cores). ``rotations`` (degrees) are starting points; the best-scoring
    start wins. Pairs whose coarse-level aligned NCC is below ``coarse_reject`` skip the fine
    level and keep the coarse score; at the fine level a pair whose NCC after k steps is below
    ``fine_reject[k]`` stops there; a pair whose step moved its warp by less than ``tol``
    pixels of the level (one value, or (coarse, fine)) has converged and stops. ``progress(n)``
    is called with the number of pairs done after each batch.

    Pairs are taken ``chunk_pairs`` at a time (rounded down to whole batches, so every batch holds
    the same pairs as in one pass and the scores are the same): only the images of the chunk's pairs
    are prepared and held (5 KB each), so memory stays bounded however many pairs there are (a
    million images in candidate pairs would otherwise hold 5 GB of prepared images). Callers that
    pass pairs sorted by ``a`` (as dedupe does) prepare each ``a`` image about once.
    """
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    if len(a) == 0:
        return np.zeros(0, np.float32)
    mirror = np.broadcast_to(np.asarray(mirror, bool), a.shape)
    step = max(batch_size, chunk_pairs // batch_size * batch_size)
    if len(a) > step:
        return np.concatenate([
            verify_pairs(images, a[s:s + step], b[s:s + step], mirror=mirror[s:s + step], size=size,
                         coarse_size=coarse_size, blur=blur, iters=iters, coarse_iters=coarse_iters, border=border,
                         rotations=rotations, coarse_reject=coarse_reject, fine_reject=fine_reject, tol=tol,
                         batch_size=batch_size, threads=threads, progress=progress, chunk_pairs=step)
            for s in range(0, len(a), step)])
    return _verify_chunk(images, a, b, mirror, size=size, coarse_size=coarse_size, blur=blur, iters=iters,
                         coarse_iters=coarse_iters, border=border, rotations=rotations, coarse_reject=coarse_reject,
                         fine_reject=fine_reject, tol=tol, batch_size=batch_size, threads=threads, progress=progress)


def _verify_chunk(images, a, b, mirror, *, size, coarse_size, blur, iters, coarse_iters, border, rotations,
                  coarse_reject, fine_reject, tol, batch_size, threads, progress):
    """:func:`verify_pairs` of one chunk of pairs: its images prepared once each, then registered."""
    import torch

    plain, ip = np.unique(np.r_[a, b[~mirror]], return_inverse=True)
    flipped, iflip = np.unique(b[mirror], return_inverse=True)
    ia = ip[:len(a)]
    ib = np.empty(len(b), np.int64)
    ib[~mirror] = ip[len(a):]
    ib[mirror] = len(plain) + iflip
    n = len(plain) + len(flipped)
    fine = np.empty((n, size, size), np.float32)
    coarse = np.empty((n, coarse_size, coarse_size), np.float32)
    _prepare_into(fine, coarse, 0, np.asarray(images[plain]), blur, False)
    _prepare_into(fine, coarse, len(plain), np.asarray(images[flipped]), blur, True)
    fine, coarse = torch.from_numpy(fine).unsqueeze(1), torch.from_numpy(coarse).unsqueeze(1)
    return _score_all(fine, coarse, fine, coarse, ia, ib, size=size, coarse_size=coarse_size, iters=iters,
                      coarse_iters=coarse_iters, border=border, rotations=rotations, coarse_reject=coarse_reject,
                      fine_reject=fine_reject, tol=tol, batch_size=batch_size, threads=threads, progress=progress)


def aligned_similarity(images_a: np.ndarray, images_b: np.ndarray, *, size: int = 32, coarse_size: int = 16,
                       blur: float = 1.0, iters: int = 8, coarse_iters: int = 8, border: float = 0.12,
                       rotations: tuple[float, ...] = (0.0,), coarse_reject: float = -1.0,
                       fine_reject: tuple[float, ...] = (), tol: float | tuple[float, float] = 0.0,
                       batch_size: int = 512, threads: int | None = None) -> np.ndarray:
    """Best aligned NCC (P,) between pairs of grey uint8 images (P, H, W) after warping B onto A.

    As :func:`verify_pairs` on explicit image pairs (every image prepared, none shared).
    """
    n = len(images_a)
    if n == 0:
        return np.zeros(0, np.float32)
    fa, ca = prepare(images_a, size, coarse_size, blur)
    fb, cb = prepare(images_b, size, coarse_size, blur)
    idx = np.arange(n)
    return _score_all(fa, ca, fb, cb, idx, idx, size=size, coarse_size=coarse_size, iters=iters,
                      coarse_iters=coarse_iters, border=border, rotations=rotations, coarse_reject=coarse_reject,
                      fine_reject=fine_reject, tol=tol, batch_size=batch_size, threads=threads)


def _score_all(fa, ca, fb, cb, ia, ib, *, size, coarse_size, iters, coarse_iters, border, rotations, coarse_reject,
               fine_reject, tol, batch_size, threads, progress=None) -> np.ndarray:
    import torch

    from curate.threads import resolve_threads

    fine, coarse = _Level(size, border), _Level(coarse_size, border)
    n = len(ia)
    out = np.zeros(n, np.float32)
    ia, ib = torch.from_numpy(np.asarray(ia, np.int64)), torch.from_numpy(np.asarray(ib, np.int64))

    def work(s: int) -> int:
        ja, jb = ia[s:s + batch_size], ib[s:s + batch_size]
        out[s:s + len(ja)] = _score(fa[ja], ca[ja], fb[jb], cb[jb], fine, coarse, iters, coarse_iters,
                                    tuple(rotations), coarse_reject, tol, fine_reject).numpy()
        return len(ja)

    workers = min(resolve_threads(threads), -(-n // batch_size))
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # small batches: one thread per batch, batches side by side
    try:
        with torch.no_grad():
            with ThreadPoolExecutor(max_workers=workers) as pool:  # torch releases the GIL in its ops
                for k in pool.map(work, range(0, n, batch_size)):
                    if progress is not None:
                        progress(k)
    finally:
        torch.set_num_threads(previous)
    return out
