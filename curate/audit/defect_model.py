"""The defect model: a small CNN trained at run time on the workspace's own crops.

Self-supervised: real crops of the workspace are the "clean" class and the generators of
:mod:`curate.audit.synthetic` turn other real crops into watermark / misaligned / non_face /
cartoon / occlusion examples. The network is one of the FER models of :mod:`curate.train.models`
trained by the toolkit's one trainer (:func:`curate.train.trainer.fit`), so it runs on a GPU
when there is one and deterministically on a CPU. Augmentation is photometric plus mirror only:
a geometric jitter would blur the line between an ordinary crop and a misaligned one.

Real data already holds some defects, which the first round learns as "clean". With
``rounds: 2`` the clean crops the first model scores as likeliest defects (``drop_share``)
are replaced by others and the model is trained again.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curate.audit.synthetic import DEFECT_CLASSES, make_training_set, resize_to

RECIPE: dict[str, Any] = {
    "name": "defect_model",
    "description": "audit defect model: compact VGG on 48x48 crops, photometric + mirror augmentation",
    "model": "vgg_fer",
    "model_args": {"width": 0.25, "dropout": 0.2},
    "image_size": 48,
    "input_size": 48,
    "epochs": 6,
    "batch_size": 64,
    "optimizer": "sgd",
    "lr": 0.05,
    "schedule": "onecycle",
    "warmup_pct": 0.2,
    "weight_decay": 5.0e-4,
    "label_smoothing": 0.0,
    "augment": {"level": "none", "flip": 0.5, "brightness": 0.1, "contrast": 0.15, "gamma": 0.15},
    "class_weights": "none",
    "tta": False,
}
"""Trainer recipe of the defect model; ``model.epochs`` / ``model.width`` in configs/audit.yaml override it."""


@dataclass
class DefectModel:
    """A trained defect network and what it was trained on."""

    net: Any
    classes: tuple[str, ...] = DEFECT_CLASSES
    device: str = "cpu"
    mirror_tta: bool = True
    info: dict[str, Any] = field(default_factory=dict)

    def predict_proba(self, images: np.ndarray, *, quiet: bool = True) -> np.ndarray:
        """(N, len(classes)) probabilities for uint8 (N, S, S) crops.

        With ``mirror_tta`` the probabilities of each crop and of its mirror image are averaged
        (the model trains with mirror augmentation, so both views are in its distribution; no
        shifted views, which would blur misalignment).
        """
        from curate.progress import chunks, progress
        from curate.train.trainer import predict_proba

        out = np.zeros((len(images), len(self.classes)), np.float32)
        bar = progress(total=len(images), desc="audit: scoring", quiet=quiet, unit="img")
        for sl in chunks(len(images), 4096):
            batch = resize_to(np.asarray(images[sl]), RECIPE["image_size"])
            out[sl] = predict_proba(self.net, batch, tta=False, device=self.device)
            if self.mirror_tta:
                mirrored = np.ascontiguousarray(batch[:, :, ::-1])
                out[sl] = (out[sl] + predict_proba(self.net, mirrored, tta=False, device=self.device)) / 2
            bar.update(sl.stop - sl.start)
        bar.close()
        return out


def recipe_from_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The trainer recipe with the audit config's overrides (epochs, width, batch_size, lr)."""
    recipe = dict(RECIPE, model_args=dict(RECIPE["model_args"]))
    for key in ("epochs", "batch_size", "lr"):
        if cfg.get(key) is not None:
            recipe[key] = type(RECIPE[key])(cfg[key])
    if cfg.get("width") is not None:
        recipe["model_args"]["width"] = float(cfg["width"])
    return recipe


def _training_size(n_images: int, cfg: dict[str, Any]) -> tuple[int, int]:
    """(clean, per-defect) example counts: the configured ones, scaled down for small workspaces."""
    n_clean = min(int(cfg["n_clean"]), n_images)
    n_defect = min(int(cfg["n_per_defect"]), max(int(cfg.get("min_per_defect", 200)), n_images // 4))
    return n_clean, n_defect


def train_defect_model(images: np.ndarray, cfg: dict[str, Any], *, seed: int, quiet: bool = True) -> DefectModel:
    """Fit the defect model on ``images`` (uint8 (N,S,S), the workspace's crops).

    ``cfg`` keys: n_clean, n_per_defect, min_per_defect, epochs, width, rounds, first_round_epochs,
    drop_share, mirror_tta, device.
    """
    from curate.train.trainer import fit, resolve_device

    t0 = time.perf_counter()
    images = np.asarray(images)
    recipe = recipe_from_config(cfg)
    device = str(resolve_device(str(cfg.get("device", "auto"))))
    n_clean, n_defect = _training_size(len(images), cfg)
    exclude = np.zeros(len(images), bool)
    rounds = max(1, int(cfg.get("rounds", 1)))
    info: dict[str, Any] = {"rounds": []}
    model = None
    for r in range(rounds):
        x, y = make_training_set(images, n_clean=n_clean, n_per_defect=n_defect, seed=seed + 1 + r,
                                 size=recipe["image_size"], exclude=exclude)
        last = r + 1 == rounds
        epochs = recipe["epochs"] if last else int(cfg.get("first_round_epochs") or recipe["epochs"])
        result = fit(x, y, dict(recipe, epochs=epochs), num_classes=len(DEFECT_CLASSES), seed=seed + r,
                     device=device, quiet=quiet)
        model = DefectModel(net=result.model, device=device, mirror_tta=bool(cfg.get("mirror_tta", True)))
        info["rounds"].append({"examples": int(len(x)), "train_acc": round(result.history[-1]["train_acc"], 4),
                               "seconds": result.seconds, "images_per_s": result.images_per_s})
        if not last:  # drop the likeliest real defects from the next round's clean pool
            p = model.predict_proba(images, quiet=quiet)
            defect = 1.0 - p[:, 0]
            k = int(round(float(cfg.get("drop_share", 0.03)) * len(images)))
            if k:
                exclude[np.argsort(-defect, kind="stable")[:k]] = True
    info.update(train_examples=info["rounds"][-1]["examples"], train_seconds=round(time.perf_counter() - t0, 2),
                excluded_from_clean=int(exclude.sum()), recipe=recipe["name"], device=device)
    model.info = info
    return model
