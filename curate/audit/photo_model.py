"""Scorers for the learned photo checks, stored as plain JSON (no pickles).

A :class:`PhotoScorer` maps named image-level features (``photo_features.parquet``) to a
probability with a small gradient-boosted tree ensemble, stored node by node (feature,
threshold, children, leaf value) and evaluated here without scikit-learn. Its log-odds
``baseline + sum of the leaf values reached`` are calibrated (Platt: ``sigmoid(slope * log-odds +
offset)``, fitted on out-of-fold scores) so that :meth:`PhotoScorer.predict` is P(issue | photo)
at the fitting data's share of positives (``prior``); the check flags where that probability,
adjusted to the workspace (:mod:`curate.audit.label_shift`), reaches ``threshold``. The bundled
file ``curate/audit/models/photo-checks-v3.json`` was fitted by ``curate photos-bench`` on both
reviewed scrapes in ``reports/review/`` (command and figures in ``reports/photos.md``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from curate.errors import CurateError
from curate.faces.features import FACE_REGION_FEATURES
from curate.faces.text_detect import TEXT_DETECTOR_FEATURES

BUNDLED = Path(__file__).resolve().parent / "models" / "photo-checks-v3.json"

PHOTO_FEATURES: tuple[str, ...] = (
    # face detector
    "n_faces", "main_score", "main_rel_width", "main_px_width", "main_yaw", "main_roll", "second_rel_size",
    "second_score", "n_faces_half_main", "main_by_mtcnn",
    # colour and texture (drawings vs photos)
    "colours_per_kpx", "top8_colour_share", "top64_colour_share", "flat_share", "calm_share", "calm_noise",
    "calm_noise_mean", "edge_share", "strong_edge_share", "sat_mean", "sat_high_share", "sat_std", "value_std",
    "skin_share", "border_white_share", "border_uniform", "grey_image",
    # overlaid text and marks
    "strong_glyphs", "strong_glyphs_centre", "strong_glyphs_bottom", "strong_glyph_rows", "strong_glyphs_corner",
    "faint_glyphs", "faint_glyphs_centre", "faint_glyphs_bottom", "faint_glyph_rows", "faint_glyphs_corner",
    "tile_peak", "bottom_band_uniform", "bottom_band_contrast", "bottom_band_strokes", "stock_name",
)
DETECTOR_FEATURES: tuple[str, ...] = PHOTO_FEATURES[:10]
"""What the face detector saw: how many faces, how sure, how large, how frontal the main one is."""
ART_FEATURES: tuple[str, ...] = PHOTO_FEATURES[10:27]
"""Colour and texture statistics of the whole photo (backgrounds included)."""
MARK_FEATURES: tuple[str, ...] = PHOTO_FEATURES[27:]
"""Text-like strokes, tiled marks, bottom banners and stock-site file names."""

FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "detector": DETECTOR_FEATURES,
    "detector+face": DETECTOR_FEATURES + FACE_REGION_FEATURES,
    "detector+face+art": DETECTOR_FEATURES + FACE_REGION_FEATURES + ART_FEATURES,
    "all": PHOTO_FEATURES + FACE_REGION_FEATURES,
    "marks+text_detector": MARK_FEATURES + TEXT_DETECTOR_FEATURES,
    "all+text_detector": PHOTO_FEATURES + FACE_REGION_FEATURES + TEXT_DETECTOR_FEATURES,
}
"""Named feature sets a check's scorer may read (``curate photos-bench --features CHECK=SET``)."""

FEATURES: dict[str, tuple[str, ...]] = {"no_face": FEATURE_SETS["detector+face"],
                                        "cartoon": FEATURE_SETS["detector+face+art"],
                                        "watermark": FEATURE_SETS["marks+text_detector"]}
"""The features each learned photo check reads by default (names of photo_features.parquet columns):
no_face the detector's view and the main face's own pixels, not the background; cartoon adds the
whole photo's colour and texture (photos without a face); watermark only text and marks, so that
neither learns a scrape's style (measured across scrapes in reports/photos.md). multiple_faces is
not learned: it reads MTCNN's faces (:func:`curate.audit.checks_photo.second_face_scores`)."""

LOG_FEATURES = {"colours_per_kpx", "strong_glyphs", "strong_glyphs_centre", "strong_glyphs_bottom",
                "faint_glyphs", "faint_glyphs_centre", "faint_glyphs_bottom", "strong_glyph_rows",
                "faint_glyph_rows", "strong_glyphs_corner", "faint_glyphs_corner", "main_px_width", "calm_noise", "calm_noise_mean", "n_faces"}


def transform(frame: pd.DataFrame, names: tuple[str, ...] | list[str]) -> np.ndarray:
    """(N, F) float array of the named features; counts and densities log-scaled, NaN as 0."""
    cols = []
    for name in names:
        x = frame[name].to_numpy(dtype=np.float64) if name in frame else np.zeros(len(frame))
        x = np.nan_to_num(x, nan=0.0)
        cols.append(np.log1p(np.maximum(x, 0)) if name in LOG_FEATURES else x)
    return np.stack(cols, axis=1) if cols else np.zeros((len(frame), 0))


@dataclass
class PhotoScorer:
    """One check's tree ensemble over named features, with its decision threshold.

    ``trees`` holds one (K, 6) array per tree: feature index, threshold, left child,
    right child, is-leaf, leaf value (a row goes left when its value <= the threshold).
    ``slope``/``offset``: the Platt calibration of the trees' log-odds; ``prior``: the share of
    positives among the photos it was fitted on (what its probabilities assume); ``threshold``:
    the probability at which the check flags.
    """

    check: str
    features: tuple[str, ...]
    baseline: float
    trees: list[np.ndarray]
    importance: np.ndarray
    threshold: float
    slope: float = 1.0
    offset: float = 0.0
    prior: float = 0.5

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Log-odds of each row of the transformed feature matrix ``x``."""
        out = np.full(len(x), self.baseline)
        rows = np.arange(len(x))
        for tree in self.trees:
            node = np.zeros(len(x), dtype=np.int64)
            for _ in range(64):
                leaf = tree[node, 4] > 0
                if leaf.all():
                    break
                feat = tree[node, 0].astype(np.int64)
                go_left = x[rows, feat] <= tree[node, 1]
                nxt = np.where(go_left, tree[node, 2], tree[node, 3]).astype(np.int64)
                node = np.where(leaf, node, nxt)
            out += tree[node, 5]
        return out

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of the issue per row of ``frame`` (at the fitting data's prior)."""
        from curate.audit.label_shift import calibrate

        return calibrate(self.raw(transform(frame, self.features)), self.slope, self.offset)

    def top_reasons(self, frame: pd.DataFrame, k: int = 3) -> list[str]:
        """The values of the ``k`` most used features per row, as ``name=value`` text."""
        top = np.argsort(-self.importance)[:k]
        raw = frame.reindex(columns=list(self.features)).to_numpy(dtype=np.float64)
        return [", ".join(f"{self.features[j]}={raw[i, j]:.3g}" for j in top) for i in range(len(frame))]

    def to_json(self) -> dict[str, Any]:
        return {"features": list(self.features), "baseline": float(self.baseline), "threshold": float(self.threshold),
                "calibration": {"slope": float(self.slope), "offset": float(self.offset), "prior": float(self.prior)},
                "importance": [round(float(v), 6) for v in self.importance],
                "trees": [[_compact(row) for row in tree] for tree in self.trees]}

    @classmethod
    def from_json(cls, check: str, data: dict[str, Any]) -> "PhotoScorer":
        trees = [np.asarray([_expand(n) for n in t], dtype=np.float64) for t in data["trees"]]
        cal = data.get("calibration", {})
        return cls(check=check, features=tuple(data["features"]), baseline=float(data["baseline"]), trees=trees,
                   importance=np.asarray(data["importance"], float), threshold=float(data["threshold"]),
                   slope=float(cal.get("slope", 1.0)), offset=float(cal.get("offset", 0.0)),
                   prior=float(cal.get("prior", 0.5)))


def _compact(row: np.ndarray) -> list:
    """One node as JSON: [feature, threshold, left, right] inside the tree, [leaf value] at a leaf."""
    if row[4] > 0:
        return [float(f"{row[5]:.7g}")]
    return [int(row[0]), float(f"{row[1]:.9g}"), int(row[2]), int(row[3])]


def _expand(node: list) -> list[float]:
    return [0, 0, 0, 0, 1, node[0]] if len(node) == 1 else [*node, 0, 0]


def training_data_path(path: str | Path) -> Path:
    """``NAME.data.npz`` next to a scorer file ``NAME.json``: the reviewed photos it was fitted on."""
    p = Path(path)
    return p.with_name(p.stem + ".data.npz")


def load_training_data(path: str | Path | None = None) -> tuple[pd.DataFrame, dict[str, np.ndarray], np.ndarray]:
    """(features frame, labels per check, duplicate groups) of the reviewed photos a scorer file was
    fitted on (``NAME.data.npz``, written by ``curate photos-bench --write-model``)."""
    model = Path(path) if path not in (None, "bundled") else BUNDLED
    data_path = training_data_path(model)
    if not data_path.is_file():
        raise CurateError(f"{data_path}: the photo checks' training data is missing (learn_from_review: refit needs "
                          "it; use learn_from_review: recalibrate, or refit with curate photos-bench --write-model)")
    with np.load(data_path, allow_pickle=False) as z:
        frame = pd.DataFrame(z["features"].astype(np.float64), columns=[str(n) for n in z["names"]])
        labels = {k[2:]: z[k].astype(int) for k in z.files if k.startswith("y_")}
        groups = z["groups"].astype(str)
    return frame, labels, groups


def load_scorers(path: str | Path | None = None) -> tuple[dict[str, PhotoScorer], dict[str, Any]]:
    """Scorers per check and the file's metadata, from ``path`` (default: the bundled file)."""
    path = Path(path) if path not in (None, "bundled") else BUNDLED
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        scorers = {name: PhotoScorer.from_json(name, spec) for name, spec in data["checks"].items()}
    except FileNotFoundError:
        raise CurateError(f"{path}: photo-check model file not found") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise CurateError(f"{path}: not a photo-check model file ({type(exc).__name__}: {exc})") from None
    return scorers, data.get("meta", {})


def fit_scorer(check: str, frame: pd.DataFrame, y: np.ndarray, *, threshold: float = 0.5,
               features: tuple[str, ...] | None = None, seed: int = 0,
               sample_weight: np.ndarray | None = None) -> PhotoScorer:
    """Fit one check's tree ensemble on reviewed photos (scikit-learn's histogram gradient
    boosting, 200 rounds of 15-leaf trees, one thread: same result whatever the machine) and
    export it node by node; uncalibrated (slope 1, offset 0) until :func:`calibrated` is applied."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    names = tuple(features or FEATURES[check])
    x = transform(frame, names)
    model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15, random_state=seed)
    with threadpool_limits(1):   # OpenMP threads spin against busy cores; the trees are small
        model.fit(x, np.asarray(y, int), sample_weight=sample_weight)
    trees, usage = [], np.zeros(len(names))
    for (predictor,) in model._predictors:  # binary: one tree per round
        n = predictor.nodes
        trees.append(np.stack([n["feature_idx"], n["num_threshold"], n["left"], n["right"], n["is_leaf"],
                               n["value"]], axis=1).astype(np.float64))
        np.add.at(usage, n["feature_idx"][~n["is_leaf"].astype(bool)], n["gain"][~n["is_leaf"].astype(bool)])
    baseline = float(np.ravel(model._baseline_prediction)[0])
    scorer = PhotoScorer(check, names, baseline, trees, usage / max(usage.sum(), 1e-12), threshold,
                         prior=float(np.mean(y)))
    check_x = x[: min(len(x), 64)]
    if not np.allclose(scorer.raw(check_x), model.decision_function(check_x), atol=1e-6):
        raise RuntimeError("exported trees disagree with the fitted model")
    return scorer


def calibrated(scorer: PhotoScorer, oof_log_odds: np.ndarray, y: np.ndarray, threshold: float) -> PhotoScorer:
    """``scorer`` with its Platt calibration fitted on out-of-fold log-odds of the photos it was
    fitted on (``y`` their truth), its prior set to their share of positives, flagging at ``threshold``."""
    from dataclasses import replace

    from curate.audit.label_shift import fit_platt

    slope, offset = fit_platt(np.asarray(oof_log_odds, np.float64), np.asarray(y, np.float64))
    return replace(scorer, slope=slope, offset=offset, prior=float(np.mean(y)), threshold=float(threshold))
