"""Neighbour search with faiss: Hamming-radius pairs over binary hashes, cosine kNN over embeddings.

Both return unordered pairs ``(a, b)`` with ``a < b`` as int64 arrays plus a distance,
de-duplicated (the smallest distance kept). No Python loop over images.
"""
from __future__ import annotations

import numpy as np

from curate.errors import ConfigError


def _unique_pairs(a: np.ndarray, b: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order each pair (min, max), drop self pairs, keep the smallest distance per pair."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    keep = lo != hi
    lo, hi, dist = lo[keep], hi[keep], np.asarray(dist)[keep]
    if len(lo) == 0:
        return lo, hi, dist
    key = lo * (int(hi.max()) + 1) + hi
    order = np.lexsort((dist, key))
    key = key[order]
    first = np.ones(len(key), bool)
    first[1:] = key[1:] != key[:-1]
    keep = order[first]
    return lo[keep], hi[keep], dist[keep]


def binary_index(codes: np.ndarray):
    """A faiss IndexBinaryFlat (exact brute-force Hamming search) over packed codes (N, B) uint8."""
    import faiss

    index = faiss.IndexBinaryFlat(codes.shape[1] * 8)
    index.add(np.ascontiguousarray(codes, dtype=np.uint8))
    return index


def hamming_pairs(codes: np.ndarray, radius: int, *, queries: np.ndarray | None = None,
                  method: str = "auto", max_shared: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs within Hamming distance ``radius`` (inclusive): ``(a, b, distance)``, a < b.

    ``queries`` (same row order as ``codes``, e.g. the mirrored images' hashes) are searched
    against ``codes`` instead of the codes themselves; pair (i, j) then means
    d(queries[i], codes[j]) <= radius. ``method``: ``flat`` = faiss IndexBinaryFlat
    range_search (exact, O(N^2) in C); ``mih`` = exact multi-index hashing
    (:func:`mih_pairs`, 64-bit codes), near linear while its keys (two of radius + 2 bit
    ranges) keep >= 16 bits; ``auto`` picks mih for 64-bit codes and radius <= 6, else flat.
    Both return the same pairs. Only distinct codes are searched; images sharing a code
    (copies) are expanded afterwards, so copies do not multiply the search's candidates.

    ``max_shared`` (0 = no limit) bounds that expansion: inside a code shared by more images than
    this (a degenerate hash: a million-image set held 3,063 blank frames with one pHash, 4.7 million
    pairs among them), each image is paired with the next ``max_shared`` images of the code in
    position order (distance 0) instead of with all of them, and its pairs with another code go
    through its first ``max_shared`` images only. A code shared by at most ``max_shared + 1`` images
    keeps every pair. The connected components are the same, and the pair count grows with the
    images, not their square.
    """
    if method not in ("auto", "flat", "mih"):
        raise ConfigError(f"unknown Hamming search {method!r}; choose auto, flat or mih")
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    if len(codes) == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.int32)
    use_mih = method == "mih" or (method == "auto" and codes.shape[1] == 8 and radius <= 6)
    if use_mih and codes.shape[1] != 8:
        raise ConfigError("multi-index hashing needs 64-bit codes")
    distinct, inv = _distinct_rows(codes)
    if queries is None:
        a, b, d = _directed_pairs(distinct, radius, None, use_mih)  # distinct codes: distance >= 1
        rows = _rows_by_code(inv, max_shared)
        i, j, dist = _expand(a, b, d, rows, rows)
        zi, zj = _pairs_within_runs(rows[0], inv, max_run=max_shared)  # equal codes: distance 0
        i, j, dist = np.r_[i, zi], np.r_[j, zj], np.r_[dist, np.zeros(len(zi), np.int32)]
    else:
        q_distinct, q_inv = _distinct_rows(np.ascontiguousarray(queries, dtype=np.uint8))
        a, b, d = _directed_pairs(distinct, radius, q_distinct, use_mih)
        i, j, dist = _expand(a, b, d, _rows_by_code(q_inv, max_shared), _rows_by_code(inv, max_shared))
    return _unique_pairs(i, j, dist)


def _distinct_rows(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct rows of packed codes (U, B), index of each input row's distinct row (N,))."""
    if codes.shape[1] != 8:
        keys = codes.view(np.dtype((np.void, codes.shape[1]))).ravel()
        _, first, inv = np.unique(keys, return_index=True, return_inverse=True)
        return codes[first], inv.ravel().astype(np.int64)
    keys = codes.view(np.uint64).ravel()  # 64-bit codes: one integer sort (numpy's SIMD quicksort)
    order = np.argsort(keys)
    new = np.ones(len(keys), bool)
    new[1:] = keys[order[1:]] != keys[order[:-1]]
    inv = np.empty(len(keys), np.int64)
    inv[order] = np.cumsum(new) - 1
    return codes[order[new]], inv


def _rows_by_code(inv: np.ndarray, max_shared: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows sorted by their distinct-code index, in position order within a code; start of each code's
    run; the run size :func:`_expand` uses: at most ``max_shared`` when that is > 0)."""
    order = np.argsort(inv, kind="stable")
    size = np.bincount(inv)
    start = np.cumsum(size) - size
    if max_shared > 0:
        size = np.minimum(size, max_shared)
    return order, start, size


def _expand(a: np.ndarray, b: np.ndarray, d: np.ndarray, rows_a: tuple[np.ndarray, np.ndarray, np.ndarray],
            rows_b: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of distinct codes (a, b) -> every pair of the rows holding them (rows of a x rows of b).

    ``rows_a`` / ``rows_b``: :func:`_rows_by_code` of the side's distinct-code index per row.
    """
    (order_a, start_a, size_a), (order_b, start_b, size_b) = rows_a, rows_b
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    na, nb = size_a[a], size_b[b]
    count = na * nb
    total = int(count.sum())
    k = np.repeat(np.arange(len(a)), count)
    t = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    i = order_a[start_a[a[k]] + t // nb[k]]
    j = order_b[start_b[b[k]] + t % nb[k]]
    return i, j, np.asarray(d)[k]


def _directed_pairs(codes: np.ndarray, radius: int, queries: np.ndarray | None, use_mih: bool
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs within ``radius``: (i, j, d) with i a row of ``queries`` (or of ``codes``) and j a row of ``codes``."""
    if use_mih:
        return _mih_candidates(codes, radius, queries)
    index = binary_index(codes)
    q = codes if queries is None else queries
    lims, dist, ids = index.range_search(q, radius + 1)  # faiss keeps distances < radius argument
    lims = np.asarray(lims, np.int64)
    rows = np.repeat(np.arange(len(q), dtype=np.int64), np.diff(lims))
    ids = np.asarray(ids, np.int64)
    dist = np.asarray(dist, np.int32)
    keep = dist <= radius
    return rows[keep], ids[keep], dist[keep]


def _pairs_within_runs(order: np.ndarray, keys: np.ndarray, max_run: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j) index pairs, i before j, of elements sharing a key; ``order`` sorts ``keys``.

    ``max_run`` > 0: in a run of more than ``max_run + 1`` elements, each element is paired with the
    next ``max_run`` elements of the run in ``order`` only (a band, not all pairs).
    """
    k = keys[order]
    n = len(k)
    start = np.r_[0, np.flatnonzero(k[1:] != k[:-1]) + 1]
    end = np.r_[start[1:], n]
    if max_run > 0 and n and ((end - start) > max_run + 1).any():
        long_run = np.repeat((end - start) > max_run + 1, end - start)
        at = np.flatnonzero(long_run)
        run_end = np.repeat(end, end - start)[at]
        bi, bj = [], []
        for offset in range(1, max_run + 1):
            ok = at + offset < run_end
            bi.append(order[at[ok]])
            bj.append(order[at[ok] + offset])
        si, sj = _pairs_within_runs(order[~long_run], keys)
        return np.concatenate([si, *bi]), np.concatenate([sj, *bj])
    run_end = np.repeat(end, end - start)
    later = run_end - np.arange(n) - 1
    total = int(later.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    first = np.repeat(np.arange(n), later)
    offset = np.arange(total) - np.repeat(np.cumsum(later) - later, later)
    return order[first], order[first + 1 + offset]


def _pairs_across(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j) with ``left[i] == right[j]`` (a sort-merge join on equal keys)."""
    order = np.argsort(right)
    sorted_right = right[order]
    left_order = np.argsort(left)  # sorted probes: the binary searches walk the array in order
    sorted_left = left[left_order]
    lo = np.searchsorted(sorted_right, sorted_left, side="left")
    hi = np.searchsorted(sorted_right, sorted_left, side="right")
    count = hi - lo
    total = int(count.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    i = np.repeat(left_order.astype(np.int64), count)
    offset = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    return i, order[np.repeat(lo, count) + offset]


def mih_pairs(codes: np.ndarray, radius: int, *, queries: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact Hamming-radius pairs of 64-bit codes by multi-index hashing: ``(a, b, distance)``, a < b.

    See :func:`_mih_candidates` for the method; ``queries`` as in :func:`hamming_pairs`.
    """
    return _unique_pairs(*_mih_candidates(codes, radius, queries))


def _mih_candidates(codes: np.ndarray, radius: int, queries: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i, j, d) within ``radius`` by multi-index hashing (generalised pigeonhole), each once.

    The code is cut into ``radius + 2`` contiguous bit ranges. Two codes within ``radius``
    differ in at most ``radius`` ranges, so they agree exactly on at least two; every pair of
    ranges (about 2 x 64 / (radius + 2) bits) is therefore a key under which such codes meet.
    Only codes sharing a key are compared. Wider keys than the classic radius + 1 ranges keep
    the candidate count near the true pair count on clustered hashes (faces share their
    low-frequency bits). With ``queries``, i is a query row and j a code row.
    """
    from concurrent.futures import ThreadPoolExecutor
    from itertools import combinations

    c = np.ascontiguousarray(codes, np.uint8).view(">u8").ravel().astype(np.uint64)
    n = len(c)
    allc = c if queries is None else np.r_[c, np.ascontiguousarray(queries, np.uint8).view(">u8").ravel().astype(np.uint64)]
    bounds = np.linspace(0, 64, radius + 3).astype(int)
    parts = [(allc >> np.uint64(64 - hi)) & np.uint64((1 << (hi - lo)) - 1) for lo, hi in zip(bounds[:-1], bounds[1:])]
    widths = np.diff(bounds)
    masks = [np.uint64(((1 << (hi - lo)) - 1) << (64 - hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]

    def candidates(combo: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        g1, g2 = combo
        key = (parts[g1] << np.uint64(widths[g2])) | parts[g2]
        if queries is None:
            i, j = _pairs_within_runs(np.argsort(key), key)
        else:  # only query-code pairs: join the query keys against the sorted code keys
            i, j = _pairs_across(key[n:], key[:n])
            i = i + n
        x = allc[i] ^ allc[j]
        d = np.bitwise_count(x).astype(np.int32)
        keep = d <= radius
        i, j, d, x = i[keep], j[keep], d[keep], x[keep]
        # report each pair under the first key it shares only (no duplicates across keys)
        agree = np.stack([(x & m) == 0 for m in masks], axis=1)
        first = agree.argmax(axis=1)
        agree[np.arange(len(first)), first] = False
        canonical = (first == g1) & (agree.argmax(axis=1) == g2)
        return (i[canonical] - (0 if queries is None else n)), j[canonical], d[canonical]

    with ThreadPoolExecutor(max_workers=2) as pool:  # sorting and gathers release the GIL
        found = list(pool.map(candidates, combinations(range(len(parts)), 2)))
    return tuple(np.concatenate(col) for col in zip(*found))  # type: ignore[return-value]


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
        previous = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)  # k-means: its BLAS calls inside OpenMP threads ran 2x slower on 2 threads
        try:
            index.train(train)
        finally:
            faiss.omp_set_num_threads(previous)
        index.nprobe = nprobe
    else:
        raise ConfigError(f"unknown index kind {kind!r}; choose ivf or hnsw")
    index.add(x)
    return index


def knn_pairs(vectors: np.ndarray, k: int, min_similarity: float, *, queries: np.ndarray | None = None,
              exact_below: int = 20_000, kind: str = "ivf", nprobe: int = 16, seed: int = 0,
              index=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (a, b, cosine distance) among each vector's ``k`` nearest neighbours with similarity >= ``min_similarity``.

    ``queries`` (same rows as ``vectors``, e.g. mirrored images' embeddings) are searched
    against ``vectors`` instead. Distance is ``1 - cosine similarity``. ``index``: a
    :func:`cosine_index` over ``vectors`` built earlier (one index serves several query sets).
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    q = x if queries is None else np.ascontiguousarray(queries, dtype=np.float32)
    if len(x) < 2:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32)
    if index is None:
        index = cosine_index(x, exact_below=exact_below, kind=kind, nprobe=nprobe, seed=seed)
    kk = min(k + 1, len(x))
    sims, ids = index.search(q, kk)
    rows = np.repeat(np.arange(len(q), dtype=np.int64), kk)
    sims, ids = sims.reshape(-1), ids.reshape(-1).astype(np.int64)
    keep = (ids >= 0) & (sims >= min_similarity)
    return _unique_pairs(rows[keep], ids[keep], (1.0 - sims[keep]).astype(np.float32))
