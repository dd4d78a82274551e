"""The defect model: a classifier trained at run time on the workspace's own crops.

Self-supervised: real crops of the workspace are the "clean" class, the generators of
:mod:`curate.audit.synthetic` turn other real crops into watermark / misaligned / non_face /
cartoon / occlusion examples. The classifier sees cheap descriptors (:mod:`curate.audit.features`:
HOG layout, distance to the workspace's face subspace, stroke/text responses, global stats),
so it combines "looks like an aligned face of this dataset" with text-like and
low-information evidence into one probability per defect class. Seeded and deterministic.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curate.audit import features as F
from curate.audit.synthetic import DEFECT_CLASSES, make_training_set
from curate.progress import chunks, progress


@dataclass
class DefectModel:
    """Fitted face subspace, feature scaler and classifier."""

    subspace: F.FaceSubspace
    mean: np.ndarray
    scale: np.ndarray
    classifier: Any
    classes: tuple[str, ...] = DEFECT_CLASSES
    info: dict[str, Any] = field(default_factory=dict)

    def features(self, images: np.ndarray) -> np.ndarray:
        return (F.describe(F.as48(images), self.subspace) - self.mean) / self.scale

    def predict_proba(self, images: np.ndarray, *, chunk: int = 2048, quiet: bool = True) -> np.ndarray:
        """(N, len(classes)) probabilities for uint8 crops."""
        out = np.zeros((len(images), len(self.classes)), np.float32)
        bar = progress(total=len(images), desc="audit: scoring", quiet=quiet, unit="img")
        for sl in chunks(len(images), chunk):
            out[sl] = self.classifier.predict_proba(self.features(np.asarray(images[sl])))
            bar.update(sl.stop - sl.start)
        bar.close()
        return out


def train_defect_model(images: np.ndarray, cfg: dict[str, Any], *, seed: int, quiet: bool = True) -> DefectModel:
    """Fit the defect model on ``images`` (uint8 (N,S,S), the workspace's crops).

    ``cfg`` keys: n_clean, n_per_defect, pca_components, pca_images. The classifier is a
    shrinkage linear discriminant (closed form: fast, deterministic, no iterations to tune).
    """
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    t0 = time.perf_counter()
    images = F.as48(np.asarray(images))
    rng = np.random.default_rng(seed)
    fit_rows = np.sort(rng.choice(len(images), size=min(len(images), int(cfg["pca_images"])), replace=False))
    subspace = F.FaceSubspace.fit(images[fit_rows], min(int(cfg["pca_components"]), len(fit_rows) - 1), seed)
    x, y = make_training_set(images, n_clean=int(cfg["n_clean"]), n_per_defect=int(cfg["n_per_defect"]),
                             seed=seed + 1)
    t_data = time.perf_counter() - t0
    feats = []
    for sl in progress(list(chunks(len(x), 2048)), desc="audit: training features", quiet=quiet):
        feats.append(F.describe(x[sl], subspace))
    fx = np.concatenate(feats)
    mean, scale = fx.mean(axis=0), fx.std(axis=0) + 1e-6
    clf = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto", priors=np.full(len(DEFECT_CLASSES),
                                                                                     1 / len(DEFECT_CLASSES)))
    clf.fit((fx - mean) / scale, y)
    info = {"train_examples": int(len(x)), "features": int(fx.shape[1]), "data_seconds": round(t_data, 2),
            "train_seconds": round(time.perf_counter() - t0, 2)}
    return DefectModel(subspace=subspace, mean=mean, scale=scale, classifier=clf, info=info)
