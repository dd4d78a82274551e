"""Pair verification by registration: equal to the straightforward implementation, early stops keep the
decisions, and candidate pruning (already-linked pairs, exact-copy twins) changes no outcome."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from curate.dedupe import verify as V
from curate.settings import load_settings


@pytest.fixture(scope="module")
def real_images(sample_ws_path):
    from curate.workspace import Workspace

    images = np.ascontiguousarray(Workspace.open(sample_ws_path).pixels())
    return images[images.reshape(len(images), -1).std(axis=1) > 10][:600]  # no blank images


@pytest.fixture(scope="module")
def pairs(real_images):
    """(A, B) image pairs: near copies (every benchmark transform but the flip) and distinct faces."""
    from curate.dedupe.transforms import TRANSFORMS

    rng = np.random.default_rng(0)
    names = [t for t in TRANSFORMS if t != "hflip"]
    src = rng.choice(len(real_images), 140, replace=False)
    copies = np.stack([TRANSFORMS[names[i % len(names)]](real_images[s], rng) for i, s in enumerate(src)])
    other = rng.permutation(len(real_images))[:140]
    other = np.where(other == src, (other + 1) % len(real_images), other)
    a = np.concatenate([real_images[src], real_images[src]])
    b = np.concatenate([copies, real_images[other]])
    return a, b, np.r_[np.ones(140, bool), np.zeros(140, bool)]


# -- the straightforward implementation (whole image, masked, conv blur, one pass per pair): the oracle ------

def _reference_prepare(images, size, blur):
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).unsqueeze(1) / 255.0
    radius = max(1, int(round(2.5 * blur)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / blur) ** 2)
    k = k / k.sum()
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(F.conv2d(x, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))
    return F.interpolate(x, size=(size, size), mode="area")


def _reference_level(A, B, params, size, iters, mask, damping=1e-4):
    import torch
    import torch.nn.functional as F

    P = A.shape[0]
    lin = torch.linspace(-1.0, 1.0, size)
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    m, a_flat = mask.view(1, -1), A.view(P, -1)
    for _ in range(iters):
        tx, ty, a, b = (params[:, i].view(-1, 1, 1) for i in range(4))
        grid = torch.stack([(1 + a) * xx - b * yy + tx, b * xx + (1 + a) * yy + ty], dim=-1)
        Bw = F.grid_sample(B, grid, mode="bilinear", padding_mode="border", align_corners=True)
        gy_img, gx_img = torch.gradient(Bw[:, 0], dim=(1, 2))
        gx, gy = (gx_img * (size - 1) / 2.0).view(P, -1), (gy_img * (size - 1) / 2.0).view(P, -1)
        x, y, bw = xx.reshape(1, -1), yy.reshape(1, -1), Bw.view(P, -1)
        J = torch.stack([gx, gy, gx * x + gy * y, -gx * y + gy * x, bw, torch.ones_like(bw)], dim=2)
        mean_a, mean_b = (a_flat * m).sum(1, keepdim=True) / m.sum(), (bw * m).sum(1, keepdim=True) / m.sum()
        gain = ((a_flat - mean_a) * (bw - mean_b) * m).sum(1, keepdim=True) / (
            (((bw - mean_b) * m) ** 2).sum(1, keepdim=True) + 1e-8)
        r = (a_flat - (gain * bw + mean_a - gain * mean_b)) * m
        Jg = torch.cat([J[:, :, :4] * gain.unsqueeze(2), J[:, :, 4:]], dim=2) * m.unsqueeze(2)
        H = torch.bmm(Jg.transpose(1, 2), Jg) + damping * torch.eye(6).unsqueeze(0)
        params = params + torch.linalg.solve(H, torch.bmm(Jg.transpose(1, 2), r.unsqueeze(2))).squeeze(2)[:, :4]
        params[:, :2] = params[:, :2].clamp(-0.3, 0.3)
        params[:, 2:] = params[:, 2:].clamp(-0.25, 0.25)
    return params


def _reference_ncc(A, B, params, size, mask):
    import torch
    import torch.nn.functional as F

    lin = torch.linspace(-1.0, 1.0, size)
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    tx, ty, a, b = (params[:, i].view(-1, 1, 1) for i in range(4))
    grid = torch.stack([(1 + a) * xx - b * yy + tx, b * xx + (1 + a) * yy + ty], dim=-1)
    Bw = F.grid_sample(B, grid, mode="bilinear", padding_mode="border", align_corners=True)
    w = mask.sum()
    da = (A - (A * mask).sum((1, 2, 3), keepdim=True) / w) * mask
    db = (Bw - (Bw * mask).sum((1, 2, 3), keepdim=True) / w) * mask
    den = torch.sqrt(torch.clamp((da * da).sum((1, 2, 3)) * (db * db).sum((1, 2, 3)), min=0.0)) + 1e-8
    return (da * db).sum((1, 2, 3)) / den


def reference_similarity(images_a, images_b, coarse_reject=0.8, size=32, coarse_size=16, border=0.12):
    import torch
    import torch.nn.functional as F

    def mask(s):
        m, k = torch.zeros(s, s), int(round(s * border))
        m[k:s - k, k:s - k] = 1.0
        return m

    with torch.no_grad():
        A, B = _reference_prepare(images_a, size, 1.0), _reference_prepare(images_b, size, 1.0)
        Ac, Bc = F.interpolate(A, size=coarse_size, mode="area"), F.interpolate(B, size=coarse_size, mode="area")
        params = _reference_level(Ac, Bc, torch.zeros(len(A), 4), coarse_size, 8, mask(coarse_size))
        score = _reference_ncc(Ac, Bc, params, coarse_size, mask(coarse_size).view(1, 1, coarse_size, coarse_size))
        go = torch.nonzero(score >= coarse_reject).view(-1)
        p_fine = _reference_level(A[go], B[go], params[go], size, 8, mask(size))
        score[go] = _reference_ncc(A[go], B[go], p_fine, size, mask(size).view(1, 1, size, size))
    return score.numpy()


def _defaults() -> dict:
    pc = load_settings("dedupe").pixel
    return {"coarse_reject": pc.coarse_reject, "tol": pc.converge_px,
            "fine_reject": tuple(pc.min_aligned_ncc - m for m in pc.fine_reject_margin)}


# -- tests ---------------------------------------------------------------------------------------------------

def test_prepare_equals_blur_then_area_resize_and_folds_the_mirror(real_images):
    import torch.nn.functional as F

    x = real_images[:64]
    fine, coarse = V.prepare(x)
    ref = _reference_prepare(x, 32, 1.0)
    assert fine.shape == (64, 1, 32, 32) and coarse.shape == (64, 1, 16, 16)
    assert np.allclose(fine.numpy(), ref.numpy(), atol=1e-6)
    assert np.allclose(coarse.numpy(), F.interpolate(ref, size=16, mode="area").numpy(), atol=1e-6)
    fine_m, coarse_m = V.prepare(x, mirror=True)
    flipped, flipped_c = V.prepare(np.ascontiguousarray(x[:, :, ::-1]))
    assert np.allclose(fine_m.numpy(), flipped.numpy(), atol=1e-6)
    assert np.allclose(coarse_m.numpy(), flipped_c.numpy(), atol=1e-6)


def test_registration_equals_the_reference_without_early_stops(pairs):
    a, b, _ = pairs
    ref = reference_similarity(a, b)
    ours = V.aligned_similarity(a, b, coarse_reject=0.8, threads=2, batch_size=64)  # several batches, 2 threads
    diff = np.abs(ours - ref)
    assert np.array_equal(ours >= 0.95, ref >= 0.95)
    assert diff[ref >= 0.9].max() < 1e-3           # float rounding only, where it decides
    assert np.quantile(diff, 0.95) < 1e-5          # (a distinct pair's optimisation may drift apart a little)


def test_mirror_flag_equals_registering_the_flipped_image(real_images):
    rng = np.random.default_rng(1)
    a = rng.integers(0, len(real_images), 60)
    b = rng.integers(0, len(real_images), 60)
    mirror = rng.random(60) < 0.5
    ours = V.verify_pairs(real_images, a, b, mirror=mirror, coarse_reject=0.8)
    flipped = np.where(mirror[:, None, None], real_images[b][:, :, ::-1], real_images[b])
    assert np.allclose(ours, V.aligned_similarity(real_images[a], flipped, coarse_reject=0.8), atol=1e-4)


def test_early_stops_keep_every_decision(pairs):
    """Converged pairs stop, hopeless pairs stop after their first fine steps: same accept / reject."""
    a, b, is_copy = pairs
    full = V.aligned_similarity(a, b, coarse_reject=0.8)
    fast = V.aligned_similarity(a, b, **_defaults())
    accept = load_settings("dedupe").pixel.min_aligned_ncc
    assert np.array_equal(fast >= accept, full >= accept)
    accepted = full >= accept
    assert np.abs(fast - full)[accepted].max() < 0.01  # accepted pairs run to convergence
    assert (fast[~accepted] < accept).all()
    assert accepted[is_copy].mean() > 0.8 and not accepted[~is_copy].any()


def test_already_linked_pairs_are_not_reverified_but_still_clustered(real_images, monkeypatch):
    """Pairs joined by exact or hash edges, and copies of a verified pair, skip registration; the edges
    and clusters equal those of registering every candidate."""
    from curate.dedupe.api import embedding_edges, find_edges
    from curate.dedupe.clusters import assign_clusters
    from curate.dedupe.transforms import jpeg, rotate

    rng = np.random.default_rng(2)
    base = real_images[:300]
    exact = base[[3, 3, 10, 20]]                      # byte copies (shared digests)
    hashed = np.stack([jpeg(base[i], rng) for i in (30, 31)])     # found by pHash
    rotated = np.stack([rotate(base[i], rng) for i in (40, 41)])  # left to the embedder
    rotated_twin = rotated[:1].copy()                 # an exact copy of a rotated copy: same registration
    images = np.concatenate([base, exact, hashed, rotated, rotated_twin])
    digests = pd.Series([f"d{i}" for i in range(len(base))] + ["d3", "d3", "d10", "d20"]
                        + [f"h{i}" for i in range(2)] + ["r0", "r1", "r0"])
    cfg = load_settings("dedupe")

    calls = []
    original = V.verify_pairs

    def recording(images_, a, b, **kw):
        calls.append((np.asarray(a).copy(), np.asarray(b).copy(), np.broadcast_to(kw.get("mirror", False), len(a))))
        return original(images_, a, b, **kw)

    monkeypatch.setattr(V, "verify_pairs", recording)
    edges = find_edges(images, digests, cfg)
    assert len(calls) == 1  # plain and mirrored candidates in one registration run
    a, b, mirror = calls[0]
    known = edges[edges["method"].isin(["exact", "phash", "phash_mirror"])]
    linked = set(zip(np.minimum(known["a"], known["b"]), np.maximum(known["a"], known["b"])))
    asked = set(zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist()))
    assert not asked & linked                                            # linked pairs are not re-verified
    d = digests.to_numpy()
    assert (d[a] != d[b]).all()                                          # nor copies of one image
    assert len(set(zip(d[a], d[b], mirror))) == len(a)                   # one registration per content pair
    twin = len(images) - 1
    assert twin not in set(a) | set(b)                                   # the twin's pairs reuse its original's

    # the unpruned path: every candidate registered, nothing known
    monkeypatch.setattr(V, "verify_pairs", original)
    every = embedding_edges(images, "pixel", cfg)
    assert (d[every["a"]] == d[every["b"]]).any()                       # the pruning had copies to skip ...
    every = every[(d[every["a"]] != d[every["b"]])]
    assert any((min(x, y), max(x, y)) in linked for x, y in zip(every["a"], every["b"]))  # ... and linked pairs
    pixel = edges[edges["method"].str.startswith("pixel")]
    key = lambda e: set(zip(e["a"], e["b"], e["method"]))  # noqa: E731
    unlinked = every[[(min(x, y), max(x, y)) not in linked for x, y in zip(every["a"], every["b"])]]
    assert key(pixel) == key(unlinked)                                   # same pixel edges, none lost
    merged = pixel.merge(unlinked, on=["a", "b", "method"])
    assert np.allclose(merged["distance_x"], merged["distance_y"], atol=1e-5)
    assert {(40, len(base) + 6), (40, twin)} <= set(zip(pixel["a"], pixel["b"]))  # the twin got its edge

    def clusters(e):
        return assign_clusters(len(images), e, labels=pd.Series(np.zeros(len(images), int)),
                               splits=pd.Series(["train"] * len(images)), digests=digests,
                               quality=np.zeros(len(images), np.float32), policy=cfg.policy)

    ours = clusters(edges).set_index("pos")["cluster_id"]
    full = clusters(pd.concat([edges[~edges["method"].str.startswith("pixel")], every])).set_index("pos")["cluster_id"]
    assert ours.index.equals(full.index)
    assert pd.crosstab(ours, full).gt(0).sum(axis=1).eq(1).all()        # the same partition
    for x, y in linked:
        assert ours[x] == ours[y]                                        # skipped pairs share a cluster
