"""The defect model: a small CNN that scores crops as clean or one of five defect classes.

By default ``curate audit`` loads the model that ships with the package
(:data:`~curate.audit.defect_weights.BUNDLED_WEIGHTS`, trained once on FER2013 by
``curate audit-model train``) and adapts it to the workspace (a short fine-tune on the
workspace's own crops + synthetic defects) only when the workspace is large enough, the bundled
model sees its crops as unlike its training data, and the fine-tune fits its time budget
(:func:`defect_model_for`, config ``model.weights`` / ``model.adapt``). ``model.weights: none``
trains it from scratch on the workspace, as :func:`train_defect_model` describes.

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
from pathlib import Path
from typing import Any

import numpy as np

from curate.audit.defect_net import DefectModel
from curate.audit.defect_weights import BUNDLED_WEIGHTS, load_weights
from curate.audit.synthetic import DEFECT_CLASSES, make_training_set
from curate.errors import CurateError
from curate.settings import DefectModelSettings

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


def recipe_from_config(cfg: DefectModelSettings) -> dict[str, Any]:
    """The trainer recipe with the ``model`` settings' epochs and width."""
    return dict(RECIPE, epochs=cfg.epochs, model_args=dict(RECIPE["model_args"], width=cfg.width))


def _training_size(n_images: int, cfg: DefectModelSettings) -> tuple[int, int]:
    """(clean, per-defect) example counts: the configured ones, scaled down for small workspaces."""
    n_clean = min(cfg.n_clean, n_images)
    n_defect = min(cfg.n_per_defect, max(cfg.min_per_defect, n_images // 4))
    return n_clean, n_defect


def train_defect_model(images: np.ndarray, cfg: DefectModelSettings, *, seed: int,
                       quiet: bool = True) -> DefectModel:
    """Fit the defect model on ``images`` (uint8 (N,S,S), the workspace's crops).

    ``cfg``: the audit's ``model`` settings (n_clean, n_per_defect, min_per_defect, epochs, width,
    rounds, first_round_epochs, drop_share, mirror_tta, mirror_share, device are used).
    """
    from curate.train.trainer import fit, resolve_device

    t0 = time.perf_counter()
    images = np.asarray(images)
    recipe = recipe_from_config(cfg)
    device = str(resolve_device(cfg.device))
    n_clean, n_defect = _training_size(len(images), cfg)
    exclude = np.zeros(len(images), bool)
    rounds = cfg.rounds
    info: dict[str, Any] = {"rounds": []}
    model = None
    for r in range(rounds):
        x, y = make_training_set(images, n_clean=n_clean, n_per_defect=n_defect, seed=seed + 1 + r,
                                 size=recipe["image_size"], exclude=exclude)
        last = r + 1 == rounds
        epochs = recipe["epochs"] if last else cfg.first_round_epochs
        result = fit(x, y, dict(recipe, epochs=epochs), num_classes=len(DEFECT_CLASSES), seed=seed + r,
                     device=device, quiet=quiet)
        model = DefectModel(net=result.model, device=device, mirror_tta=cfg.mirror_tta,
                            mirror_share=cfg.mirror_share, image_size=int(recipe["image_size"]))
        info["rounds"].append({"examples": int(len(x)), "train_acc": round(result.history[-1]["train_acc"], 4),
                               "seconds": result.seconds, "images_per_s": result.images_per_s})
        if not last:  # drop the likeliest real defects from the next round's clean pool
            p = model.predict_proba(images, quiet=quiet)
            defect = 1.0 - p[:, 0]
            k = int(round(cfg.drop_share * len(images)))
            if k:
                exclude[np.argsort(-defect, kind="stable")[:k]] = True
    info.update(train_examples=info["rounds"][-1]["examples"], train_seconds=round(time.perf_counter() - t0, 2),
                excluded_from_clean=int(exclude.sum()), recipe=recipe["name"], device=device,
                source="trained from scratch on the workspace (model.weights: none)")
    model.info = info
    return model


def defect_rate(model: DefectModel, images: np.ndarray, *, seed: int, sample: int = 2000) -> float:
    """Share of a seeded sample of ``images`` that ``model`` scores as a defect (p(clean) < 0.5)."""
    n = len(images)
    rows = np.arange(n) if n <= sample else np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))
    if not len(rows):
        return 0.0
    p = model.predict_proba(np.asarray(images[rows]))
    return float(np.mean(p[:, list(model.classes).index("clean")] < 0.5))


def adapt_decision(model: DefectModel, images: np.ndarray, cfg: DefectModelSettings, *,
                   seed: int) -> dict[str, Any]:
    """Whether to fine-tune a loaded model on this workspace, and why (``model.adapt``: auto | never | always).

    ``auto`` adapts when the workspace holds at least ``adapt_min_images`` crops and the loaded
    model scores at least ``adapt_min_defect_rate`` (default: half) of a 2,000-crop sample as
    defects. The bundled model calls 4% of FER2013's unseen crops defects, and 15% of the
    benchmark's workspace (13% injected defects); a rate past one half is no longer a minority of
    bad images but crops unlike its training data (framing, size, lighting: 92% for FER2013
    framed 1/6 tighter). The fine-tune itself is capped at ``adapt_budget_s``.
    """
    mode = cfg.adapt
    n = len(images)
    out: dict[str, Any] = {"mode": mode, "images": n}
    if mode == "never":
        return dict(out, adapt=False, reason="model.adapt is never")
    if mode == "always":
        return dict(out, adapt=True, reason="model.adapt is always")
    min_images = cfg.adapt_min_images
    if n < min_images:
        return dict(out, adapt=False, reason=f"{n:,} images < model.adapt_min_images={min_images:,}")
    rate = defect_rate(model, images, seed=seed)
    floor = cfg.adapt_min_defect_rate
    out["defect_rate"] = round(rate, 4)
    if rate < floor:
        return dict(out, adapt=False, reason=f"the model calls {rate:.1%} of a sample defects (< "
                                             f"model.adapt_min_defect_rate={floor:.0%}): the crops look like its "
                                             "training data")
    return dict(out, adapt=True, reason=f"the model calls {rate:.1%} of a sample defects (>= {floor:.0%})")


def adapt_defect_model(model: DefectModel, images: np.ndarray, cfg: DefectModelSettings, *, seed: int,
                       quiet: bool = True) -> DefectModel:
    """Fine-tune a copy of ``model`` on the workspace: its crops as clean + synthetic defects made from them.

    SGD with a cosine-decaying learning rate (``adapt_lr``), ``adapt_epochs`` epochs over
    ``adapt_n_clean`` crops + ``adapt_per_defect`` synthetic examples per class, photometric +
    mirror augmentation (as in training). The number of steps is capped so that the whole
    adaptation (examples included) fits ``adapt_budget_s`` (measured on the first steps);
    when less than half of the planned steps fit, the loaded model is returned unchanged.
    Deterministic for a seed on a CPU.
    """
    import copy
    import math

    import torch
    import torch.nn.functional as F

    from curate.train.augment import augment_batch, augment_params, normalise, to_float
    from curate.train.trainer import configure_threads, resolve_device

    if tuple(model.classes) != DEFECT_CLASSES:
        raise CurateError(f"cannot adapt a defect model with classes {model.classes}; "
                          f"the synthetic generators make {DEFECT_CLASSES}")
    t0 = time.perf_counter()
    budget = cfg.adapt_budget_s
    n = len(images)
    n_clean = min(cfg.adapt_n_clean, n)
    n_defect = min(cfg.adapt_per_defect, max(cfg.min_per_defect, n // 4))
    x, y = make_training_set(images, n_clean=n_clean, n_per_defect=n_defect, seed=seed + 101,
                             size=model.image_size)
    dev = resolve_device(model.device)
    if dev.type == "cpu":
        configure_threads(0)
    net = copy.deepcopy(model.net).to(dev).train()
    lr = cfg.adapt_lr
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    aug = augment_params(RECIPE["augment"])
    bs = int(RECIPE["batch_size"])
    steps_per_epoch = max(1, len(x) // bs)
    planned = steps_per_epoch * cfg.adapt_epochs
    gen = torch.Generator().manual_seed(seed * 1_000_003 + 404)
    torch.manual_seed(seed * 7_919 + 405)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    from curate.progress import progress

    bar = progress(total=planned, desc="audit: adapting the defect model", quiet=quiet, unit="step")
    step, allowed, probe, t_loop = 0, planned, 5, time.perf_counter()
    loss_sum = 0.0
    while step < allowed:
        perm = torch.randperm(len(x), generator=gen)
        for s in range(steps_per_epoch):
            if step >= allowed:
                break
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / allowed))
            idx = perm[s * bs:(s + 1) * bs]
            xb = augment_batch(to_float(xt[idx]).to(dev), aug, model.image_size, model.image_size, gen)
            loss = F.cross_entropy(net(normalise(xb)), yt[idx].to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach())
            step += 1
            bar.update(1)
            if step == probe:  # cap the steps so that the whole adaptation fits the budget
                per_step = (time.perf_counter() - t_loop) / probe
                fit_steps = probe + int(max(0.0, budget - (time.perf_counter() - t0)) / per_step)
                if fit_steps < planned // 2:
                    bar.close()
                    model.info["adapt_skipped"] = (f"the fine-tune would take ~{per_step * planned:.0f} s here, "
                                                   f"over model.adapt_budget_s={budget:.0f}")
                    return model
                allowed = min(planned, fit_steps)
    bar.close()
    net.eval()
    info = dict(model.info, adapted={"examples": int(len(x)), "steps": step, "planned_steps": planned,
                                     "mean_loss": round(loss_sum / max(step, 1), 4),
                                     "seconds": round(time.perf_counter() - t0, 2)})
    return DefectModel(net=net, classes=model.classes, device=str(dev), mirror_tta=model.mirror_tta,
                       mirror_share=model.mirror_share, image_size=model.image_size, info=info, meta=model.meta)


def is_scratch(weights: Any) -> bool:
    """True when ``model.weights`` asks for training from scratch (none)."""
    return weights is None or str(weights).strip().lower() in ("none", "null", "")


def weights_path(weights: Any) -> Path:
    """The file ``model.weights`` names (``bundled`` = the package's model)."""
    return BUNDLED_WEIGHTS if str(weights).strip() == "bundled" else Path(str(weights).strip()).expanduser()


def model_choice(images: np.ndarray, cfg: DefectModelSettings, *, seed: int) -> dict[str, Any]:
    """What :func:`defect_model_for` decides for ``images`` (weights, adapt or not and why), without adapting."""
    if is_scratch(cfg.weights):
        return {"weights": "none", "adapt": False, "reason": "trained from scratch on the workspace"}
    path = weights_path(cfg.weights)
    model = load_weights(path, mirror_tta=cfg.mirror_tta)
    return {"weights": path.name, **adapt_decision(model, images, cfg, seed=seed)}


def defect_model_for(images: np.ndarray, cfg: DefectModelSettings, *, seed: int,
                     quiet: bool = True) -> DefectModel:
    """The defect model of one audit run, as ``model.weights`` / ``model.adapt`` say.

    ``weights: bundled`` (default) loads the package's model, ``weights: PATH`` another file
    written by ``curate audit-model train``, ``weights: none`` trains one from scratch on
    ``images`` (:func:`train_defect_model`; adapt does not apply). A loaded model is then
    adapted to ``images`` when :func:`adapt_decision` says so. ``info`` records what happened.
    """
    from curate.threads import apply_threads
    from curate.train.trainer import resolve_device

    t0 = time.perf_counter()
    apply_threads()  # --threads / CURATE_THREADS / the usable cores, for scoring and adapting alike
    weights = cfg.weights
    if is_scratch(weights):
        return train_defect_model(images, cfg, seed=seed, quiet=quiet)
    path = weights_path(weights)
    device = str(resolve_device(cfg.device))
    model = load_weights(path, device=device, mirror_tta=cfg.mirror_tta)
    model.mirror_share = cfg.mirror_share
    decision = adapt_decision(model, images, cfg, seed=seed)
    if decision["adapt"]:
        model = adapt_defect_model(model, images, cfg, seed=seed, quiet=quiet)
        if "adapt_skipped" in model.info:
            decision = dict(decision, adapt=False, reason=model.info.pop("adapt_skipped"))
    model.info.update(source=f"loaded {'the bundled model ' if str(weights).strip() == 'bundled' else ''}{path.name}",
                      adapt=decision, train_seconds=round(time.perf_counter() - t0, 2))
    return model
