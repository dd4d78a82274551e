"""Photo checks against a by-eye review: cross-validated figures, baselines, the bundled scorers.

``curate photos-bench -w WS --review reports/review/scraped-reviewed.csv`` reads a workspace
holding the reviewed photos (ingested as photos), joins the review on ``source_path``, and

- fits each learned photo check (no_face, cartoon, watermark) by k-fold cross-validation,
  grouped by duplicate cluster when ``duplicates.parquet`` exists (copies never straddle folds),
  choosing the threshold on the out-of-fold scores; reports precision/recall there;
- scores multiple_faces (not learned: MTCNN's second-face probability) at the audit defaults,
  and cross-validates the choice of its three settings over a small grid (chosen on k-1 folds,
  counted on the held-out one);
- compares with the simplest baselines on the same photos: dlib's HOG detector alone (run here
  on the originals, 480 px, upsample 1: "no HOG face" for no_face, "two or more HOG faces" for
  multiple_faces), a file name naming a stock site (and, when it ran, "the text detector finds a
  text box") for watermark;
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
        key = target_key(pr(y, score >= t), recall, precision)
        if key > best_key:
            best_key, best_t = key, float(t)
    return best_t


def target_key(m: dict[str, float], recall: float, precision: float) -> tuple[float, float]:
    """Sort key of a flag's figures ``m``: meeting both targets first (then the most recall),
    else the best F1."""
    meets = m["recall"] >= recall and m["precision"] >= precision
    return (1.0 + m["recall"] if meets else 0.0, _f1(m))


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
    for check in ("no_face", "cartoon", "watermark"):
        y = truth[check].to_numpy()
        score = oof_scores(check, feats, y, groups, folds, seed)
        t = choose_threshold(y, score, *TARGETS[check])
        results["checks"][check] = {**pr(y, score >= t), "threshold": t, "auroc": _auroc(y, score)}
        scorer = fit_scorer(check, feats, y, threshold=t, seed=seed)
        final[check] = scorer.to_json()
    results["checks"]["multiple_faces"] = multiple_faces_figures(faces, review["image_id"].astype(str).tolist(),
                                                                 truth["multiple_faces"].to_numpy(), groups, folds, seed)
    hog_counts = hog_face_counts(ws, review["image_id"].astype(str).tolist())
    results["baselines"]["no_face: no HOG face"] = pr(truth["no_face"], hog_counts == 0)
    results["baselines"]["watermark: stock-site file name"] = pr(truth["watermark"], feats["stock_name"].to_numpy() > 0)
    if "text_det_boxes" in feats and feats["text_det_boxes"].notna().any():
        results["baselines"]["watermark: the text detector finds a text box"] = pr(
            truth["watermark"], feats["text_det_boxes"].fillna(0).to_numpy() >= 1)
    results["baselines"]["multiple_faces: two or more HOG faces"] = pr(truth["multiple_faces"], hog_counts >= 2)
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


MULTIPLE_FACES_GRID = {"threshold": (0.85, 0.9, 0.95), "main_face_score": (0.85, 0.9, 0.95),
                       "min_relative_width": (0.0, 0.3, 0.5)}
"""Settings of multiple_faces tried when its choice is cross-validated."""


def multiple_faces_figures(faces: pd.DataFrame, image_ids: list[str], y: np.ndarray, groups: np.ndarray,
                           folds: int, seed: int) -> dict[str, Any]:
    """multiple_faces at the audit defaults, and with its settings chosen on k-1 folds of the grid
    (:data:`MULTIPLE_FACES_GRID`) and counted on the held-out fold."""
    import itertools

    from sklearn.model_selection import StratifiedGroupKFold

    from curate.audit.checks_photo import second_face_scores
    from curate.settings import load_settings

    p = load_settings("audit").multiple_faces
    score = second_face_scores(faces, image_ids, main_face_score=p.main_face_score,
                               min_relative_width=p.min_relative_width)
    out: dict[str, Any] = {**pr(y, score >= p.threshold), "threshold": float(p.threshold),
                           "auroc": _auroc(y, score), "settings": p.to_dict()}
    combos = list(itertools.product(*MULTIPLE_FACES_GRID.values()))
    flags = {}
    for second, main, rel in combos:
        flags[(second, main, rel)] = second_face_scores(faces, image_ids, main_face_score=main,
                                                        min_relative_width=rel) >= second
    held = np.zeros(len(y), bool)
    chosen = []
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(np.zeros(len(y)), y, groups):
        best = max(combos, key=lambda c: target_key(pr(y[train], flags[c][train]), *TARGETS["multiple_faces"]))
        chosen.append(dict(zip(MULTIPLE_FACES_GRID, best)))
        held[test] = flags[best][test]
    out["cross_validated"] = {**pr(y, held), "chosen": chosen}
    return out


def hog_face_counts(ws: Workspace, image_ids: list[str], workers: int = 2) -> np.ndarray:
    """Faces dlib's HOG detector alone finds in each photo's original (the baseline detector:
    480 px, upsample 1, margin >= 0, no rotations); -1 where the original cannot be read."""
    from concurrent.futures import ThreadPoolExecutor

    from curate.faces.detect import detect_faces
    from curate.faces.stage import as_rgb
    from curate.ingest.decode import decode_image

    manifest = ws.manifest()
    row_of = {str(i): k for k, i in enumerate(manifest["image_id"].astype(str))}

    def count(image_id: str) -> int:
        path = ws.original_path(row_of[image_id])
        try:
            rgb = as_rgb(np.asarray(decode_image(path).image))
        except Exception:  # noqa: BLE001 - an unreadable original is no baseline face
            return -1
        return len(detect_faces(rgb, max_side=480, upsample=1, min_score=0.0))

    with ThreadPoolExecutor(workers) as pool:
        return np.array(list(pool.map(count, image_ids)), dtype=np.int64)


def _f1(m: dict[str, float]) -> float:
    return 2 * m["precision"] * m["recall"] / max(m["precision"] + m["recall"], 1e-9)


def _auroc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")
