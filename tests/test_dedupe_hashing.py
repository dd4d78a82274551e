"""Batched hashes equal imagehash bit for bit on real FER2013 images; faiss search equals brute force."""
from __future__ import annotations

import imagehash
import numpy as np
import pytest
from PIL import Image

from curate.dedupe.hashing import hash_images, lanczos_matrix, resize_lanczos, to_hex
from curate.dedupe.search import hamming_distance, hamming_pairs, knn_pairs


@pytest.fixture(scope="module")
def real_images(sample_ws_path):
    from curate.workspace import Workspace

    return np.ascontiguousarray(Workspace.open(sample_ws_path).pixels())


def test_resize_equals_pil_lanczos(real_images):
    for w, h in ((32, 32), (9, 8), (17, 23)):
        ours = resize_lanczos(real_images[:200], w, h)
        ref = np.stack([np.asarray(Image.fromarray(x, "L").resize((w, h), Image.LANCZOS)) for x in real_images[:200]])
        assert np.array_equal(ours.astype(np.uint8), ref), (w, h)


@pytest.mark.parametrize("method", ["phash", "dhash", "whash"])
def test_hashes_bit_exact_with_imagehash(real_images, method):
    images = real_images  # 1,626 real images, incl. blank ones (imagehash's FFT round-off decides those bits)
    codes, mirrored = hash_images(images, method, mirror=True)
    fn = getattr(imagehash, method)
    ref = [str(fn(Image.fromarray(x, "L"))) for x in images]
    assert to_hex(codes) == ref
    ref_m = [str(fn(Image.fromarray(x, "L").transpose(Image.FLIP_LEFT_RIGHT))) for x in images[:300]]
    assert to_hex(mirrored[:300]) == ref_m


def test_phash_bit_exact_on_constant_and_odd_sized_images():
    rng = np.random.default_rng(0)
    images = np.concatenate([np.full((3, 40, 40), v, np.uint8) for v in (0, 128, 255)]
                            + [rng.integers(0, 256, (5, 40, 40), dtype=np.uint8)])
    codes, _ = hash_images(images, "phash")
    assert to_hex(codes) == [str(imagehash.phash(Image.fromarray(x, "L"))) for x in images]


def test_lanczos_matrix_rows_sum_to_fixed_point_one():
    mat = lanczos_matrix(48, 32)
    assert np.all(np.abs(mat.sum(axis=0) - (1 << 22)) <= 8)


@pytest.mark.parametrize("method", ["flat", "mih"])
def test_hamming_pairs_equal_brute_force(real_images, method):
    # 100 repeated images: rows sharing a code are searched once and expanded afterwards
    images = np.concatenate([real_images[:700], real_images[:100][::-1]])
    codes, mirrored = hash_images(images, "phash", mirror=True)
    assert len(np.unique(codes, axis=0)) <= 700
    bits = np.unpackbits(codes, axis=1).astype(np.int32)
    dist = (bits[:, None, :] != bits[None, :, :]).sum(2)
    for radius in (0, 6, 12):
        a, b, d = hamming_pairs(codes, radius, method=method)
        iu = np.triu_indices(len(codes), 1)
        want = {(i, j) for i, j in zip(*iu) if dist[i, j] <= radius}
        assert set(zip(a.tolist(), b.tolist())) == want
        assert np.array_equal(d, dist[a, b])
    # mirrored queries: pair (i, j) when d(mirror_i, code_j) <= r (either direction)
    mbits = np.unpackbits(mirrored, axis=1).astype(np.int32)
    mdist = (mbits[:, None, :] != bits[None, :, :]).sum(2)
    a, b, d = hamming_pairs(codes, 8, queries=mirrored, method=method)
    want = {(min(i, j), max(i, j)) for i, j in zip(*np.nonzero(mdist <= 8)) if i != j}
    assert set(zip(a.tolist(), b.tolist())) == want
    assert np.array_equal(hamming_distance(codes[a[:5]], codes[b[:5]]), dist[a[:5], b[:5]])


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_knn_pairs_flat_and_approximate_match_brute_force(kind):
    rng = np.random.default_rng(1)
    base = rng.normal(size=(300, 16)).astype(np.float32)
    x = np.concatenate([base, base[:100] + 0.01 * rng.normal(size=(100, 16)).astype(np.float32)])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sims = x @ x.T
    np.fill_diagonal(sims, -1)
    want = {(min(i, j), max(i, j)) for i, j in zip(*np.nonzero(sims >= 0.99))}
    for exact_below in (10_000, 50):
        a, b, d = knn_pairs(x, 3, 0.99, exact_below=exact_below, kind=kind, nprobe=64)
        got = set(zip(a.tolist(), b.tolist()))
        assert got == want
        assert np.allclose(d, 1 - sims[a, b], atol=1e-5)
