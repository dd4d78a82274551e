"""Throughput of a recipe on this machine and a FLOP-based time estimate for another device.

``curate train-bench --recipe gpu_vgg`` trains a few batches of random faces with the recipe's
model, augmentation and batch size, and reports measured training/evaluation images/s here,
FLOPs per image (forward, counted by torch), the whole run's FLOPs (x3 for forward+backward)
and the hours it would take at a given sustained TFLOP/s on another device.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np


def flops_per_image(model, in_size: int) -> float:
    """Forward FLOPs of one (1, 1, in_size, in_size) image, counted by torch's FlopCounterMode."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(2, 1, in_size, in_size))
    return counter.get_total_flops() / 2.0


def bench_recipe(recipe_name: str, *, overrides: Any = None, batches: int = 8, train_images: int = 28709,
                 target_tflops: float = 25.0, seed: int = 0) -> dict[str, Any]:
    """Measure a recipe's CPU throughput; estimate its full run time at ``target_tflops`` sustained."""
    import torch

    from curate.train.models import build_model, count_parameters
    from curate.train.recipes import load_recipe
    from curate.train.trainer import configure_threads, fit, predict_proba

    rec = load_recipe(recipe_name, overrides)
    threads = configure_threads(int(rec["num_threads"]))
    rng = np.random.default_rng(seed)
    n = rec["batch_size"] * batches
    images = rng.integers(0, 256, (n, rec["image_size"], rec["image_size"]), dtype=np.uint8)
    labels = rng.integers(0, 7, n)
    probe = dict(rec, epochs=1, schedule="none", tta=False)
    fit(images[: rec["batch_size"] * 2], labels[: rec["batch_size"] * 2], probe, num_classes=7, seed=seed,
        device="cpu", quiet=True)  # warm-up (allocator, oneDNN kernels)
    result = fit(images, labels, probe, num_classes=7, seed=seed, device="cpu", quiet=True)
    t0 = time.perf_counter()
    predict_proba(result.model, images, tta=bool(rec["tta"]), batch_size=rec["eval_batch_size"], device="cpu")
    eval_ips = n / (time.perf_counter() - t0)
    model = build_model(rec["model"], 7, in_size=rec["input_size"], **rec["model_args"])
    fwd = flops_per_image(model, rec["input_size"])
    total = 3.0 * fwd * train_images * rec["epochs"]
    cpu_hours = train_images * rec["epochs"] / result.images_per_s / 3600.0
    return {
        "recipe": rec["name"], "model": rec["model"], "params": count_parameters(model),
        "input_size": rec["input_size"], "batch_size": rec["batch_size"], "epochs": rec["epochs"],
        "threads": threads, "torch": torch.__version__,
        "cpu_train_images_per_s": result.images_per_s, "cpu_eval_images_per_s": round(eval_ips, 1),
        "eval_tta": bool(rec["tta"]),
        "forward_mflops_per_image": round(fwd / 1e6, 2), "run_train_pflops": round(total / 1e15, 3),
        "cpu_hours_full_run": round(cpu_hours, 2),
        "target_tflops": target_tflops,
        "estimated_minutes_at_target": round(total / (target_tflops * 1e12) / 60.0, 1),
        "cpu_gflops_sustained": round(3.0 * fwd * result.images_per_s / 1e9, 1),
    }


def render_bench(b: dict[str, Any]) -> str:
    """Readable lines of :func:`bench_recipe`."""
    return (f"recipe {b['recipe']} ({b['model']}, {b['params']:,} params, {b['input_size']}px, batch {b['batch_size']}, "
            f"{b['epochs']} epochs)\n"
            f"  CPU ({b['threads']} threads): train {b['cpu_train_images_per_s']:.0f} img/s, eval "
            f"{b['cpu_eval_images_per_s']:.0f} img/s{' (TTA x10)' if b['eval_tta'] else ''}, "
            f"~{b['cpu_gflops_sustained']} GFLOP/s sustained\n"
            f"  {b['forward_mflops_per_image']} MFLOPs/image forward; full run {b['run_train_pflops']} PFLOPs "
            f"-> {b['cpu_hours_full_run']} h on this CPU, ~{b['estimated_minutes_at_target']} min at "
            f"{b['target_tflops']} TFLOP/s sustained")
