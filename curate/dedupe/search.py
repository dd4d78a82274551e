"""Neighbour search with faiss: Hamming-radius pairs over binary hashes, cosine kNN over embeddings.

Both return unordered pairs ``(a, b)`` with ``a < b`` as int64 arrays plus a distance,
de-duplicated (the smallest distance kept). No Python loop over images.
"""
from __future__ import annotations

import numpy as np


def _unique_pairs(a: np.ndarray, b: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order each pair (min, max), drop self pairs, keep the smallest distance per pair."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    keep = lo != hi
    lo, hi, dist = lo[keep], hi[keep], np.asarray(dist)[keep]
    if len(lo) == 0:
        return lo, hi, dist
    order = np.lexsort((dist, hi, lo))
    lo, hi, dist = lo[order], hi[order], dist[order]
    first = np.ones(len(lo), bool)
    first[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    return lo[first], hi[first], dist[first]


def binary_index(codes: np.ndarray, *, exact_below: int = 50_000, nhash: int = 4, radius: int = 8):
    """A faiss binary index over packed codes (N, B) uint8.

    Up to ``exact_below`` codes: IndexBinaryFlat (brute force, exact). Above: multi-index
    hashing (IndexBinaryMultiHash) with ``nhash`` sub-codes and enough bit flips that no
    pair within ``radius`` is missed (pigeonhole: one sub-code differs in <= radius // nhash
    bits), which keeps the cost near linear in N.
    """
    import faiss

    nbits = codes.shape[1] * 8
    if len(codes) <= exact_below:
        index = faiss.IndexBinaryFlat(nbits)
    else:
        index = faiss.IndexBinaryMultiHash(nbits, nhash, nbits // nhash)
        index.nflip = radius // nhash
    index.add(np.ascontiguousarray(codes, dtype=np.uint8))
    return index


def hamming_pairs(codes: np.ndarray, radius: int, *, queries: np.ndarray | None = None,
                  exact_below: int = 50_000, nhash: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs within Hamming distance ``radius`` (inclusive): ``(a, b, distance)``, a < b.

    ``queries`` (same row order as ``codes``, e.g. the mirrored images' hashes) are searched
    against ``codes`` instead of the codes themselves; pair (i, j) then means
    d(queries[i], codes[j]) <= radius.
    """
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    q = codes if queries is None else np.ascontiguousarray(queries, dtype=np.uint8)
    if len(codes) == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.int32)
    index = binary_index(codes, exact_below=exact_below, nhash=nhash, radius=radius)
    lims, dist, ids = index.range_search(q, radius + 1)  # faiss keeps distances < radius argument
    lims = np.asarray(lims, np.int64)
    rows = np.repeat(np.arange(len(q), dtype=np.int64), np.diff(lims))
    ids = np.asarray(ids, np.int64)
    dist = np.asarray(dist, np.int32)
    keep = dist <= radius
    return _unique_pairs(rows[keep], ids[keep], dist[keep])


def hamming_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Hamming distance between packed codes (N, B) uint8."""
    return np.unpackbits(np.bitwise_xor(a, b), axis=1).sum(axis=1).astype(np.int32)


def cosine_index(vectors: np.ndarray, *, exact_below: int = 20_000, kind: str = "ivf", nlist: int | None = None,
                 nprobe: int = 16, hnsw_m: int = 32, seed: int = 0):
    """A faiss inner-product index over L2-normalised float32 vectors.

    Exact IndexFlatIP up to ``exact_below`` vectors; above it IVF-Flat (``kind="ivf"``,
    k-means trained with ``seed``) or HNSW (``kind="hnsw"``).
    """
    import faiss

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = x.shape
    if n <= exact_below:
        index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = max(64, nprobe * 4)
    elif kind == "ivf":
        nlist = nlist or int(max(16, 4 * np.sqrt(n)))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        rng = np.random.default_rng(seed)
        train = x[rng.choice(n, min(n, nlist * 64), replace=False)]
        index.train(train)
        index.nprobe = nprobe
    else:
        raise ValueError(f"unknown index kind {kind!r}; choose ivf or hnsw")
    index.add(x)
    return index


def knn_pairs(vectors: np.ndarray, k: int, min_similarity: float, *, queries: np.ndarray | None = None,
              exact_below: int = 20_000, kind: str = "ivf", nprobe: int = 16,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (a, b, cosine distance) among each vector's ``k`` nearest neighbours with similarity >= ``min_similarity``.

    ``queries`` (same rows as ``vectors``, e.g. mirrored images' embeddings) are searched
    against ``vectors`` instead. Distance is ``1 - cosine similarity``.
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    q = x if queries is None else np.ascontiguousarray(queries, dtype=np.float32)
    if len(x) < 2:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32)
    index = cosine_index(x, exact_below=exact_below, kind=kind, nprobe=nprobe, seed=seed)
    kk = min(k + 1, len(x))
    sims, ids = index.search(q, kk)
    rows = np.repeat(np.arange(len(q), dtype=np.int64), kk)
    sims, ids = sims.reshape(-1), ids.reshape(-1).astype(np.int64)
    keep = (ids >= 0) & (sims >= min_similarity)
    return _unique_pairs(rows[keep], ids[keep], (1.0 - sims[keep]).astype(np.float32))
