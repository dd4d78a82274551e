"""Realistic stand-ins for other areas' outputs, built from a workspace's real pixels.

The review and report code reads duplicates.parquet, findings.parquet, the mislabel OOF
outputs and runs/*/metrics.json. These builders write files with exactly the contract
columns (see HELPERS contracts and curate/findings.py) so review/report can be tested
without running dedupe, audit, mislabel or train-eval.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from curate.findings import make_findings, write_findings
from curate.labels import CLASSES
from curate.workspace import Workspace

QUALITY_CHECKS = ("blank", "dark", "light", "low_contrast", "blurry", "low_information")
MODEL_CHECKS = ("non_face", "misaligned", "watermark", "cartoon", "occlusion")


def write_duplicates(ws: Workspace) -> pd.DataFrame:
    """Exact-duplicate clusters from pixel digests, with the dedupe contract columns."""
    m = ws.manifest()
    groups = m[m["digest"].duplicated(keep=False)]
    rows = []
    for cid, (_, g) in enumerate(sorted(groups.groupby("digest"), key=lambda kv: kv[1].index.min())):
        inter = g["label"].nunique() > 1
        cross = g["split"].nunique(dropna=False) > 1
        ctype = "inter_class" if inter else "cross_split" if cross else "intra_class"
        for k, (_, rec) in enumerate(g.iterrows()):
            rep = k == 0
            action = ("exclude_conflict" if inter else "keep" if rep else
                      "drop_leak" if cross else "drop_duplicate")
            rows.append({"image_id": rec["image_id"], "cluster_id": cid, "kind": "exact", "cluster_type": ctype,
                         "is_representative": rep, "proposed_action": action, "inter_class": inter,
                         "cross_split": cross})
    df = pd.DataFrame(rows)
    df["cluster_id"] = df["cluster_id"].astype("int64")
    ws.write_parquet("duplicates.parquet", df)
    return df


def write_oof(ws: Workspace, seed: int = 0, noise: float = 0.12) -> np.ndarray:
    """OOF probabilities that mostly agree with the label; ``noise`` of rows point elsewhere."""
    rng = np.random.default_rng(seed)
    m = ws.manifest()
    n, c = len(m), len(CLASSES)
    given = m["label"].map({name: i for i, name in enumerate(CLASSES)}).to_numpy(dtype=np.int64)
    target = given.copy()
    wrong = rng.random(n) < noise
    target[wrong] = rng.integers(0, c, wrong.sum())
    logits = rng.normal(0, 1, (n, c))
    logits[np.arange(n), target] += 2.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.save(ws.path("oof_probs.npy"), probs.astype(np.float32))
    ws.write_parquet("oof_index.parquet", pd.DataFrame({
        "image_id": m["image_id"].astype("string"), "fold": rng.integers(0, 5, n), "given_label": m["label"]}))
    acc = float((probs.argmax(1) == given).mean())
    ws.write_json("oof_meta.json", {"classes": list(CLASSES), "recipe": "baseline_cnn", "folds": 5, "accuracy": acc})
    return probs


def write_all_findings(ws: Workspace, probs: np.ndarray | None = None) -> pd.DataFrame:
    """Findings for every check: quality from pixel statistics, model checks from texture cues."""
    m = ws.manifest()
    px = np.asarray(ws.pixels(), dtype=np.float32)
    ids = m["image_id"]
    mean, std = px.mean((1, 2)), px.std((1, 2))
    grad = np.abs(np.diff(px, axis=2)).mean((1, 2))
    frames = []
    stats = {"blank": 1.0 - np.clip(std / 10.0, 0, 1), "dark": 1.0 - mean / 255.0, "light": mean / 255.0,
             "low_contrast": 1.0 - np.clip(std / 80.0, 0, 1), "blurry": 1.0 - np.clip(grad / 20.0, 0, 1),
             "low_information": 1.0 - np.clip(std / 40.0, 0, 1)}
    cut = {"blank": 0.9, "dark": 0.8, "light": 0.8, "low_contrast": 0.75, "blurry": 0.8, "low_information": 0.7}
    for check, score in stats.items():
        flagged = score >= cut[check]
        frames.append(make_findings(ids, check, score, flagged, [f"mean {a:.0f}, std {b:.1f}" for a, b in zip(mean, std)]))
    rng = np.random.default_rng(1)
    for check in MODEL_CHECKS:
        score = rng.beta(1.2, 8.0, len(m))
        flagged = score >= np.quantile(score, 0.97)
        frames.append(make_findings(ids, check, score, flagged, [f"{check} p={s:.2f}" for s in score]))
    if probs is not None:
        given = m["label"].map({name: i for i, name in enumerate(CLASSES)}).to_numpy()
        self_conf = probs[np.arange(len(m)), given]
        pred = probs.argmax(1)
        flagged = (pred != given) & (probs.max(1) > 0.5)
        frames.append(make_findings(ids, "mislabel", 1.0 - self_conf, flagged,
                                    [f"given {CLASSES[g]} p={p:.2f}; model says {CLASSES[q]}"
                                     for g, p, q in zip(given, self_conf, pred)],
                                    suggested_label=[CLASSES[q] if f else None for q, f in zip(pred, flagged)]))
    return write_findings(ws, pd.concat(frames, ignore_index=True))


def write_runs(ws: Workspace) -> None:
    """Two train-eval runs (raw vs cleaned) with the metrics.json contract."""
    rng = np.random.default_rng(2)
    for name, acc in (("raw", 0.61), ("cleaned", 0.66)):
        conf = rng.integers(5, 30, (7, 7))
        conf[np.arange(7), np.arange(7)] = rng.integers(60, 120, 7)
        support = conf.sum(1)
        prec = np.diag(conf) / conf.sum(0)
        rec = np.diag(conf) / support
        f1 = 2 * prec * rec / (prec + rec)
        per_class = {c: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                     for c, p, r, f, s in zip(CLASSES, prec, rec, f1, support)}
        path = ws.path(f"runs/{name}/metrics.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"accuracy": acc, "macro_f1": float(f1.mean()), "per_class": per_class,
                                    "confusion": conf.tolist(), "classes": list(CLASSES), "split": "test",
                                    "recipe": "baseline_cnn", "seed": 0, "images_per_s": 900.0, "seconds": 42.0}))


def populate(ws: Workspace) -> Workspace:
    """Write every upstream output the review and report read."""
    write_duplicates(ws)
    probs = write_oof(ws)
    write_all_findings(ws, probs)
    write_runs(ws)
    return ws


@pytest.fixture()
def review_ws(sample_ws) -> Workspace:
    """A private sample workspace with duplicates, findings, OOF outputs and runs written."""
    return populate(sample_ws)
