"""Connected components (against a plain union-find), cluster typing and the proposed-action policy."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from curate.dedupe.clusters import assign_clusters, connected_components, summarize
from curate.errors import ConfigError
from curate.settings import load_settings


class UnionFind:
    """Disjoint sets over 0..n-1 with path halving and union by size."""

    def __init__(self, n: int):
        self.parent = np.arange(n, dtype=np.int64)
        self.size = np.ones(n, dtype=np.int64)

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return int(x)

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        return ra

    def labels(self) -> np.ndarray:
        """Root of every element."""
        return np.array([self.find(i) for i in range(len(self.parent))], dtype=np.int64)


def test_connected_components_equal_union_find():
    rng = np.random.default_rng(0)
    n = 500
    a, b = rng.integers(0, n, 300), rng.integers(0, n, 300)
    uf = UnionFind(n)
    for x, y in zip(a, b):
        uf.union(int(x), int(y))
    roots = uf.labels()
    comp = connected_components(n, a, b)
    # same partition
    assert len(set(zip(roots, comp))) == len(set(roots)) == len(set(comp))
    assert comp[0] == 0 and comp.max() == len(set(comp)) - 1


def _run(edges, labels, splits, quality=None, digests=None, **policy):
    n = len(labels)
    return assign_clusters(n, pd.DataFrame({"a": [e[0] for e in edges], "b": [e[1] for e in edges]}),
                           labels=pd.Series(labels, dtype="string"), splits=pd.Series(splits, dtype="string"),
                           digests=pd.Series(digests or [f"d{i}" for i in range(n)], dtype="string"),
                           quality=np.asarray(quality if quality is not None else np.zeros(n)),
                           policy=load_settings("dedupe", {"policy": policy}).policy)


def test_types_and_default_actions():
    labels = ["happy", "sad", "fear", "fear", "angry", "angry", "angry", "neutral"]
    splits = ["train", "test", "train", "test", "train", "train", "train", "val"]
    quality = [0, 0, 0, 0, 1.0, 5.0, 2.0, 0]
    out = _run([(0, 1), (2, 3), (4, 5), (5, 6)], labels, splits, quality).set_index("pos")
    assert 7 not in out.index                                    # singletons never appear
    assert (out.loc[[0, 1], "cluster_type"] == "inter_class").all()
    assert (out.loc[[0, 1], "proposed_action"] == "exclude_conflict").all()
    assert out.loc[0, "cross_split"] and out.loc[0, "inter_class"]   # precedence: inter_class wins
    assert (out.loc[[2, 3], "cluster_type"] == "cross_split").all()
    assert out.loc[2, "proposed_action"] == "drop_leak" and out.loc[3, "proposed_action"] == "keep"
    assert out.loc[3, "is_representative"]
    intra = out.loc[[4, 5, 6]]
    assert (intra["cluster_type"] == "intra_class").all()
    assert intra["is_representative"].sum() == 1 and intra.loc[5, "is_representative"]  # best quality kept
    assert list(intra["proposed_action"]) == ["drop_duplicate", "keep", "drop_duplicate"]
    assert out.groupby("cluster_id")["is_representative"].sum().eq(1).all()


def test_cross_split_prefers_test_then_keeps_one_copy_there():
    labels = ["sad"] * 5
    splits = ["train", "val", "test", "test", "train"]
    out = _run([(0, 1), (1, 2), (2, 3), (3, 4)], labels, splits, quality=[0, 0, 1, 3, 0]).set_index("pos")
    assert out.loc[[0, 1, 4], "proposed_action"].eq("drop_leak").all()
    assert out.loc[3, "proposed_action"] == "keep" and out.loc[2, "proposed_action"] == "drop_duplicate"
    summary = summarize(out.reset_index(), pd.Series(splits))
    assert summary["leaks_by_split_pair"] == {"train-val": 1, "train-test": 1, "val-test": 1}


def test_intra_class_prefers_train_member_and_kind():
    out = _run([(0, 1)], ["fear", "fear"], [None, "train"], quality=[9.0, 0.0],
               digests=["x", "x"]).set_index("pos")
    assert out.loc[1, "is_representative"] and out.loc[0, "proposed_action"] == "drop_duplicate"
    assert (out["kind"] == "exact").all() and (out["cluster_type"] == "intra_class").all()


def test_policy_overrides():
    labels, splits = ["happy", "sad"], ["train", "train"]
    out = _run([(0, 1)], labels, splits, inter_class="ignore")
    assert out["proposed_action"].eq("keep").all()
    out = _run([(0, 1)], labels, splits, quality=[0, 1], inter_class="as_duplicates")
    assert sorted(out["proposed_action"]) == ["drop_duplicate", "keep"]
    out = _run([(0, 1)], ["sad", "sad"], ["train", "test"], cross_split="ignore")
    assert out["proposed_action"].eq("keep").all()
    with pytest.raises(ConfigError, match="dedupe.policy.intra_class: expected one of keep_one, ignore; got 'bogus'"):
        _run([(0, 1)], labels, splits, intra_class="bogus")
    with pytest.raises(ConfigError, match="dedupe.policy.max_cluster_size: expected a number >= 0; got -1"):
        _run([(0, 1)], labels, splits, max_cluster_size=-1)


def test_missing_labels_do_not_make_conflicts():
    out = _run([(0, 1)], [None, "sad"], ["train", "train"])
    assert not out["inter_class"].any() and (out["cluster_type"] == "intra_class").all()


def test_look_alike_chains_are_cut_but_exact_groups_never_split():
    from curate.dedupe.clusters import capped_components

    # a chain of 40 images linked by embedding edges (distance grows along the chain) and an
    # exact-copy group of 20 images with one weak embedding edge to the chain
    chain = [(i, i + 1, "pixel", 0.001 * (i % 7 + 1)) for i in range(39)]
    exact = [(40, 40 + k, "exact", 0.0) for k in range(1, 20)]
    bridge = [(39, 40, "pixel", 0.04)]
    rows = chain + exact + bridge
    edges = pd.DataFrame(rows, columns=["a", "b", "method", "distance"])
    comp = capped_components(60, edges, 16)
    sizes = np.bincount(comp)
    assert sizes.max() == 20 and len(set(comp[40:60])) == 1  # the exact group stays whole (over the cap)
    assert comp[39] != comp[40]                                # the weak bridge is cut
    chain_sizes = np.bincount(comp[:40])
    assert chain_sizes[chain_sizes > 0].max() <= 16 and (chain_sizes[chain_sizes > 0] >= 2).all()
    assert np.array_equal(capped_components(60, edges, 0), np.zeros(60, np.int64))  # 0 = plain components
    # assign_clusters applies the cap from the policy, and a cut never leaves a one-image cluster
    labels = pd.Series(["happy"] * 30 + ["sad"] * 30)
    out = assign_clusters(60, edges, labels=labels, splits=pd.Series(["train"] * 60),
                          digests=pd.Series([f"d{i}" for i in range(40)] + ["same"] * 20),
                          quality=np.zeros(60), policy=load_settings("dedupe", ["policy.max_cluster_size=16"]).policy)
    assert out.groupby("cluster_id").size().min() >= 2 and out["cluster_id"].nunique() >= 4
    assert (out.loc[out["pos"] >= 40, "kind"] == "exact").all()
