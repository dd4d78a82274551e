"""Logistic scorers for the photo checks, stored as plain JSON (no pickles).

A :class:`PhotoScorer` maps named image-level features (``photo_features.parquet``) to a
probability with a small gradient-boosted tree ensemble, stored node by node (feature,
threshold, children, leaf value) and evaluated here without scikit-learn:
``sigmoid(baseline + sum of the leaf values reached)``. The bundled
file ``curate/audit/models/photo-checks-v1.json`` was fitted by ``curate photo-model`` on the
reviewed photos in ``reports/review/`` (command and data in ``reports/photos.md``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from curate.errors import CurateError
from curate.faces.text_detect import TEXT_DETECTOR_FEATURES

BUNDLED = Path(__file__).resolve().parent / "models" / "photo-checks-v1.json"

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
FEATURES: dict[str, tuple[str, ...]] = {"no_face": PHOTO_FEATURES, "cartoon": PHOTO_FEATURES,
                                        "watermark": PHOTO_FEATURES + TEXT_DETECTOR_FEATURES}
"""The features each learned photo check reads (names of photo_features.parquet columns); the
watermark check also reads the text detector's (:mod:`curate.faces.text_detect`). multiple_faces
is not learned: it reads MTCNN's face probabilities (:func:`curate.audit.checks_photo.second_face_scores`)."""

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
    """

    check: str
    features: tuple[str, ...]
    baseline: float
    trees: list[np.ndarray]
    importance: np.ndarray
    threshold: float

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
        """Probability of the issue per row of ``frame``."""
        return 1.0 / (1.0 + np.exp(-self.raw(transform(frame, self.features))))

    def top_reasons(self, frame: pd.DataFrame, k: int = 3) -> list[str]:
        """The values of the ``k`` most used features per row, as ``name=value`` text."""
        top = np.argsort(-self.importance)[:k]
        raw = frame.reindex(columns=list(self.features)).to_numpy(dtype=np.float64)
        return [", ".join(f"{self.features[j]}={raw[i, j]:.3g}" for j in top) for i in range(len(frame))]

    def to_json(self) -> dict[str, Any]:
        return {"features": list(self.features), "baseline": float(self.baseline), "threshold": float(self.threshold),
                "importance": [round(float(v), 6) for v in self.importance],
                "trees": [[_compact(row) for row in tree] for tree in self.trees]}

    @classmethod
    def from_json(cls, check: str, data: dict[str, Any]) -> "PhotoScorer":
        trees = [np.asarray([_expand(n) for n in t], dtype=np.float64) for t in data["trees"]]
        return cls(check=check, features=tuple(data["features"]), baseline=float(data["baseline"]), trees=trees,
                   importance=np.asarray(data["importance"], float), threshold=float(data["threshold"]))


def _compact(row: np.ndarray) -> list:
    """One node as JSON: [feature, threshold, left, right] inside the tree, [leaf value] at a leaf."""
    if row[4] > 0:
        return [float(f"{row[5]:.7g}")]
    return [int(row[0]), float(f"{row[1]:.9g}"), int(row[2]), int(row[3])]


def _expand(node: list) -> list[float]:
    return [0, 0, 0, 0, 1, node[0]] if len(node) == 1 else [*node, 0, 0]


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
               features: tuple[str, ...] | None = None, seed: int = 0) -> PhotoScorer:
    """Fit one check's tree ensemble on reviewed photos (scikit-learn's histogram gradient
    boosting, 200 rounds of 15-leaf trees) and export it node by node."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    names = tuple(features or FEATURES[check])
    x = transform(frame, names)
    model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15, random_state=seed)
    model.fit(x, np.asarray(y, int))
    trees, usage = [], np.zeros(len(names))
    for (predictor,) in model._predictors:  # binary: one tree per round
        n = predictor.nodes
        trees.append(np.stack([n["feature_idx"], n["num_threshold"], n["left"], n["right"], n["is_leaf"],
                               n["value"]], axis=1).astype(np.float64))
        np.add.at(usage, n["feature_idx"][~n["is_leaf"].astype(bool)], n["gain"][~n["is_leaf"].astype(bool)])
    baseline = float(np.ravel(model._baseline_prediction)[0])
    scorer = PhotoScorer(check, names, baseline, trees, usage / max(usage.sum(), 1e-12), threshold)
    check_x = x[: min(len(x), 64)]
    if not np.allclose(scorer.raw(check_x), model.decision_function(check_x), atol=1e-6):
        raise RuntimeError("exported trees disagree with the fitted model")
    return scorer
