"""``curate bench-audit``: recall of the audit checks on defects injected into real FER2013 crops.

Protocol (seeded):
1. ingest the data once (or reuse a workspace given as ``--data``);
2. split the images in two halves, *tune* and *report*;
3. for each half build a workspace = the half's untouched images + injected defects made
   from some of them (generators of :mod:`curate.audit.bench_defects`, seed differs per half),
   run the audit on it (the defect model trains on that workspace, as in real use);
4. FPR = share of untouched images flagged; recall = share of injected images flagged, counting
   only injections whose source image the same check did not already flag; also recall at
   FPR 2% / 5% (thresholds = quantiles of the untouched images' scores).
The *tune* half suggests thresholds (written into the report; copy them to configs/audit.yaml);
the figures quoted as results come from the *report* half only.
"""
from __future__ import annotations

import platform
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from curate.audit import bench_defects as D
from curate.config import load_config
from curate.errors import CurateError
from curate.workspace import Workspace, coerce_manifest

DEFECTS: dict[str, tuple[str, ...]] = {
    # defect type -> the checks expected to flag it
    "blank": ("blank",),
    "wm_text_20_40": ("watermark",), "wm_text_40_80": ("watermark",), "wm_logo_40_80": ("watermark",),
    "shifted": ("misaligned",), "scaled": ("misaligned",), "rotated": ("misaligned",),
    "non_face_patch": ("non_face",),
    # diagnostic, not a benchmark defect: overlays drawn by the defect model's own training generator
    "wm_training_generator": ("watermark",),
}
TARGET_FPR = {"watermark": 0.015, "misaligned": 0.04, "non_face": 0.015, "cartoon": 0.01, "occlusion": 0.01}


MAX_DRAWS = 8


def visible(before: np.ndarray, after: np.ndarray, min_pixels: int = 8, min_change: float = 12.0) -> bool:
    """True when an overlay changed at least ``min_pixels`` pixels (by > 3 levels) by ``min_change`` on average."""
    diff = np.abs(after.astype(np.float32) - before.astype(np.float32))
    changed = diff > 3
    return int(changed.sum()) >= min_pixels and float(diff[changed].mean()) >= min_change


def inject(kind: str, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One injected defect of type ``kind`` made from the real crop ``img``."""
    if kind == "blank":
        level = float(rng.choice([0, 255, rng.uniform(0, 255)]))
        noise = rng.normal(0, float(rng.choice([0, 0, 1.5])), img.shape)
        return np.clip(level + noise, 0, 255).astype(np.uint8)
    if kind == "wm_training_generator":
        from curate.audit.synthetic import watermark

        return watermark(np.ascontiguousarray(img), rng)
    if kind.startswith("wm_"):
        lo, hi = (0.2, 0.4) if kind.endswith("20_40") else (0.4, 0.8)
        fn = D.text_watermark if kind.startswith("wm_text") else D.logo_watermark
        for _ in range(MAX_DRAWS):  # an overlay nobody could see (white on white, off the frame) is redrawn
            out = fn(img, rng, float(rng.uniform(lo, hi)))
            if visible(img, out):
                break
        return out
    if kind == "shifted":
        return D.shifted(img, rng)
    if kind == "scaled":
        return D.scaled(img, rng)
    if kind == "rotated":
        return D.rotated(img, rng)
    if kind == "non_face_patch":
        return D.non_face_patch(img.shape[0], rng)
    raise ValueError(kind)


def load_reviewed(path: Path | None) -> dict[str, str]:
    """``image_id -> issue`` of images a reviewer confirmed as real defects (CSV with image_id, issue)."""
    if path is None:
        return {}
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"image_id", "issue"} - set(table.columns)
    if missing:
        raise CurateError(f"{path}: missing column(s) {', '.join(sorted(missing))} (need image_id, issue)")
    return dict(zip(table["image_id"], table["issue"]))


def build_workspace(root: Path, images: np.ndarray, ids: list[str], per_type: int, seed: int,
                    reviewed: dict[str, str] | None = None) -> tuple[Workspace, pd.DataFrame]:
    """Workspace of untouched images + injected defects; returns it and the truth table.

    Images a reviewer confirmed as real defects (``reviewed``) stay in the workspace, as in real
    use, but never serve as injection sources; the truth table marks them (``reviewed_issue``).
    """
    rng = np.random.default_rng(seed)
    reviewed = reviewed or {}
    rows = [(i, "untouched", i) for i in ids]
    pix = [images]
    pool = np.array([k for k, i in enumerate(ids) if i not in reviewed])
    for kind in DEFECTS:
        src = pool[rng.choice(len(pool), size=per_type, replace=False)]
        made = np.stack([inject(kind, np.asarray(images[s]), rng) for s in src])
        pix.append(made)
        rows += [(f"inj-{kind}-{k:05d}", kind, ids[s]) for k, s in enumerate(src)]
    truth = pd.DataFrame(rows, columns=["image_id", "kind", "source_id"])
    truth["reviewed_issue"] = truth["image_id"].map(reviewed).where(truth["kind"] == "untouched")
    n = len(truth)
    manifest = coerce_manifest(pd.DataFrame({
        "image_id": truth["image_id"], "source": "bench", "source_row": np.arange(n), "source_path": pd.NA,
        "split": "train", "label": "neutral", "original_label": "neutral", "width": images.shape[2],
        "height": images.shape[1], "channels": 1, "digest": truth["image_id"], "source_format": "bench",
    }))
    if root.exists():
        import shutil

        shutil.rmtree(root)
    ws = Workspace(root)
    ws.commit(manifest, np.concatenate(pix), image_size=images.shape[1])
    return ws, truth


def evaluate(findings: pd.DataFrame, truth: pd.DataFrame, thresholds: dict[str, float]) -> dict[str, Any]:
    """FPR on untouched images and recall per (defect type, check), at the threshold and at FPR 2%/5%.

    Two negative sets: every untouched image (``raw``), and the untouched images minus those a
    reviewer confirmed as real defects (``reviewed``; the same as raw without a review file).
    """
    f = findings.merge(truth, on="image_id")
    out: dict[str, Any] = {"fpr": {}, "recall": {}, "suggested_thresholds": {},
                           "reviewed_excluded": int(truth["reviewed_issue"].notna().sum())}
    for check, part in f.groupby("check", sort=False):
        untouched = part[part["kind"] == "untouched"]
        negatives = {"raw": untouched, "reviewed": untouched[untouched["reviewed_issue"].isna()]}
        flagged_src = set(untouched.loc[untouched["flagged"], "image_id"])
        q: dict[str, dict[float, float]] = {}
        for name, neg in negatives.items():
            scores = neg["score"].to_numpy(dtype=float)
            scores = scores[np.isfinite(scores)]
            q[name] = {fpr: float(np.quantile(scores, 1 - fpr)) for fpr in (0.02, 0.05)} if len(scores) else {}
        out["fpr"][check] = {"at_threshold": float(untouched["flagged"].mean()),
                             "at_threshold_reviewed": float(negatives["reviewed"]["flagged"].mean()),
                             "threshold": thresholds.get(check)}
        scores = negatives["reviewed"]["score"].to_numpy(dtype=float)
        scores = scores[np.isfinite(scores)]
        if check in TARGET_FPR and len(scores):
            out["suggested_thresholds"][check] = round(float(np.quantile(scores, 1 - TARGET_FPR[check])), 4)
        for kind, checks in DEFECTS.items():
            if check not in checks and not (kind == "blank" and check == "blank"):
                continue
            inj = part[(part["kind"] == kind) & ~part["source_id"].isin(flagged_src)]
            s = inj["score"].to_numpy(dtype=float)
            entry = {"n": int(len(inj)), "at_threshold": float(inj["flagged"].mean()) if len(inj) else float("nan")}
            for name, qs in q.items():
                suffix = "" if name == "reviewed" else "_raw"
                entry.update({f"at_fpr_{int(k * 100)}{suffix}": float(np.mean(s > v)) for k, v in qs.items()})
            out["recall"].setdefault(kind, {})[check] = entry
    return out


def run_bench(data: Path, *, out: Path, scratch: Path, per_type: int = 300, limit: int | None = None, seed: int = 0,
              overrides: list[str] | None = None, reviewed: Path | None = None, timing: bool = True,
              quiet: bool = False) -> dict[str, Any]:
    """Run the benchmark (see module docstring) and write the markdown report ``out``.

    ``reviewed``: CSV of images a reviewer confirmed as real defects (image_id, issue), left out
    of the negatives for the "reviewed" figures. ``timing``: also time every check on all images.
    """
    from curate.audit.api import audit
    from curate.findings import read_findings

    scratch = Path(scratch)
    data = Path(data)
    if (data / "manifest.parquet").exists():
        base = Workspace.open(data)
    else:
        from curate.ingest.api import ingest

        base = Workspace(scratch / "base")
        if not base.exists():
            if not data.exists():
                raise CurateError(f"{data}: benchmark data not found")
            ingest(base, [data], quiet=quiet)
    images = np.asarray(base.pixels())
    ids = base.manifest()["image_id"].tolist()
    if limit:
        images, ids = images[:limit], ids[:limit]
    order = np.random.default_rng(seed).permutation(len(ids))
    halves = {"tune": np.sort(order[: len(ids) // 2]), "report": np.sort(order[len(ids) // 2:])}
    cfg = load_config("audit", overrides)
    thresholds = {k: v["threshold"] for k, v in cfg.items() if isinstance(v, dict) and "threshold" in v}
    review = load_reviewed(reviewed)
    result: dict[str, Any] = {"data": str(data), "images": len(ids), "per_type": per_type, "seed": seed,
                              "overrides": overrides or [], "halves": {},
                              "reviewed": {"file": str(reviewed) if reviewed else None, "images": len(review),
                                           "by_issue": pd.Series(review).value_counts().to_dict() if review else {}}}
    for h, (name, rows) in enumerate(halves.items()):
        ws, truth = build_workspace(scratch / f"ws-{name}", images[rows], [ids[i] for i in rows], per_type,
                                    seed=seed * 1000 + 17 + h, reviewed=review)
        summary = audit(ws, None, overrides=overrides, seed=seed + h, quiet=quiet)
        ev = evaluate(read_findings(ws), truth, thresholds)
        ev.update(images=int(len(truth)), untouched=int(len(rows)), seconds=summary["seconds"],
                  seconds_per_check=summary["seconds_per_check"])
        result["halves"][name] = ev
    if timing:
        timing_ws = Workspace(scratch / "ws-timing")
        timing_ws.commit(base.manifest().iloc[: len(ids)], images, image_size=images.shape[1])
        t0 = time.perf_counter()
        load0 = os.getloadavg()
        run = audit(timing_ws, None, overrides=overrides, seed=seed, quiet=quiet)
        result["timing"] = {"images": run["images"], "seconds": round(time.perf_counter() - t0, 1),
                            "seconds_per_check": run["seconds_per_check"],
                            "load_before": [round(x, 2) for x in load0],
                            "load_after": [round(x, 2) for x in os.getloadavg()],
                            "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine()}
    from curate.audit.bench_report import write_report

    result["report"] = str(write_report(result, out, thresholds))
    return result
