"""A judge from elsewhere: the expression model that ships with curate, on a workspace's crops.

The mislabel check normally learns the workspace from the workspace itself (k-fold models). On a
scraped or small set such a model learns the scrape's style as much as the faces. The shipped
expression model (:mod:`curate.train.expression`, trained on FER2013) has never seen the scrape:
its probabilities, mapped to the workspace's classes (the classes present, renormalised), judge the
labels alone (``mislabel.judge: expression``) or averaged with the workspace's own out-of-fold
probabilities (``both``). It must never judge an image it was trained on: a workspace holding any
FER2013 image (matched by pixel digest, which also covers the bundled sample) is refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from curate.errors import CurateError
from curate.workspace import Workspace


class JudgeRefused(CurateError):
    """The expression model may not judge this workspace; ``reason`` says why in a few words."""

    def __init__(self, reason: str, message: str):
        super().__init__(message, exit_code=2)
        self.reason = reason


@dataclass
class Judgement:
    """The expression model's view of the labelled crops: probabilities over the workspace's classes
    (zero for classes no image carries), its embeddings, and what it was."""

    probs: np.ndarray
    embeddings: np.ndarray
    info: dict[str, Any]


def expression_judgement(ws: Workspace, rows: np.ndarray, y: np.ndarray, classes: list[str], *,
                         model_path: str, device: str = "cpu",
                         log: Callable[[str], None] | None = None) -> Judgement:
    """The bundled (or ``model_path``) expression model on the crops of ``rows`` (labels ``y``).

    :class:`JudgeRefused` (a CurateError) when any of the images is one the model was trained on (FER2013, by
    pixel digest), or when a class present in the workspace is one the model does not know; other CurateErrors
    when the model file cannot be had."""
    from curate.train.expression import load_expression_model
    from curate.train.trainer import embed, resolve_device

    model = load_expression_model(model_path)
    digest = ws.manifest()["digest"].iloc[rows]
    seen = model.seen(digest.astype(object).where(digest.notna(), None).tolist())
    if seen.any():
        reason = (f"{int(seen.sum()):,} of the {len(rows):,} labelled images are images the expression model "
                  f"{model.path.name} was trained on (FER2013, matched by pixel digest; the bundled sample is FER2013 "
                  "too): it learned their labels and cannot judge them")
        raise JudgeRefused(reason, f"{ws.root}: {reason}. Use mislabel.judge: own (the workspace's own k-fold models) "
                                   "for this workspace.")
    present = np.unique(y)
    names = [classes[i] for i in present]
    unknown = model.class_map(names)[1]
    if unknown:  # before predicting: the same refusal as for_classes gives, without the work
        reason = (f"the expression model ({model.path.name}) knows {', '.join(model.classes)}; it cannot judge the "
                  f"class(es) {', '.join(unknown)}")
        raise JudgeRefused(reason, f"{reason} (use mislabel.judge: own, or map them with ingest's label_map)")
    device = str(resolve_device(device))
    model.net.to(device)
    pixels = ws.pixels()
    images = np.asarray(pixels[rows] if len(rows) < len(pixels) else pixels)
    raw = model.predict_proba(images, device=device)
    probs = np.zeros((len(rows), len(classes)), np.float64)
    probs[:, present] = model.for_classes(raw, names)
    emb = embed(model.net, images, device=device)
    info = {"expression_model": model.path.name, "expression_model_test_accuracy": model.meta.get("test_accuracy"),
            "classes_judged": names}
    if log:
        log(f"mislabel: the expression model {model.path.name} judges {len(rows):,} crops over {', '.join(names)}")
    return Judgement(probs=probs, embeddings=np.asarray(emb, np.float32), info=info)


def product_of_experts(own: np.ndarray, shipped: np.ndarray, weight: float = 1.0) -> np.ndarray:
    """The two judges' weighted geometric mean, renormalised: p ∝ own^(1/(1+w)) · shipped^(w/(1+w)).

    A class stays probable only where both judges find it so; the label is doubted where either gives it
    little. Classes the expression model gives zero (classes no image carries) stay zero. On both reviewed
    scrapes it ranked the wrong labels better than either judge alone or their average (AP 0.45 / 0.21 vs
    0.41 / 0.16 for the expression model, 0.34 / 0.20 for the average; reports/expression-model.md).
    """
    own = np.asarray(own, dtype=np.float64)
    shipped = np.asarray(shipped, dtype=np.float64)
    a = 1.0 / (1.0 + weight)
    logp = a * np.log(np.maximum(own, 1e-12)) + (1.0 - a) * np.log(np.maximum(shipped, 1e-12))
    logp -= logp.max(axis=1, keepdims=True)
    p = np.exp(logp)
    p[:, ~(shipped > 0).any(axis=0)] = 0.0
    return p / p.sum(axis=1, keepdims=True)
