"""``curate audit-bench``: recall of the audit checks on defects injected into real FER2013 crops.

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
from curate.settings import AuditSettings, DefectModelSettings, Settings, load_settings
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
REVIEWED_CHECKS: dict[str, tuple[str, ...]] = {
    # reviewed real-defect issue -> the checks ranked on it (the learned check, and for non-faces the
    # best single statistics: issue 12 asks non_face to be at least as good as low_information)
    "non_face": ("non_face", "low_information", "blank"),
    "watermark": ("watermark",),
    "cartoon": ("cartoon",),
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


def bench_halves(n: int, seed: int) -> dict[str, np.ndarray]:
    """Row positions of the benchmark's *tune* and *report* halves of ``n`` images (seeded)."""
    order = np.random.default_rng(seed).permutation(n)
    return {"tune": np.sort(order[: n // 2]), "report": np.sort(order[n // 2:])}


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
    out["reviewed_ranking"] = rank_reviewed(f)
    return out


def rank_reviewed(merged: pd.DataFrame) -> dict[str, dict[str, dict[str, float]]]:
    """How well each check ranks the real defects a reviewer confirmed above the other untouched images.

    Per reviewed issue and check: positives = untouched images reviewed as that issue, negatives =
    untouched images not reviewed as any defect; AUROC, average precision and recall at FPR 2%.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    untouched = merged[merged["kind"] == "untouched"]
    out: dict[str, dict[str, dict[str, float]]] = {}
    for issue, checks in REVIEWED_CHECKS.items():
        for check in checks:
            part = untouched[untouched["check"] == check]
            pos = part["reviewed_issue"] == issue
            neg = part["reviewed_issue"].isna()
            if not pos.any() or not neg.any():
                continue
            s = part["score"].to_numpy(dtype=float)
            s = np.where(np.isfinite(s), s, -np.inf if not np.isfinite(s).any() else np.nanmin(s) - 1)
            y = pos.to_numpy()[(pos | neg).to_numpy()]
            sc = s[(pos | neg).to_numpy()]
            q = float(np.quantile(s[neg.to_numpy()], 0.98))
            out.setdefault(issue, {})[check] = {
                "positives": int(pos.sum()), "negatives": int(neg.sum()),
                "auroc": float(roc_auc_score(y, sc)), "ap": float(average_precision_score(y, sc)),
                "recall_at_fpr_2": float(np.mean(s[pos.to_numpy()] > q))}
    return out


def fit_non_face_fusion(ws: Workspace, findings: pd.DataFrame, truth: pd.DataFrame) -> dict[str, Any]:
    """Logistic fusion of the non_face check, fitted on one half's findings (run with ``non_face.fusion=false``).

    Inputs (:data:`~curate.audit.checks_learned.FUSION_FEATURES`): the logit of the
    detector-adjusted model score, the low_information and blank statistics of the crop.
    Positives: the injected non-face patches and the untouched images reviewed as non-faces
    (each kind weighing the same in total); negatives: the untouched images not reviewed as a
    defect. scikit-learn's default L2 strength (C=1). Returns the weights and the fused scores.
    """
    from sklearn.linear_model import LogisticRegression

    from curate.audit.checks_learned import FUSION_FEATURES, non_face_features

    part = findings[findings["check"] == "non_face"].merge(truth, on="image_id")
    crops = np.asarray(ws.pixels())[ws.index_of(part["image_id"])]
    x = non_face_features(part["score"].to_numpy(dtype=float), crops)
    reviewed = ((part["kind"] == "untouched") & (part["reviewed_issue"] == "non_face")).to_numpy()
    injected = (part["kind"] == "non_face_patch").to_numpy()
    negative = ((part["kind"] == "untouched") & part["reviewed_issue"].isna()).to_numpy()
    use = reviewed | injected | negative
    weight = np.where(reviewed, injected.sum() / max(reviewed.sum(), 1), 1.0)
    fit = LogisticRegression(max_iter=5000).fit(x[use], (reviewed | injected)[use], sample_weight=weight[use])
    weights = {"bias": round(float(fit.intercept_[0]), 4),
               **{k: round(float(v), 4) for k, v in zip(FUSION_FEATURES, fit.coef_[0])}}
    return {"weights": weights, "positives_injected": int(injected.sum()), "positives_reviewed": int(reviewed.sum()),
            "negatives": int(negative.sum()), "image_id": part["image_id"].to_numpy(), "x": x}


def model_record(model_cfg: DefectModelSettings, images: np.ndarray, ids: list[str], halves: dict[str, np.ndarray],
                 limited: bool) -> dict[str, Any]:
    """Which defect model the benchmark runs and whether it could have seen the reporting half.

    A loaded model is leak-free here when its sidecar says it was trained on this very data (same
    pixel-store digest) with this benchmark's reporting half held out (same id digest).
    """
    from curate.audit.defect_model import is_scratch
    from curate.audit.defect_weights import BUNDLED_WEIGHTS, ids_digest, pixels_digest, read_sidecar

    weights = str(model_cfg.weights).strip()
    if is_scratch(weights):
        return {"weights": "none", "leak_free": True,
                "text": "trained from scratch on each half's own workspace (`model.weights: none`), injected images "
                        "included, as in real use"}
    path = BUNDLED_WEIGHTS if weights == "bundled" else Path(weights).expanduser()
    meta = read_sidecar(path)
    t = meta.get("training", {})
    held = (t.get("held_out") or {}).get("bench_report_half") or {}
    same_data = not limited and t.get("workspace_pixels_sha256") == pixels_digest(images)
    report_out = held.get("ids_sha256") == ids_digest([ids[i] for i in halves["report"]])
    rec = {"weights": str(path), "name": meta.get("name"), "sha256": meta.get("weights_sha256"),
           "trained_on": t.get("data"), "images_used": t.get("images_used"), "held_out": t.get("held_out"),
           "command": meta.get("command"), "leak_free": bool(same_data and report_out)}
    if rec["leak_free"]:
        rec["text"] = (f"`{path.name}` (sha256 {str(rec['sha256'])[:12]}), trained by `{meta.get('command')}` on "
                       f"{t.get('images_used', 0):,} images of this same data (pixel-store digest matches) with this "
                       "benchmark's reporting half held out (its image-id digest matches): the model never saw a "
                       "reporting-half image, and no injected defect of either half")
    else:
        rec["text"] = (f"`{path.name}` (sha256 {str(rec['sha256'])[:12]}), trained on {t.get('data')}: NOT verified "
                       "to have held out this benchmark's reporting half (other data, --limit, or another seed); "
                       "its figures may be optimistic")
    return rec


SHIFTS: dict[str, str] = {
    "tight": "every crop framed 1/6 tighter (its central 40x40 of 48x48, resized back), as another dataset's "
             "face cropping would be",
}
"""Domain shifts ``--shift`` applies to every image before the halves are built (defects are then injected
into the shifted crops): a workspace unlike the data the bundled model was trained on."""


def apply_shift(images: np.ndarray, kind: str) -> np.ndarray:
    """``images`` under the domain shift ``kind`` (see :data:`SHIFTS`)."""
    import cv2

    if kind not in SHIFTS:
        raise CurateError(f"unknown shift {kind!r}; known: {', '.join(SHIFTS)}", exit_code=2)
    side = images.shape[1]
    m = int(round(side / 12))
    return np.stack([cv2.resize(np.ascontiguousarray(im[m:side - m, m:side - m]), (side, side),
                                interpolation=cv2.INTER_LINEAR) for im in images])


def _base_workspace(data: Path, scratch: Path, quiet: bool) -> Workspace:
    """The benchmark's images: ``data`` when it is a workspace, else ``data`` ingested once into scratch/base."""
    if (data / "manifest.parquet").exists():
        return Workspace.open(data)
    from curate.ingest.api import ingest

    base = Workspace(scratch / "base")
    if not base.exists():
        if not data.exists():
            raise CurateError(f"{data}: benchmark data not found")
        ingest(base, [data], quiet=quiet)
    return base


def _tune_fusion(ws: Workspace, findings: pd.DataFrame, truth: pd.DataFrame, ev: dict[str, Any],
                 cfg: AuditSettings) -> dict[str, Any]:
    """On the tuning half: fit the non_face fusion weights and put the fused score's threshold at the
    target FPR into ``ev``'s suggested thresholds; the fusion record (whether the config already has it)."""
    from curate.audit.checks_learned import fuse_non_face

    fusion = fit_non_face_fusion(ws, findings, truth)
    fused = pd.Series(fuse_non_face(fusion.pop("x"), fusion["weights"]), index=fusion.pop("image_id"))
    neg = truth[(truth["kind"] == "untouched") & truth["reviewed_issue"].isna()]["image_id"]
    ev["suggested_thresholds"]["non_face"] = round(float(np.quantile(fused[neg], 1 - TARGET_FPR["non_face"])), 4)
    fusion["config_matches"] = dict(cfg.non_face.fusion_weights) == fusion["weights"]
    return fusion


def _time_all_checks(timing_ws: Workspace, manifest: pd.DataFrame, images: np.ndarray, cfg: AuditSettings,
                     overrides: list[str] | None, seed: int, quiet: bool) -> dict[str, Any]:
    """Every check timed on all the images (one audit run on a workspace of them), with the load around it."""
    from curate.audit.api import audit
    from curate.audit.defect_model import model_choice

    timing_ws.commit(manifest, images, image_size=images.shape[1])
    t0 = time.perf_counter()
    load0 = os.getloadavg()
    run = audit(timing_ws, None, overrides=overrides, seed=seed, quiet=quiet)
    return {"images": run["images"], "seconds": round(time.perf_counter() - t0, 1),
            "model_choice": model_choice(images, cfg.model, seed=seed),
            "seconds_per_check": run["seconds_per_check"],
            "load_before": [round(x, 2) for x in load0],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine()}


def run_bench(data: Path, *, out: Path, scratch: Path, per_type: int = 300, limit: int | None = None, seed: int = 0,
              overrides: list[str] | None = None, reviewed: Path | None = None, timing: bool = True,
              shift: str | None = None, quiet: bool = False) -> dict[str, Any]:
    """Run the benchmark (see module docstring) and write the markdown report ``out``.

    ``reviewed``: CSV of images a reviewer confirmed as real defects (image_id, issue), left out
    of the negatives for the "reviewed" figures. ``timing``: also time every check on all images.
    ``shift``: a domain shift (:data:`SHIFTS`) applied to every image first.
    """
    from curate.audit.api import audit
    from curate.findings import read_findings

    scratch = Path(scratch)
    data = Path(data)
    base = _base_workspace(data, scratch, quiet)
    images = np.asarray(base.pixels())
    ids = base.manifest()["image_id"].tolist()
    if limit:
        images, ids = images[:limit], ids[:limit]
    halves = bench_halves(len(ids), seed)
    cfg = load_settings("audit", overrides)
    thresholds = {k: cfg[k].threshold for k in cfg.keys() if isinstance(cfg[k], Settings) and "threshold" in cfg[k]}
    review = load_reviewed(reviewed)
    from curate.audit.defect_model import model_choice

    model = model_record(cfg.model, images, ids, halves, limited=bool(limit) and limit < len(base.manifest()))
    if shift:
        images = apply_shift(images, shift)
    result: dict[str, Any] = {"data": str(data), "images": len(ids), "per_type": per_type, "seed": seed,
                              "shift": {"kind": shift, "text": SHIFTS[shift]} if shift else None,
                              "overrides": overrides or [], "halves": {},
                              "reviewed": {"file": str(reviewed) if reviewed else None, "images": len(review),
                                           "by_issue": pd.Series(review).value_counts().to_dict() if review else {}},
                              "model": model}
    fuse = cfg.non_face.fusion
    fusion: dict[str, Any] | None = None
    for h, (name, rows) in enumerate(halves.items()):
        ws, truth = build_workspace(scratch / f"ws-{name}", images[rows], [ids[i] for i in rows], per_type,
                                    seed=seed * 1000 + 17 + h, reviewed=review)
        extra: list[str] = []
        if fuse and name == "tune":  # the fusion is fitted on the tuning half's model scores ...
            extra = ["non_face.fusion=false"]
        elif fuse and fusion is not None:  # ... and the reporting half is measured with what was fitted there
            extra = [f"non_face.fusion_weights.{k}={v}" for k, v in fusion["weights"].items()]
        summary = audit(ws, None, overrides=list(overrides or []) + extra or None, seed=seed + h, quiet=quiet)
        findings = read_findings(ws)
        ev = evaluate(findings, truth, thresholds)
        if fuse and name == "tune" and (truth["kind"] == "non_face_patch").any():
            fusion = _tune_fusion(ws, findings, truth, ev, cfg)
            result["non_face_fusion"] = fusion
        ev.update(images=int(len(truth)), untouched=int(len(rows)), seconds=summary["seconds"],
                  seconds_per_check=summary["seconds_per_check"],
                  model_choice=model_choice(np.asarray(ws.pixels()), cfg.model, seed=seed + h))
        result["halves"][name] = ev
    if timing:
        result["timing"] = _time_all_checks(Workspace(scratch / "ws-timing"), base.manifest().iloc[: len(ids)], images,
                                            cfg, overrides, seed, quiet)
    from curate.audit.bench_report import write_report

    result["report"] = str(write_report(result, out, thresholds))
    return result
