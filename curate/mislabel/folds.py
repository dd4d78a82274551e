"""Duplicate-aware, stratified, seeded K-fold assignment (pure functions).

Copies of one image must share a fold, otherwise the model sees the held-out image's label
through its copy and the out-of-fold probability just echoes the label. Groups come from
dedupe's ``duplicates.parquet`` clusters and, always, from identical pixel digests.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def duplicate_groups(n: int, *keys: np.ndarray | pd.Series | None) -> np.ndarray:
    """Group id per row: rows sharing any non-null key value (in any key column) are merged.

    Each key is an (n,) array-like of hashable values with nulls (None/NaN/<NA>/-1 for ints
    is *not* special: pass nulls as None/NaN). Returns dense int64 ids, first-appearance order.
    """
    parent = np.arange(n)

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    for key in keys:
        if key is None:
            continue
        values = pd.Series(key).reset_index(drop=True)
        if len(values) != n:
            raise ValueError(f"group key has {len(values)} values for {n} rows")
        present = values[values.notna()]
        for _, rows in present.groupby(present, sort=False).groups.items():
            rows = np.asarray(rows)
            first = find(int(rows[0]))
            for r in rows[1:]:
                other = find(int(r))
                if other != first:
                    parent[other] = first
    roots = np.array([find(i) for i in range(n)], dtype=np.int64)
    _, dense = np.unique(roots, return_inverse=True)
    order = pd.unique(dense)
    remap = np.empty(len(order), dtype=np.int64)
    remap[order] = np.arange(len(order))
    return remap[dense]


def assign_folds(labels: np.ndarray, groups: np.ndarray, k: int = 5, seed: int = 0) -> np.ndarray:
    """Fold (0..k-1) per row: every group in one fold, class mix of each fold close to the whole.

    Greedy: groups are visited largest first (ties in a seeded random order); each goes to the
    fold whose class counts, after adding it, stay closest to a k-th of the totals, preferring
    the fold with the fewest images. Same inputs and seed, same folds.
    """
    labels = np.asarray(labels, dtype=np.int64)
    groups = np.asarray(groups, dtype=np.int64)
    n = len(labels)
    if groups.shape != (n,):
        raise ValueError("labels and groups must have the same length")
    if k < 2:
        raise ValueError(f"k must be >= 2, got {k}")
    n_groups = int(groups.max()) + 1 if n else 0
    if n_groups < k:
        raise ValueError(f"cannot make {k} folds from {n_groups} groups of images")
    n_classes = int(labels.max()) + 1 if n else 1
    group_counts = np.zeros((n_groups, n_classes), dtype=np.int64)
    np.add.at(group_counts, (groups, labels), 1)
    target = group_counts.sum(axis=0) / k
    sizes = group_counts.sum(axis=1)
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(n_groups)
    order = shuffled[np.argsort(-sizes[shuffled], kind="stable")]
    fold_counts = np.zeros((k, n_classes), dtype=np.float64)
    fold_of_group = np.empty(n_groups, dtype=np.int64)
    scale = np.maximum(target, 1.0)
    for g in order:
        after = fold_counts + group_counts[g]
        # extra overshoot of the class targets (relative) if g went to each fold
        cost = ((np.maximum(after - target, 0.0) - np.maximum(fold_counts - target, 0.0)) / scale).sum(axis=1)
        load = fold_counts.sum(axis=1)
        best = np.lexsort((rng.random(k), load, np.round(cost, 9)))[0]
        fold_of_group[g] = best
        fold_counts[best] += group_counts[g]
    return fold_of_group[groups]
