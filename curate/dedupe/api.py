"""`curate dedupe`: exact, perceptual-hash and embedding near-duplicates -> clusters -> proposed actions.

Writes ``duplicates.parquet``, ``duplicate_pairs.parquet`` and ``dedupe_summary.json`` and
records the run. :func:`find_edges` is the array-level core (images in, edges out) that the
benchmark also calls.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from curate.errors import ConfigError, CurateError
from curate.progress import progress
from curate.settings import DedupeSettings, PixelSettings, load_settings

PAIR_COLUMNS = ("image_id_a", "image_id_b", "method", "distance")
DUPLICATE_COLUMNS = ("image_id", "cluster_id", "kind", "cluster_type", "is_representative", "proposed_action",
                     "inter_class", "cross_split")


def exact_edges(digests: pd.Series) -> pd.DataFrame:
    """Star edges (first member -> each other member) inside every group of equal digests."""
    d = pd.Series(digests).reset_index(drop=True)
    valid = d.notna()
    codes, _ = pd.factorize(d.where(valid, None))
    pos = np.flatnonzero(valid.to_numpy() & (codes >= 0))
    codes = codes[pos]
    order = np.argsort(codes, kind="stable")
    pos, codes = pos[order], codes[order]
    first = np.ones(len(codes), bool)
    first[1:] = codes[1:] != codes[:-1]
    head = pos[first][np.cumsum(first) - 1]
    keep = ~first
    return pd.DataFrame({"a": head[keep], "b": pos[keep], "method": "exact", "distance": 0.0})


def _edge_frame(a, b, dist, method: str) -> pd.DataFrame:
    return pd.DataFrame({"a": np.asarray(a, np.int64), "b": np.asarray(b, np.int64), "method": method,
                         "distance": np.asarray(dist, np.float64)})


def hash_edges(images: np.ndarray, cfg: DedupeSettings, *, timings: dict[str, float] | None = None,
               quiet: bool = True, quality_out: np.ndarray | None = None, engine=None) -> pd.DataFrame:
    """Pairs within the Hamming radius for each configured hash (mirror-aware).

    ``quality_out`` (float32, one per image) is filled with the quality score during the first hash pass.
    ``engine`` (:class:`curate.engine.Engine`, None = this process) computes the hashes.
    """
    from curate.dedupe.hashing import hash_images
    from curate.dedupe.search import hamming_pairs

    hc = cfg.hash
    frames = []
    for method in progress(hc.methods, desc="hashes", quiet=quiet or len(hc.methods) < 2):
        t0 = time.perf_counter()
        codes, mirrored = hash_images(images, method, mirror=hc.mirror, quality_out=quality_out, engine=engine)
        quality_out = None
        t1 = time.perf_counter()
        frames.append(_edge_frame(*hamming_pairs(codes, hc.radius, method=hc.search, max_shared=hc.max_shared),
                                  method))
        if hc.mirror:
            a, b, d = hamming_pairs(codes, hc.radius, queries=mirrored, method=hc.search, max_shared=hc.max_shared)
            frames.append(_edge_frame(a, b, d, f"{method}_mirror"))
        if timings is not None:
            timings[f"{method}_hash_s"] = round(t1 - t0, 3)
            timings[f"{method}_search_s"] = round(time.perf_counter() - t1, 3)
    return pd.concat(frames, ignore_index=True) if frames else _edge_frame([], [], [], "phash")


def embedding_edges(images: np.ndarray, kind: str, cfg: DedupeSettings, *, known: pd.DataFrame | None = None,
                    groups: np.ndarray | None = None, seed: int = 0, timings: dict[str, float] | None = None,
                    quiet: bool = True, engine=None) -> pd.DataFrame:
    """kNN edges from an embedder; pixel candidates are verified by registration (mirror-aware).

    ``known`` (edges already found) and ``groups`` (an exact-copy group code per image) spare
    registrations whose outcome is already settled (see :func:`_verify`). ``engine``
    (:class:`curate.engine.Engine`, None = this process) computes the embeddings
    (:func:`curate.dedupe.embed.embed_images`).
    """
    from curate.dedupe.embed import embed_images, make_embedder
    from curate.dedupe.search import cosine_index, knn_pairs
    from curate.engine import LocalEngine

    if kind in (None, "none", ""):
        return _edge_frame([], [], [], kind or "none")
    if kind not in ("pixel", "clip", "cnn") or (kind == "cnn" and not cfg.cnn.checkpoint):
        make_embedder(kind, cfg)  # a refused choice: its ConfigError
    if len(images) < 2:
        return _edge_frame([], [], [], kind)
    kc = cfg.knn
    t0 = time.perf_counter()
    vecs, mirrored = embed_images(kind, cfg, images, engine=engine or LocalEngine(), mirror=cfg.hash.mirror)
    t1 = time.perf_counter()
    floor = kc.min_similarity if kind == "pixel" else 1.0 - getattr(cfg, kind).max_distance
    index = cosine_index(vecs, exact_below=kc.exact_below, kind=kc.index, nprobe=kc.nprobe,
                         seed=seed)  # one index serves the images and their mirrored queries
    found = [(*knn_pairs(vecs, kc.k, floor, index=index), False)]
    if mirrored is not None:
        found.append((*knn_pairs(vecs, kc.k, floor, queries=mirrored, index=index), True))
    t2 = time.perf_counter()
    counts = {f"{kind}_candidates": int(sum(len(f[0]) for f in found))}
    if kind == "pixel" and cfg.pixel.verify:  # both candidate sets in one registration run
        found = _verify(images, found, cfg.pixel, known, groups, quiet, counts)
    frames = [_edge_frame(a, b, dist, f"{kind}_mirror" if is_mirror else kind) for a, b, dist, is_mirror in found]
    if timings is not None:
        timings.update({f"{kind}_embed_s": round(t1 - t0, 3), f"{kind}_knn_s": round(t2 - t1, 3),
                        f"{kind}_verify_s": round(time.perf_counter() - t2, 3)})
        timings.update(counts)
    return pd.concat(frames, ignore_index=True)


def _verify(images, found, pc: PixelSettings, known, groups, quiet, counts: dict | None = None):
    """Keep the candidate pairs whose aligned NCC reaches ``min_aligned_ncc``; distance = 1 - NCC.

    ``found``: candidate sets ``(a, b, distance, is_mirror)``; the same sets come back, filtered.
    Registration runs once per distinct pair of image contents: pairs already joined by a
    known (exact or hash) edge are skipped, pairs inside one exact-copy group (``groups``,
    a digest code per image) are skipped (their exact edges cover them), and a pair whose
    images are exact copies of another candidate pair's takes that pair's score (equal
    pixels, equal score). The kept pairs and scores equal verifying every candidate. ``counts``
    receives ``pixel_registered``: the registrations run.
    """
    from curate.dedupe.verify import verify_pairs

    sets = [prune_candidates(a, b, known, groups) + (is_mirror,) for a, b, _, is_mirror in found]
    a = np.concatenate([x[0] for x in sets])
    b = np.concatenate([x[1] for x in sets])
    mirror = np.concatenate([np.full(len(x[0]), x[2], bool) for x in sets])
    scores = np.zeros(len(a), np.float32)
    if len(a):
        # one registration per distinct (content of a, content of b, mirrored): a group's first image stands for it
        ra, rb = a, b
        if groups is not None:
            first_of = _first_of_group(groups)
            ra, rb = first_of[groups[a]], first_of[groups[b]]
        base = int(max(ra.max(), rb.max())) + 1
        key = (ra * base + rb) * 2 + mirror
        _, first, inv = np.unique(key, return_index=True, return_inverse=True)
        if counts is not None:
            counts["pixel_registered"] = int(len(first))
        fine_reject = tuple(pc.min_aligned_ncc - m for m in pc.fine_reject_margin)
        with progress(total=len(first), desc="verify pairs", quiet=quiet) as bar:
            scores = verify_pairs(images, ra[first], rb[first], mirror=mirror[first],
                                  coarse_reject=pc.coarse_reject, fine_reject=fine_reject,
                                  tol=tuple(np.broadcast_to(pc.converge_px or 0.0, 2).tolist()),
                                  progress=bar.update)[inv.ravel()]
    keep = scores >= pc.min_aligned_ncc
    out, s = [], 0
    for sa, sb, is_mirror in sets:
        k, sc = keep[s:s + len(sa)], scores[s:s + len(sa)]
        out.append((sa[k], sb[k], 1.0 - sc[k].astype(np.float64), is_mirror))
        s += len(sa)
    return out


def _first_of_group(groups: np.ndarray) -> np.ndarray:
    """The smallest position of each group code (codes 0..k-1)."""
    first = np.full(int(groups.max()) + 1, len(groups), np.int64)
    np.minimum.at(first, groups, np.arange(len(groups)))
    return first


def prune_candidates(a: np.ndarray, b: np.ndarray, known: pd.DataFrame | None,
                     groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs (a, b) that still need registration: not an edge of ``known`` and (with
    ``groups``, an exact-copy group code per image) not two copies of one image."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    if known is not None and len(known) and len(a):
        done = pd.MultiIndex.from_arrays([np.minimum(known["a"], known["b"]), np.maximum(known["a"], known["b"])])
        fresh = ~pd.MultiIndex.from_arrays([a, b]).isin(done)
        a, b = a[fresh], b[fresh]
    if groups is not None and len(a):
        other = groups[a] != groups[b]
        a, b = a[other], b[other]
    return a, b


def find_edges(images: np.ndarray, digests: pd.Series | None, cfg: DedupeSettings, *, embedder: str | None = None,
               seed: int = 0, quiet: bool = True, timings: dict[str, float] | None = None,
               quality_out: np.ndarray | None = None, engine=None) -> pd.DataFrame:
    """Every duplicate edge (a, b, method, distance) among ``images``; a < b positions.

    Near edges between images of one digest group are dropped (the exact edges cover them).
    ``quality_out`` (float32, one per image) is filled with the quality score when a hash runs.
    ``engine`` (:class:`curate.engine.Engine`, None = this process) runs the per-image work
    (hashes, quality sums, embeddings); the search, registration and clusters run here.
    """
    timings = {} if timings is None else timings
    frames = []
    t0 = time.perf_counter()
    if cfg.exact and digests is not None:
        frames.append(exact_edges(digests))
    timings["exact_s"] = round(time.perf_counter() - t0, 3)
    if cfg.hash.methods:
        frames.append(hash_edges(images, cfg, timings=timings, quiet=quiet, quality_out=quality_out, engine=engine))
    kind = cfg.embedder if embedder is None else embedder
    groups = None if digests is None else _group_codes(digests)
    if kind and kind != "none":
        known = pd.concat(frames, ignore_index=True) if frames else None
        frames.append(embedding_edges(images, kind, cfg, known=known, groups=groups, seed=seed, timings=timings,
                                      quiet=quiet, engine=engine))
    edges = pd.concat(frames, ignore_index=True) if frames else _edge_frame([], [], [], "exact")
    if groups is not None and len(edges):  # integer digest-group codes: no per-edge digest strings
        same = (groups[edges["a"].to_numpy(np.int64)] == groups[edges["b"].to_numpy(np.int64)]) & \
            (edges["method"] != "exact").to_numpy()
        edges = edges[~same]
    return edges.reset_index(drop=True)


def _group_codes(digests: pd.Series) -> np.ndarray:
    """An integer code per image, equal for equal digests; an image without a digest is its own group."""
    codes, _ = pd.factorize(pd.Series(digests).reset_index(drop=True))
    missing = np.flatnonzero(codes < 0)
    codes[missing] = codes.max(initial=-1) + 1 + np.arange(len(missing))
    return codes.astype(np.int64)


def fill_quality(images: np.ndarray, edges: pd.DataFrame, quality: np.ndarray) -> None:
    """Score the images of ``edges`` whose ``quality`` is still NaN (no hash pass filled it)."""
    from curate.dedupe.clusters import linked_positions
    from curate.dedupe.quality import quality_score

    members = linked_positions(len(quality), edges)
    missing = members[np.isnan(quality[members])]
    if len(missing):
        quality[missing] = quality_score(images, missing)


def dedupe(ws, *, overrides: dict | list[str] | None = None, config_file: str | Path | None = None,
           embedder: str | None = None, seed: int = 0, quiet: bool = False,
           argv: list[str] | None = None) -> dict[str, Any]:
    """Run the whole dedupe on a workspace; writes the three outputs and returns the summary.

    Writes duplicates.parquet (one row per image: cluster, keep/drop/exclude proposal, label conflict,
    cross-split leak), duplicate_pairs.parquet and dedupe_summary.json.

    Parameters
    ----------
    ws : Workspace
        An ingested workspace (CurateError when it holds no images).
    overrides : list of str or dict, optional
        ``KEY=VALUE`` strings (``--set``) or a nested dict merged last over the settings of
        configs/dedupe.yaml; an unknown key is refused (ConfigError, exit 2). Default None.
    config_file : str or Path, optional
        A YAML file merged over those defaults before ``overrides`` (``--config``). Default None.
    embedder : {"pixel", "clip", "cnn", "none"}, optional
        The near-duplicate embedder; None = the settings' ``embedder`` (``pixel`` as shipped);
        ``none`` = exact copies and perceptual hashes only. Default None.
    seed : int, default=0
        Seed of every sampled step (same seed, same outputs).
    quiet : bool, default=False
        No progress bars or messages on stderr.
    argv : list of str, optional
        The command line recorded in the workspace's run log; None = this process's. Default None.
    """
    from curate.dedupe.clusters import assign_clusters
    from curate.engine import get_engine
    from curate.workspace import utc_now

    started = utc_now()
    t_start = time.perf_counter()
    cfg = load_settings("dedupe", overrides, config_file)  # a bad file or override: ConfigError (exit 2)
    if embedder is not None:
        cfg = dataclasses.replace(cfg, embedder=embedder)
    manifest = ws.manifest()
    if len(manifest) == 0:
        raise CurateError(f"{ws.root}: the workspace holds no images; run `curate ingest` first")
    images = ws.pixels()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    images = np.ascontiguousarray(images)
    timings["load_s"] = round(time.perf_counter() - t0, 3)
    quality = np.full(len(manifest), np.nan, np.float32)
    try:
        edges = find_edges(images, manifest["digest"], cfg, seed=seed, quiet=quiet, timings=timings,
                           quality_out=quality, engine=get_engine())
    except ConfigError as exc:  # a refused setting (hash method, search, embedder, its checkpoint, ...)
        raise ConfigError(f"dedupe: {exc}") from None
    t0 = time.perf_counter()
    fill_quality(images, edges, quality)
    clusters = assign_clusters(len(manifest), edges, labels=manifest["label"], splits=manifest["split"],
                               digests=manifest["digest"], quality=quality, policy=cfg.policy)
    dup, pairs = _output_frames(manifest["image_id"].astype("string").to_numpy(), clusters, edges)
    timings["clusters_s"] = round(time.perf_counter() - t0, 3)
    summary = _summary(cfg, manifest, clusters, dup, pairs)
    t0 = time.perf_counter()
    with ws.lock():
        ws.write_parquet("duplicates.parquet", dup)
        ws.write_parquet("duplicate_pairs.parquet", pairs)
        timings["write_s"] = round(time.perf_counter() - t0, 3)
        timings["total_s"] = round(time.perf_counter() - t_start, 3)
        summary["timings"] = timings
        summary["outputs"] = ["duplicates.parquet", "duplicate_pairs.parquet", "dedupe_summary.json"]
        ws.write_json("dedupe_summary.json", summary)
    ws.record_run("dedupe", argv=argv, seed=seed, started=started, options=cfg.to_dict(),
                  counts={"images": summary["images"], "clusters": summary["clusters"],
                          "images_in_clusters": summary["images_in_clusters"], "pairs": summary["pairs"],
                          **{f"action_{k}": v for k, v in summary["images_by_action"].items()}})
    return summary


def _output_frames(ids: np.ndarray, clusters: pd.DataFrame, edges: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """duplicates.parquet (one row per clustered image) and duplicate_pairs.parquet (one per edge), by image id."""
    dup = pd.DataFrame({
        "image_id": pd.Series(ids[clusters["pos"].to_numpy(np.int64)], dtype="string"),
        "cluster_id": clusters["cluster_id"].astype("int64").to_numpy(),
        "kind": pd.Series(clusters["kind"].to_numpy(), dtype="string"),
        "cluster_type": pd.Series(clusters["cluster_type"].to_numpy(), dtype="string"),
        "is_representative": clusters["is_representative"].astype(bool).to_numpy(),
        "proposed_action": pd.Series(clusters["proposed_action"].to_numpy(), dtype="string"),
        "inter_class": clusters["inter_class"].astype(bool).to_numpy(),
        "cross_split": clusters["cross_split"].astype(bool).to_numpy(),
    })
    pairs = pd.DataFrame({
        "image_id_a": pd.Series(ids[edges["a"].to_numpy(np.int64)], dtype="string"),
        "image_id_b": pd.Series(ids[edges["b"].to_numpy(np.int64)], dtype="string"),
        "method": pd.Series(edges["method"].to_numpy(), dtype="string"),
        "distance": edges["distance"].astype("float64").to_numpy(),
    })
    return dup, pairs


def _summary(cfg: DedupeSettings, manifest: pd.DataFrame, clusters: pd.DataFrame, dup: pd.DataFrame,
             pairs: pd.DataFrame) -> dict[str, Any]:
    """dedupe_summary.json without its timings: counts by cluster type, action, method, and the settings used."""
    from curate.dedupe.clusters import summarize

    return {"images": int(len(manifest)), **summarize(clusters, manifest["split"]),
            "pairs": int(len(pairs)),
            "pairs_by_method": {k: int(v) for k, v in pairs["method"].value_counts().sort_index().items()},
            "exact_groups": int((dup[dup["kind"] == "exact"]["cluster_id"].nunique())),
            "embedder": cfg.embedder, "hash_methods": list(cfg.hash.methods),
            "hash_radius": cfg.hash.radius, "mirror": cfg.hash.mirror}


def dedupe_step(ws, options: dict[str, Any], *, seed: int, quiet: bool) -> dict[str, Any]:
    """Pipeline step ``dedupe``: options are config overrides (plus ``embedder``)."""
    options = dict(options or {})
    return dedupe(ws, overrides=options, seed=seed, quiet=quiet, argv=["pipeline", "dedupe"])


def render_summary(summary: dict[str, Any]) -> str:
    """Human-readable summary for the terminal."""
    lines = [f"{summary['images']} images: {summary['clusters']} duplicate clusters holding "
             f"{summary['images_in_clusters']} images ({summary['exact_groups']} exact groups)"]
    t = summary["clusters_by_type"]
    lines.append(f"  inter-class (conflicting labels): {t['inter_class']}   cross-split: {t['cross_split']}   "
                 f"intra-class: {t['intra_class']}")
    if summary["leaks_by_split_pair"]:
        lines.append("  leaks: " + ", ".join(f"{k} {v}" for k, v in summary["leaks_by_split_pair"].items()))
    lines.append("  proposed: " + ", ".join(f"{k} {v}" for k, v in summary["images_by_action"].items()))
    lines.append("  pairs by method: " + ", ".join(f"{k} {v}" for k, v in summary["pairs_by_method"].items()))
    lines.append(f"  {summary['timings']['total_s']:.1f}s; wrote duplicates.parquet, duplicate_pairs.parquet, "
                 "dedupe_summary.json")
    return "\n".join(lines)
