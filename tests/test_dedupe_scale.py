"""What keeps dedupe linear at a million images: a band through shared hash codes, registration in chunks."""
from __future__ import annotations

import numpy as np
import pytest

from curate.dedupe.clusters import connected_components
from curate.dedupe.search import hamming_pairs


@pytest.fixture(scope="module")
def real_images(sample_ws_path):
    from curate.workspace import Workspace

    return np.ascontiguousarray(Workspace.open(sample_ws_path).pixels())


def _codes_with_a_degenerate_group(seed: int = 0) -> np.ndarray:
    """200 random 64-bit codes, 3 copies of some, 300 images sharing one code (blank frames' pHash) and
    5 sharing a code 1 bit away from it, shuffled."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (200, 8), dtype=np.uint8)
    blank = np.zeros((1, 8), np.uint8)
    blank[0, 0] = 0x80
    near = blank.copy()
    near[0, 7] ^= 1
    near_base = base[:10].copy()
    near_base[:, 3] ^= 0b101  # 2 bits from their originals
    codes = np.concatenate([base, base[:3], np.repeat(blank, 300, 0), np.repeat(near, 5, 0), near_base])
    return codes[rng.permutation(len(codes))]


@pytest.mark.parametrize("method", ["mih", "flat"])
def test_shared_codes_banded_same_components_linear_pairs(method):
    codes = _codes_with_a_degenerate_group()
    n = len(codes)
    full = hamming_pairs(codes, 4, method=method)
    capped = hamming_pairs(codes, 4, method=method, max_shared=64)
    assert len(full[0]) > 300 * 299 // 2  # all with all inside the group of 300
    assert len(capped[0]) < 300 * 64 + 5 * 64 + 100  # a band of 64 through the 300, the 5 near ones to 64 of them
    assert np.array_equal(connected_components(n, *full[:2]), connected_components(n, *capped[:2]))
    kept = set(zip(*(x.tolist() for x in capped[:2])))
    assert kept <= set(zip(*(x.tolist() for x in full[:2])))  # only real pairs, with their distances
    dist = dict(zip(zip(*(x.tolist() for x in full[:2])), full[2].tolist()))
    assert all(dist[p] == d for p, d in zip(zip(*(x.tolist() for x in capped[:2])), capped[2].tolist()))
    # groups within the limit: every pair, as without it
    same = hamming_pairs(codes, 4, method=method, max_shared=300)
    assert all(np.array_equal(x, y) for x, y in zip(full, same))


def test_mirrored_queries_through_a_shared_code_keep_components():
    codes = _codes_with_a_degenerate_group(1)
    queries = codes[np.random.default_rng(2).permutation(len(codes))]  # another image's code as its "mirror"
    n = len(codes)
    full = hamming_pairs(codes, 4, queries=queries)
    capped = hamming_pairs(codes, 4, queries=queries, max_shared=64)
    plain = hamming_pairs(codes, 4, max_shared=64)
    assert len(capped[0]) < len(full[0]) // 5
    both_full = np.r_[full[0], plain[0]], np.r_[full[1], plain[1]]
    both_capped = np.r_[capped[0], plain[0]], np.r_[capped[1], plain[1]]
    assert np.array_equal(connected_components(n, *both_full), connected_components(n, *both_capped))


def test_many_blank_frames_stay_linear_and_clustered(real_images):
    """300 blank frames (one pHash) among real crops: dedupe pairs each with 64 others, every blank still lands
    in a duplicate cluster of at most max_cluster_size, and the real crops' clusters do not change."""
    import pandas as pd

    from curate.dedupe.api import find_edges
    from curate.dedupe.clusters import assign_clusters
    from curate.dedupe.quality import quality_score
    from curate.ingest.decode import pixel_digest
    from curate.settings import load_settings

    rng = np.random.default_rng(0)
    real = real_images[:600]
    blanks = np.repeat(rng.integers(0, 256, 300).astype(np.uint8), 48 * 48).reshape(300, 48, 48)
    images = np.concatenate([real, blanks])
    digests = pd.Series([pixel_digest(a) for a in images], dtype="string")
    n = len(images)

    def run(max_shared: int):
        cfg = load_settings("dedupe", [f"hash.max_shared={max_shared}", "embedder=none"])
        edges = find_edges(images, digests, cfg)
        clusters = assign_clusters(n, edges, labels=pd.Series(["happy"] * n), splits=pd.Series(["train"] * n),
                                   digests=digests, quality=quality_score(images), policy=cfg.policy)
        return edges, clusters

    full_edges, full = run(0)
    edges, capped = run(64)
    assert len(edges) < len(full_edges) / 2
    assert set(range(600, n)) <= set(capped["pos"]) and set(range(600, n)) <= set(full["pos"])
    assert capped.groupby("cluster_id").size().max() <= 16
    real_full = full[full["pos"] < 600].drop(columns="cluster_id").reset_index(drop=True)
    real_capped = capped[capped["pos"] < 600].drop(columns="cluster_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(real_full, real_capped)


def test_registration_in_chunks_equals_one_pass(real_images):
    from curate.dedupe.verify import verify_pairs

    rng = np.random.default_rng(0)
    n = len(real_images)
    a = rng.integers(0, n, 1300)
    b = np.where(rng.random(1300) < 0.2, a, rng.integers(0, n, 1300))  # some pairs with themselves: scores near 1
    mirror = rng.random(1300) < 0.3
    order = np.lexsort((b, a))
    a, b, mirror = a[order], b[order], mirror[order]
    kwargs = dict(mirror=mirror, coarse_reject=0.8, fine_reject=(0.815, 0.915), tol=(0.3, 0.02))
    one = verify_pairs(real_images, a, b, chunk_pairs=1 << 30, **kwargs)
    chunked = verify_pairs(real_images, a, b, chunk_pairs=600, **kwargs)  # 512-pair chunks: 3 of them
    assert np.array_equal(one, chunked)
    assert np.median(one[(a == b) & ~mirror]) > 0.99  # an image with itself (blank frames score 0)
