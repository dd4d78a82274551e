"""Photo checks against a by-eye review: cross-validated figures, baselines, the bundled scorers.

``curate photos-bench -w WS --review reports/review/scraped-reviewed.csv`` reads a workspace
holding the reviewed photos (ingested as photos), joins the review on ``source_path``, and

- fits each learned photo check (no_face, multiple_faces, cartoon, watermark) by k-fold cross-validation,
  grouped by duplicate cluster when ``duplicates.parquet`` exists (copies never straddle folds),
  choosing the threshold on the out-of-fold scores; reports precision/recall there;
- compares with the simplest baselines on the same photos: "no face found by the HOG detector"
  for no_face, "two or more detections" for multiple_faces, a file name naming a stock site
  (and, when it ran, "the text detector finds a text box") for watermark;
- measures the face-detection rate on usable face photos;
- with ``--write-model PATH``, fits every scorer on all reviewed photos and writes the JSON.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from curate import __version__
from curate.audit.photo_model import FEATURES, fit_scorer
from curate.errors import CurateError
from curate.faces.features import name_features
from curate.faces.tables import FACE_IMAGES_FILE, FACES_FILE, PHOTO_FEATURES_FILE
from curate.workspace import Workspace

TARGETS = {"no_face": (0.95, 0.90), "cartoon": (0.85, 0.85), "watermark": (0.75, 0.85), "multiple_faces": (0.80, 0.80)}
"""(recall, precision) each check should reach on reviewed photos (issue 12)."""


def review_labels(review: pd.DataFrame) -> pd.DataFrame:
    """Binary truth per check from the review columns."""
    r = review
    return pd.DataFrame({
        "no_face": (pd.to_numeric(r["usable_face"], errors="coerce") == 0).astype(int),
        "cartoon": (pd.to_numeric(r["cartoon"], errors="coerce") == 1).astype(int),
        "watermark": (pd.to_numeric(r["watermark"], errors="coerce") == 1).astype(int),
        "multiple_faces": (pd.to_numeric(r["n_faces"], errors="coerce") >= 2).astype(int),
    })


def load_reviewed(ws: Workspace, review_csv: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(review rows, their features incl. stock_name, faces) for reviewed photos in ``ws``."""
    review = pd.read_csv(review_csv, dtype={"path": str})
    manifest = ws.manifest()
    fi = ws.read_parquet(FACE_IMAGES_FILE)
    feats = ws.read_parquet(PHOTO_FEATURES_FILE)
    if fi is None or feats is None:
        raise CurateError(f"{ws.root}: no face-stage records; ingest the reviewed photos (as photos) first")
    ids = manifest.set_index(manifest["source_path"].astype(str))["image_id"]
    review = review[review["path"].isin(ids.index)].reset_index(drop=True)
    if review.empty:
        raise CurateError(f"{review_csv}: none of its paths are in {ws.root} (paths must match source_path)")
    review["image_id"] = ids.loc[review["path"]].to_numpy()
    f = feats.drop_duplicates("image_id", keep="last").set_index("image_id").loc[review["image_id"]].reset_index()
    f = pd.concat([f, pd.DataFrame([name_features(p) for p in review["path"]])], axis=1)
    f["status"] = fi.drop_duplicates("image_id", keep="last").set_index("image_id").loc[review["image_id"], "status"].to_numpy()
    faces = ws.read_parquet(FACES_FILE)
    return review, f, faces[faces["image_id"].isin(set(review["image_id"]))]


def groups_of(ws: Workspace, image_ids: pd.Series) -> np.ndarray:
    """Duplicate-cluster id per image (its own id when not in a cluster), for grouped folds."""
    dup = ws.read_parquet("duplicates.parquet")
    own = pd.Series(image_ids.astype(str).to_numpy())
    if dup is None or dup.empty:
        return own.to_numpy()
    cluster = dup.drop_duplicates("image_id").set_index("image_id")["cluster_id"].astype(str)
    return own.map(lambda i: "c" + cluster[i] if i in cluster.index else i).to_numpy()


def pr(y: np.ndarray, flagged: np.ndarray) -> dict[str, float]:
    """Precision, recall and counts of a flag against the truth."""
    y, flagged = np.asarray(y, bool), np.asarray(flagged, bool)
    tp = int((y & flagged).sum())
    return {"precision": tp / max(int(flagged.sum()), 1), "recall": tp / max(int(y.sum()), 1),
            "flagged": int(flagged.sum()), "positives": int(y.sum()), "tp": tp}


def choose_threshold(y: np.ndarray, score: np.ndarray, recall: float, precision: float) -> float:
    """The threshold meeting both targets with the most recall; else the best F1."""
    cands = np.unique(np.round(score, 4))
    best_t, best_key = 0.5, (-1.0, -1.0)
    for t in cands:
        m = pr(y, score >= t)
        meets = m["recall"] >= recall and m["precision"] >= precision
        f1 = 2 * m["precision"] * m["recall"] / max(m["precision"] + m["recall"], 1e-9)
        key = (1.0 + m["recall"] if meets else 0.0, f1)
        if key > best_key:
            best_key, best_t = key, float(t)
    return best_t


def oof_scores(check: str, feats: pd.DataFrame, y: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Out-of-fold probabilities of ``check``'s scorer (grouped, stratified folds)."""
    from sklearn.model_selection import StratifiedGroupKFold

    out = np.zeros(len(y))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(feats, y, groups):
        model = fit_scorer(check, feats.iloc[train].reset_index(drop=True), y[train], seed=seed)
        out[test] = model.predict(feats.iloc[test].reset_index(drop=True))
    return out


def run_bench(ws: Workspace, review_csv: Path, *, folds: int = 5, seed: int = 0,
              write_model: Path | None = None) -> dict[str, Any]:
    """Cross-validated photo-check figures against the review (see module docstring)."""
    review, feats, faces = load_reviewed(ws, review_csv)
    truth = review_labels(review)
    groups = groups_of(ws, review["image_id"])
    results: dict[str, Any] = {"reviewed": int(len(review)), "checks": {}, "baselines": {}}
    final: dict[str, Any] = {}
    for check in ("no_face", "multiple_faces", "cartoon", "watermark"):
        y = truth[check].to_numpy()
        score = oof_scores(check, feats, y, groups, folds, seed)
        t = choose_threshold(y, score, *TARGETS[check])
        results["checks"][check] = {**pr(y, score >= t), "threshold": t, "auroc": _auroc(y, score)}
        scorer = fit_scorer(check, feats, y, threshold=t, seed=seed)
        final[check] = scorer.to_json()
    results["baselines"]["no_face: no HOG detection"] = pr(truth["no_face"], feats["n_faces"].to_numpy() == 0)
    results["baselines"]["watermark: stock-site file name"] = pr(truth["watermark"], feats["stock_name"].to_numpy() > 0)
    if "text_det_boxes" in feats and feats["text_det_boxes"].notna().any():
        results["baselines"]["watermark: the text detector finds a text box"] = pr(
            truth["watermark"], feats["text_det_boxes"].fillna(0).to_numpy() >= 1)
    results["baselines"]["multiple_faces: two or more HOG detections"] = pr(truth["multiple_faces"],
                                                                          feats["n_faces"].to_numpy() >= 2)
    usable = truth["no_face"].to_numpy() == 0
    results["face_detection_rate"] = {"usable_face_photos": int(usable.sum()),
                                      "aligned": int((feats["status"].to_numpy()[usable] == "ok").sum())}
    results["face_detection_rate"]["rate"] = results["face_detection_rate"]["aligned"] / max(int(usable.sum()), 1)
    if write_model is not None:
        import json

        from curate import atomic

        digest = hashlib.sha256(Path(review_csv).read_bytes()).hexdigest()[:16]
        model_json = {"meta": {
            "made_by": f"curate photos-bench --review {review_csv} --write-model {write_model}",
            "review_sha256_16": digest, "reviewed_photos": int(len(review)), "curate_version": __version__,
            "date": _dt.date.today().isoformat(), "features": {k: list(v) for k, v in FEATURES.items()},
            }, "checks": final}
        atomic.write_text(write_model, json.dumps(model_json, separators=(",", ":")) + "\n")
        results["model_written"] = str(write_model)
    return results


def _f1(m: dict[str, float]) -> float:
    return 2 * m["precision"] * m["recall"] / max(m["precision"] + m["recall"], 1e-9)


def _auroc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")
