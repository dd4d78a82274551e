"""Duplicate clusters: union-find over edges, cluster typing and the proposed action per image.

Pure functions over arrays: image positions, labels, splits, digests, a quality score
(:mod:`curate.dedupe.quality`) and the edge list (a, b, method, distance). No I/O.

Cluster types, with precedence ``inter_class`` > ``cross_split`` > ``intra_class``:

* inter_class: members carry different labels (conflicting copies);
* cross_split: one label, members in different splits (a leak between splits);
* intra_class: one label, one split (plain redundancy).

Default policy (configs/dedupe.yaml ``policy``):

* inter_class -> ``exclude_all``: every member ``exclude_conflict`` (``ignore`` keeps them,
  ``as_duplicates`` treats the cluster like an intra-class one);
* cross_split -> ``keep_eval``: members outside the highest-priority evaluation split present
  (``eval_splits``, default test then val) are ``drop_leak``; inside it one representative
  is kept and the other copies are ``drop_duplicate``;
* intra_class -> ``keep_one``: one representative (preferred split first, then the better
  quality image) ``keep``, the rest ``drop_duplicate``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from curate.settings import DedupePolicySettings

ACTIONS = ("keep", "drop_duplicate", "exclude_conflict", "drop_leak")
KINDS = ("exact", "near")
CLUSTER_TYPES = ("inter_class", "cross_split", "intra_class")


def _strength(methods: np.ndarray) -> np.ndarray:
    """Edge strength rank: 0 exact, 1 perceptual hash (and mirrored), 2 embeddings."""
    codes, names = pd.factorize(np.asarray(methods, dtype=object))
    base = [str(m).removesuffix("_mirror") for m in names]
    rank = np.array([0 if m == "exact" else 1 if m in ("phash", "dhash", "whash") else 2 for m in base], np.int64)
    return rank[codes]


def capped_components(n: int, edges: pd.DataFrame, max_size: int) -> np.ndarray:
    """Connected components whose near-duplicate chains are cut at ``max_size`` members.

    Transitive closure chains look-alike images (same pose, same dark background) into clusters
    of many different people. Components larger than ``max_size`` are rebuilt by size-capped
    single linkage: exact-copy edges always join, then the other edges from the strongest
    (hash before embedding, smaller distance first), each only if the merged group stays within
    ``max_size``. Smaller components are left as they are. Labels as :func:`connected_components`.
    """
    a, b = edges["a"].to_numpy(np.int64), edges["b"].to_numpy(np.int64)
    comp = connected_components(n, a, b)
    if max_size <= 0 or len(a) == 0:
        return comp
    big = np.flatnonzero(np.bincount(comp) > max_size)
    if len(big) == 0:
        return comp
    inside = np.isin(comp[a], big)
    methods = edges["method"].to_numpy() if "method" in edges else np.full(len(a), "embedding")
    strength = _strength(methods)[inside]
    dist = (edges["distance"].to_numpy(np.float64) if "distance" in edges else np.zeros(len(a)))[inside]
    ea, eb = a[inside], b[inside]
    # exact copies always join: start from their components (vectorised), then link groups
    exact = strength == 0
    group = connected_components(n, ea[exact], eb[exact])
    parent = list(range(int(group.max()) + 1))
    size = np.bincount(group).tolist()

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    order = np.lexsort((eb, ea, dist, strength))
    order = order[~exact[order]]
    for ga, gb in zip(group[ea[order]].tolist(), group[eb[order]].tolist()):
        ra, rb = find(ga), find(gb)
        if ra != rb and size[ra] + size[rb] <= max_size:
            if size[ra] < size[rb]:
                ra, rb = rb, ra
            parent[rb] = ra
            size[ra] += size[rb]
    nodes = np.flatnonzero(np.isin(comp, big))
    roots = np.array([find(g) for g in group[nodes].tolist()], np.int64)
    relabel = comp.copy()
    relabel[nodes] = comp.max() + 1 + roots  # new ids above the old ones, renumbered below
    return renumber_components(relabel)


def linked_positions(n: int, edges: pd.DataFrame) -> np.ndarray:
    """Sorted positions (0..n-1) that appear in at least one edge."""
    linked = np.zeros(n, bool)
    linked[edges["a"].to_numpy(np.int64)] = True
    linked[edges["b"].to_numpy(np.int64)] = True
    return np.flatnonzero(linked)


def _dense_codes(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Non-negative integer labels -> (codes 0..k-1 in the labels' order, k), in O(n + max label)."""
    used = np.zeros(int(labels.max(initial=-1)) + 1, bool)
    used[labels] = True
    return (np.cumsum(used) - 1)[labels], int(used.sum())


def renumber_components(labels: np.ndarray) -> np.ndarray:
    """Renumber arbitrary group labels 0..k-1 in order of each group's smallest node."""
    n = len(labels)
    if n == 0:
        return np.zeros(0, np.int64)
    labels = np.asarray(labels)
    if labels.dtype.kind in "iu" and labels.min() >= 0 and labels.max() < 4 * n:  # dense codes in O(n)
        dense, _ = _dense_codes(labels)
    else:
        _, dense = np.unique(labels, return_inverse=True)
    first = np.full(dense.max() + 1, n, np.int64)
    np.minimum.at(first, dense, np.arange(n))
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[dense]


def connected_components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Component label per node for undirected edges (a[i], b[i]); the union-find result, in C speed.

    Labels are renumbered 0..k-1 in order of each component's smallest node.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as cc

    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
    _, labels = cc(graph, directed=False)
    return renumber_components(labels)


def _factorize(values: pd.Series, members: np.ndarray, *, na_is_value: bool = False) -> tuple[np.ndarray, pd.Index]:
    """(integer code per member, distinct values); missing values are -1, or one code of their own."""
    codes, uniques = pd.factorize(pd.Series(values).reset_index(drop=True).iloc[members])
    codes = np.asarray(codes, np.int64)
    if na_is_value:
        codes = np.where(codes < 0, len(uniques), codes)
    return codes, uniques


def _rank(codes: np.ndarray, uniques: pd.Index, order: tuple[str, ...]) -> np.ndarray:
    """Position of each value in ``order``; unknown values after them, missing ones (-1) last."""
    ranks = np.array([order.index(u) if u in order else len(order) for u in uniques] + [len(order) + 1], np.int64)
    return ranks[codes]  # code -1 picks the last entry


def _several_per_group(group: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """Whether each of the ``k`` groups holds more than one distinct non-negative code (missing = -1 ignored)."""
    ok = codes >= 0
    lo = np.full(k, np.iinfo(np.int64).max, np.int64)
    hi = np.full(k, -1, np.int64)
    np.minimum.at(lo, group[ok], codes[ok])
    np.maximum.at(hi, group[ok], codes[ok])
    return hi > lo


def assign_clusters(n: int, edges: pd.DataFrame, *, labels: pd.Series, splits: pd.Series,
                    digests: pd.Series, quality: np.ndarray, policy: DedupePolicySettings) -> pd.DataFrame:
    """One row per image that has at least one edge: position, cluster and the proposed action.

    ``edges`` has integer columns ``a`` and ``b`` (positions 0..n-1). ``labels``,
    ``splits`` and ``digests`` are indexed by position (missing values allowed);
    ``quality`` is a float array of length n. Returns columns ``pos``, ``cluster_id``,
    ``kind``, ``cluster_type``, ``inter_class``, ``cross_split``, ``is_representative``,
    ``proposed_action`` (the text columns categorical), sorted by cluster then position.
    ``policy`` is the ``policy`` section of the dedupe settings (validated there).
    """
    columns = ["pos", "cluster_id", "kind", "cluster_type", "inter_class", "cross_split",
               "is_representative", "proposed_action"]
    if len(edges) == 0:
        return pd.DataFrame({c: [] for c in columns})
    comp = capped_components(n, edges, policy.max_cluster_size)
    members = linked_positions(n, edges)
    members = members[np.bincount(comp)[comp[members]] > 1]  # a chain cut can leave a node on its own
    # cluster ids 0..k-1 in order of the smallest member position (comp is numbered that way)
    cid, k = _dense_codes(comp[members])
    split_codes, split_names = _factorize(splits, members)
    inter = _several_per_group(cid, _factorize(labels, members)[0], k)[cid]
    cross = _several_per_group(cid, split_codes, k)[cid]
    one_digest = ~_several_per_group(cid, _factorize(digests, members, na_is_value=True)[0], k)[cid]
    type_code = np.where(inter, 0, np.where(cross, 1, 2))  # positions in CLUSTER_TYPES (precedence order)
    rep, action = _decide(cid, k, type_code, cross, _rank(split_codes, split_names, policy.prefer_splits),
                          _rank(split_codes, split_names, policy.eval_splits),
                          np.asarray(quality, np.float64)[members], members, policy)
    order = np.lexsort((members, cid))
    out = pd.DataFrame({"pos": members[order], "cluster_id": cid[order],
                        "kind": pd.Categorical.from_codes(np.where(one_digest, 0, 1)[order], KINDS),
                        "cluster_type": pd.Categorical.from_codes(type_code[order], CLUSTER_TYPES),
                        "inter_class": inter[order], "cross_split": cross[order],
                        "is_representative": rep[order],
                        "proposed_action": pd.Categorical.from_codes(action[order], ACTIONS)})
    return out


def _decide(cid: np.ndarray, k: int, type_code: np.ndarray, cross: np.ndarray, split_rank: np.ndarray,
            eval_rank: np.ndarray, quality: np.ndarray, pos: np.ndarray,
            pol: DedupePolicySettings) -> tuple[np.ndarray, np.ndarray]:
    """(is_representative, proposed_action code into ACTIONS) per member: one representative per cluster."""
    code = ("keep_one", "keep_eval", "exclude_all", "ignore", "as_duplicates").index  # policy mode -> int
    m = np.array([code(getattr(pol, t)) for t in CLUSTER_TYPES], np.int64)[type_code]
    # "as_duplicates": an inter-class cluster follows the split rule when it spans splits, else the
    # intra-class rule; a cross-split cluster follows the intra-class rule
    split_rule = code(pol.cross_split) if pol.cross_split != "as_duplicates" else code("keep_one")
    is_inter = type_code == CLUSTER_TYPES.index("inter_class")
    m = np.where((m == code("as_duplicates")) & is_inter & cross, split_rule, m)
    m = np.where(m == code("as_duplicates"), code(pol.intra_class), m)
    keep_eval = m == code("keep_eval")
    best_eval = np.full(k, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(best_eval, cid, eval_rank)
    best_eval = best_eval[cid]
    has_eval = best_eval < len(pol.eval_splits)
    inside = ~(keep_eval & has_eval) | (eval_rank == best_eval)
    order = np.lexsort((pos, -quality, split_rank, ~inside, cid))
    first = np.ones(len(order), bool)
    first[1:] = cid[order][1:] != cid[order][:-1]
    rep = np.zeros(len(cid), bool)
    rep[order[first]] = True
    action = np.full(len(cid), ACTIONS.index("keep"), np.int8)
    action[((m == code("keep_one")) | keep_eval) & ~rep] = ACTIONS.index("drop_duplicate")
    action[keep_eval & ~inside] = ACTIONS.index("drop_leak")
    action[m == code("exclude_all")] = ACTIONS.index("exclude_conflict")
    return rep, action


def summarize(clusters: pd.DataFrame, splits: pd.Series) -> dict[str, Any]:
    """Counts per cluster type and kind, leaks per split pair, images per action."""
    out: dict[str, Any] = {"clusters": int(clusters["cluster_id"].nunique()) if len(clusters) else 0,
                           "images_in_clusters": int(len(clusters))}
    per_cluster = clusters.drop_duplicates("cluster_id")
    out["clusters_by_type"] = {t: int((per_cluster["cluster_type"] == t).sum()) for t in CLUSTER_TYPES}
    out["clusters_by_kind"] = {k: int((per_cluster["kind"] == k).sum()) for k in ("exact", "near")}
    out["clusters_flagged"] = {"inter_class": int(per_cluster["inter_class"].sum()),
                               "cross_split": int(per_cluster["cross_split"].sum())}
    out["images_by_action"] = {a: int((clusters["proposed_action"] == a).sum()) for a in ACTIONS}
    split_of = pd.Series(splits).reset_index(drop=True)
    present = pd.DataFrame({"cluster_id": clusters["cluster_id"].to_numpy(),
                            "split": split_of.iloc[clusters["pos"].to_numpy(np.int64)].to_numpy()}).dropna()
    per = present.drop_duplicates().groupby("cluster_id")["split"].agg(lambda s: tuple(sorted(s, key=_split_order)))
    leaks: dict[str, int] = {}
    for combo, count in per[per.map(len) > 1].value_counts().items():
        for i in range(len(combo)):
            for j in range(i + 1, len(combo)):
                key = f"{combo[i]}-{combo[j]}"
                leaks[key] = leaks.get(key, 0) + int(count)
    out["leaks_by_split_pair"] = dict(sorted(leaks.items()))
    return out


def _split_order(split: str) -> tuple[int, str]:
    return ({"train": 0, "val": 1, "test": 2}.get(split, 3), split)
