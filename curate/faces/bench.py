"""Photo checks against by-eye reviews of scraped photos, measured on scrapes they were not fitted on.

``curate photos-bench -w WS_A --review A.csv -w WS_B --review B.csv`` reads workspaces holding
the reviewed photos (ingested as photos), joins each review on ``source_path``, and reports:

- **across scrapes** (the headline): each learned check (no_face, cartoon, watermark) fitted on
  one scrape (:func:`curate.faces.bench_fit.fit_check`) and measured on the other at its own
  threshold, both ways, with the fitted prior and with the prior re-estimated on the other
  scrape's photos; multiple_faces (a rule, not learned) at the audit defaults on each scrape;
- **the shipped scorers**: fitted on all reviewed scrapes together, threshold chosen so that the
  worst scrape does best, figures out-of-fold (grouped cross-validation over both scrapes);
- **same-scrape cross-validation** (second, and named so): fitted and measured on one scrape;
- **a reviewer teaching the checks**: precision and recall on the rest of the other scrape after
  0, 25, 50, 100, 200 of its photos were reviewed (:func:`curate.faces.bench_fit.learning_curve`);
- the simplest baselines on the same photos (dlib's HOG detector alone; a stock-site file name;
  any text box) and the face-detection rate on usable face photos;
- with ``--write-model PATH``, the shipped scorers as JSON.

Truth per check, with the definitions the reviews used (README "Photo checks: definitions"):
no_face = ``usable_face == 0``; multiple_faces = the ``multiple_faces`` column (a second usable face
at least half the main face's width; ``n_faces >= 2`` for reviews without that column); cartoon,
watermark = their columns.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from curate import __version__
from curate.audit.photo_model import FEATURE_SETS, FEATURES, training_data_path
from curate.errors import CurateError
from curate.audit.photo_fit import TARGETS, fit_check, pr, refit_with_review, target_key
from curate.faces.bench_fit import learning_curve, ranking, transfer_figures
from curate.faces.features import name_features
from curate.faces.tables import FACE_IMAGES_FILE, FACES_FILE, PHOTO_FEATURES_FILE
from curate.workspace import Workspace

LEARNED = ("no_face", "cartoon", "watermark")
REVIEW_WEIGHT = 5.0
"""How many times a reviewer's verdict counts when it refits a check (``review_weight`` of configs/audit.yaml)."""


def review_labels(review: pd.DataFrame) -> pd.DataFrame:
    """Binary truth per check from the review columns."""
    r = review
    multiple = (pd.to_numeric(r["multiple_faces"], errors="coerce") == 1) if "multiple_faces" in r else \
        (pd.to_numeric(r["n_faces"], errors="coerce") >= 2)
    return pd.DataFrame({
        "no_face": (pd.to_numeric(r["usable_face"], errors="coerce") == 0).astype(int),
        "cartoon": (pd.to_numeric(r["cartoon"], errors="coerce") == 1).astype(int),
        "watermark": (pd.to_numeric(r["watermark"], errors="coerce") == 1).astype(int),
        "multiple_faces": multiple.astype(int),
    })


def photo_frame(ws: Workspace) -> pd.DataFrame:
    """Every photo's features (photo_features.parquet + stock_name + status), one row per image_id."""
    manifest = ws.manifest()
    fi = ws.read_parquet(FACE_IMAGES_FILE)
    feats = ws.read_parquet(PHOTO_FEATURES_FILE)
    if fi is None or feats is None:
        raise CurateError(f"{ws.root}: no face-stage records; ingest the reviewed photos (as photos) first")
    feats = feats.drop_duplicates("image_id", keep="last").reset_index(drop=True)
    path = manifest.set_index(manifest["image_id"].astype(str))["source_path"]
    names = pd.DataFrame([name_features(path.get(str(i))) for i in feats["image_id"]])
    out = pd.concat([feats, names], axis=1)
    out["status"] = fi.drop_duplicates("image_id", keep="last").set_index("image_id").reindex(
        out["image_id"])["status"].to_numpy()
    return out


def load_reviewed(ws: Workspace, review_csv: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(review rows, their features incl. stock_name, faces, every photo's features) for reviewed photos in ``ws``."""
    review = pd.read_csv(review_csv, dtype={"path": str})
    manifest = ws.manifest()
    allf = photo_frame(ws)
    ids = manifest.set_index(manifest["source_path"].astype(str))["image_id"]
    review = review[review["path"].isin(ids.index)].reset_index(drop=True)
    if review.empty:
        raise CurateError(f"{review_csv}: none of its paths are in {ws.root} (paths must match source_path)")
    review["image_id"] = ids.loc[review["path"]].to_numpy()
    f = allf.set_index("image_id").loc[review["image_id"]].reset_index()
    faces = ws.read_parquet(FACES_FILE)
    return review, f, faces[faces["image_id"].isin(set(review["image_id"]))], allf


def groups_of(ws: Workspace, image_ids: pd.Series) -> np.ndarray:
    """Duplicate-cluster id per image (its own id when not in a cluster), for grouped folds."""
    dup = ws.read_parquet("duplicates.parquet")
    own = pd.Series(image_ids.astype(str).to_numpy())
    if dup is None or dup.empty:
        return own.to_numpy()
    cluster = dup.drop_duplicates("image_id").set_index("image_id")["cluster_id"].astype(str)
    return own.map(lambda i: "c" + cluster[i] if i in cluster.index else i).to_numpy()


class Scrape:
    """One reviewed scrape: its name, reviewed photos (features + truth), faces, every photo's features."""

    def __init__(self, ws: Workspace, review_csv: Path, name: str | None = None):
        self.ws, self.review_csv = ws, Path(review_csv)
        self.review, self.feats, self.faces, self.all = load_reviewed(ws, review_csv)
        self.name = name or Path(str(self.review_csv)).stem
        self.truth = review_labels(self.review)
        self.groups = np.array([f"{self.name}/{g}" for g in groups_of(ws, self.review["image_id"])])
        self.ids = self.review["image_id"].astype(str).tolist()

    def y(self, check: str) -> np.ndarray:
        return self.truth[check].to_numpy()


def _pooled(scrapes: list[Scrape], check: str):
    frame = pd.concat([s.feats for s in scrapes], ignore_index=True)
    y = np.concatenate([s.y(check) for s in scrapes])
    groups = np.concatenate([s.groups for s in scrapes])
    scrape = np.concatenate([[k] * len(s.ids) for k, s in enumerate(scrapes)])
    return frame, y, groups, scrape


def run_bench(datasets: list[tuple[Workspace, Path]], *, folds: int = 5, seed: int = 0,
              features: dict[str, str] | None = None, write_model: Path | None = None,
              curve_sizes: tuple[int, ...] = (0, 25, 50, 100, 200), curve_repeats: int = 5,
              hog_baseline: bool = True) -> dict[str, Any]:
    """Photo-check figures against one or more reviews (see the module docstring).

    Parameters
    ----------
    datasets : list of (Workspace, Path)
        Each workspace with its review CSV (paths relative to the ingested folder).
    folds : int, default=5
        Cross-validation folds (stratified, grouped by duplicate cluster).
    seed : int, default=0
        Seed of the folds, the trees and the learning curve's draws.
    features : dict, optional
        check -> name of a feature set of :data:`curate.audit.photo_model.FEATURE_SETS`; the
        default is :data:`curate.audit.photo_model.FEATURES`.
    write_model : Path, optional
        Write the scorers fitted on all reviewed scrapes here (JSON).
    curve_sizes : tuple of int, default=(0, 25, 50, 100, 200)
        Reviewed photos of the other scrape in the learning curve.
    curve_repeats : int, default=5
        Random draws per learning-curve size (each refits every check's trees: about 7 s).
    hog_baseline : bool, default=True
        Run dlib's HOG detector on the originals for the baselines (about 0.1 s per photo).
    """
    scrapes = [Scrape(ws, csv) for ws, csv in datasets]
    names = [s.name for s in scrapes]
    if len(set(names)) != len(names):
        raise CurateError(f"photos-bench: two reviews share the name {names}; name the CSV files apart")
    feats = {c: FEATURE_SETS[features[c]] if features and c in features else FEATURES[c] for c in LEARNED}
    result: dict[str, Any] = {"scrapes": {s.name: {"workspace": str(s.ws.root), "review": str(s.review_csv),
                                                   "reviewed": len(s.ids), "photos": int(len(s.all)),
                                                   "positives": {c: int(s.y(c).sum()) for c in TARGETS}}
                                          for s in scrapes},
                              "features": {c: (features or {}).get(c, "default") for c in LEARNED},
                              "targets": TARGETS, "across": {}, "same_scrape": {}, "shipped": {},
                              "learning_curve": {}, "baselines": {}, "face_detection_rate": {}}
    final: dict[str, Any] = {}
    for check in LEARNED:
        fitted = {}
        for k, s in enumerate(scrapes):
            y = s.y(check)
            if y.sum() < 3:
                result["same_scrape"].setdefault(check, {})[s.name] = {"skipped": f"{int(y.sum())} positives"}
                continue
            f = fit_check(check, s.feats, y, s.groups, np.zeros(len(y), int), feats[check], folds=folds, seed=seed)
            fitted[s.name] = f.scorer
            result["same_scrape"].setdefault(check, {})[s.name] = {
                **pr(y, f.oof >= f.scorer.threshold), **ranking(y, f.oof), "threshold": f.scorer.threshold}
        for src in scrapes:
            for tgt in scrapes:
                if src is tgt or src.name not in fitted:
                    continue
                key = f"{src.name} -> {tgt.name}"
                result["across"].setdefault(check, {})[key] = {
                    **transfer_figures(fitted[src.name], tgt.feats, tgt.y(check), tgt.all),
                    "threshold": fitted[src.name].threshold}
                def refit(frame, y_reviewed, src=src):
                    return refit_with_review(check, src.feats, src.y(check), src.groups, frame, y_reviewed,
                                             feats[check], weight=REVIEW_WEIGHT, folds=folds, seed=seed)

                result["learning_curve"].setdefault(check, {})[key] = {
                    method: learning_curve(fitted[src.name], tgt.feats, tgt.y(check), sizes=curve_sizes,
                                           repeats=curve_repeats, seed=seed, order="random",
                                           refit=refit if method == "refit" else None)
                    for method in ("refit", "recalibrate")}
        frame, y, groups, scrape = _pooled(scrapes, check)
        pooled = fit_check(check, frame, y, groups, scrape, feats[check], folds=folds, seed=seed)
        final[check] = pooled.scorer.to_json()
        result["shipped"][check] = {"threshold": pooled.scorer.threshold, "prior": pooled.scorer.prior,
                                    "per_scrape": {s.name: {**pr(y[scrape == k], pooled.oof[scrape == k] >= pooled.scorer.threshold),
                                                            **ranking(y[scrape == k], pooled.oof[scrape == k])}
                                                   for k, s in enumerate(scrapes)}}
    result["multiple_faces"] = multiple_faces_figures(scrapes)
    for s in scrapes:
        result["baselines"][s.name] = baselines(s, hog_baseline)
        usable = s.y("no_face") == 0
        aligned = int((s.feats["status"].to_numpy()[usable] == "ok").sum())
        result["face_detection_rate"][s.name] = {"usable_face_photos": int(usable.sum()), "aligned": aligned,
                                                 "rate": aligned / max(int(usable.sum()), 1)}
    if write_model is not None:
        result["model_written"] = _write_model(write_model, scrapes, final, feats)
    return result


def baselines(s: Scrape, hog: bool) -> dict[str, Any]:
    """The simplest detectors on the same photos."""
    out = {"watermark: stock-site file name": pr(s.y("watermark"), s.feats["stock_name"].to_numpy() > 0)}
    if "text_det_boxes" in s.feats and s.feats["text_det_boxes"].notna().any():
        out["watermark: the text detector finds a text box"] = pr(
            s.y("watermark"), s.feats["text_det_boxes"].fillna(0).to_numpy() >= 1)
    if hog:
        counts = hog_face_counts(s.ws, s.ids)
        out["no_face: no HOG face"] = pr(s.y("no_face"), counts == 0)
        out["multiple_faces: two or more HOG faces"] = pr(s.y("multiple_faces"), counts >= 2)
    return out


def _write_model(path: Path, scrapes: list[Scrape], final: dict[str, Any], feats: dict[str, tuple]) -> str:
    import json

    from curate import atomic

    reviews = {s.name: {"csv": str(s.review_csv), "sha256_16": hashlib.sha256(s.review_csv.read_bytes()).hexdigest()[:16],
                        "reviewed_photos": len(s.ids)} for s in scrapes}
    args = " ".join(f"-w {s.ws.root} --review {s.review_csv}" for s in scrapes)
    model_json = {"meta": {"made_by": f"curate photos-bench {args} --write-model {path}", "reviews": reviews,
                           "curate_version": __version__, "date": _dt.date.today().isoformat(),
                           "features": {k: list(v) for k, v in feats.items()},
                           "threshold_rule": "worst reviewed scrape does best (curate.faces.bench_fit.robust_threshold)"},
                  "checks": final}
    atomic.write_text(path, json.dumps(model_json, separators=(",", ":")) + "\n")
    names = sorted(set().union(*feats.values()))
    frame = pd.concat([s.feats for s in scrapes], ignore_index=True)
    x = np.stack([pd.to_numeric(frame[n], errors="coerce").to_numpy(np.float64) if n in frame else
                  np.full(len(frame), np.nan) for n in names], axis=1).astype(np.float32)
    arrays = {"features": x, "names": np.array(names), "groups": np.concatenate([s.groups for s in scrapes]).astype(str)}
    for check in LEARNED:
        arrays[f"y_{check}"] = np.concatenate([s.y(check) for s in scrapes]).astype(np.int8)
    with atomic.atomic_path(training_data_path(path)) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return str(path)


MULTIPLE_FACES_GRID = {"threshold": (0.85, 0.9, 0.95), "main_face_score": (0.9,), "min_relative_width": (0.3, 0.5),
                       "min_width_px": (30.0, 40.0), "max_yaw": (0.0, 0.4, 0.6)}
"""Settings of multiple_faces tried when they are chosen on one scrape and counted on the other."""


def multiple_faces_figures(scrapes: list["Scrape"]) -> dict[str, Any]:
    """multiple_faces (a rule over MTCNN's faces) at the audit defaults on each scrape, and with its
    settings chosen on one scrape (:data:`MULTIPLE_FACES_GRID`) counted on each other one."""
    import itertools

    from curate.audit.checks_photo import second_face_scores
    from curate.settings import load_settings

    p = load_settings("audit").multiple_faces

    def flags(s: Scrape, threshold, main_face_score, min_relative_width, min_width_px, max_yaw) -> np.ndarray:
        return second_face_scores(s.faces, s.ids, main_face_score=main_face_score, min_relative_width=min_relative_width,
                                  min_width_px=min_width_px, max_yaw=max_yaw or None) >= threshold

    defaults = (p.threshold, p.main_face_score, p.min_relative_width, p.min_width_px, p.max_yaw)
    out: dict[str, Any] = {"settings": p.to_dict(), "defaults": {}, "across": {}}
    for s in scrapes:
        score = second_face_scores(s.faces, s.ids, main_face_score=p.main_face_score,
                                   min_relative_width=p.min_relative_width, min_width_px=p.min_width_px,
                                   max_yaw=p.max_yaw or None)
        out["defaults"][s.name] = {**pr(s.y("multiple_faces"), flags(s, *defaults)),
                                   **ranking(s.y("multiple_faces"), score)}
    combos = list(itertools.product(*MULTIPLE_FACES_GRID.values()))
    for src in scrapes:
        if src.y("multiple_faces").sum() < 3:
            continue
        best = max(combos, key=lambda c: target_key(pr(src.y("multiple_faces"), flags(src, *c)), *TARGETS["multiple_faces"]))
        for tgt in scrapes:
            if tgt is not src:
                out["across"][f"{src.name} -> {tgt.name}"] = {**pr(tgt.y("multiple_faces"), flags(tgt, *best)),
                                                              "chosen": dict(zip(MULTIPLE_FACES_GRID, best))}
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


