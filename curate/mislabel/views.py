"""A second, independent view of the labels: HOG + LBP features with a linear model (pure).

Used by the review benchmark to test whether a hand-crafted view ensembled with the CNN's
out-of-fold probabilities ranks real label errors better (see reports/mislabel.md).
"""
from __future__ import annotations

import numpy as np


def hog_lbp_features(images: np.ndarray) -> np.ndarray:
    """(N, D) HOG (12 px blocks, 6 px cells, 9 bins) + 4x4-grid uniform LBP histograms of 48x48 crops."""
    import cv2
    from skimage.feature import local_binary_pattern

    side = images.shape[1]
    hog = cv2.HOGDescriptor((side, side), (12, 12), (6, 6), (6, 6), 9)
    cell = side // 4
    rows = []
    for img in np.asarray(images, np.uint8):
        lbp = local_binary_pattern(img, 8, 1, "uniform").astype(np.int64)
        hists = [np.bincount(lbp[i:i + cell, j:j + cell].ravel(), minlength=10)[:10] / float(cell * cell)
                 for i in range(0, side, cell) for j in range(0, side, cell)]
        rows.append(np.concatenate([hog.compute(img).ravel(), np.concatenate(hists)]))
    return np.stack(rows).astype(np.float32)


def linear_oof_probs(features: np.ndarray, labels: np.ndarray, folds: np.ndarray, n_classes: int, *,
                     c: float = 0.01, seed: int = 0) -> np.ndarray:
    """Out-of-fold class probabilities of a standardised multinomial logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    probs = np.zeros((len(labels), n_classes), np.float64)
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        scaler = StandardScaler().fit(features[train])
        model = LogisticRegression(C=c, max_iter=300, random_state=seed)
        model.fit(scaler.transform(features[train]), labels[train])
        probs[np.ix_(test, model.classes_)] = model.predict_proba(scaler.transform(features[test]))
    return probs
