"""Throughput of a recipe on this machine and a FLOP-based time estimate for another device.

``curate train-bench --recipe gpu_vgg`` trains a few batches of random faces with the recipe's
model, augmentation and batch size, and reports measured training/evaluation images/s here,
FLOPs per image (forward, counted by torch), the whole run's FLOPs (x3 for forward+backward)
and the hours it would take at a given sustained TFLOP/s on another device.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np


def flops_per_image(model, in_size: int) -> float:
    """Forward FLOPs of one (1, C, in_size, in_size) image (C = the model's input channels), counted
    by torch's FlopCounterMode."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(2, int(getattr(model, "in_channels", 1)), in_size, in_size))
    return counter.get_total_flops() / 2.0


def bench_recipe(recipe_name: str, *, overrides: Any = None, batches: int = 8, train_images: int = 28709,
                 target_tflops: float = 25.0, seed: int = 0) -> dict[str, Any]:
    """Measure a recipe's CPU throughput; estimate its full run time at ``target_tflops`` sustained."""
    import torch

    from curate.train.models import build_from_recipe, count_parameters
    from curate.train.recipes import load_recipe
    from curate.train.trainer import configure_threads, fit, predict_proba

    rec = load_recipe(recipe_name, overrides)
    threads = configure_threads(int(rec["num_threads"]))
    rng = np.random.default_rng(seed)
    n = rec["batch_size"] * batches
    images = rng.integers(0, 256, (n, rec["image_size"], rec["image_size"]), dtype=np.uint8)
    labels = rng.integers(0, 7, n)
    probe = dict(rec, epochs=1, schedule="none", tta=False)

    def timed_fit(device: str):
        warm = rec["batch_size"] * 2  # warm-up first (allocator, oneDNN / cuDNN kernels)
        fit(images[:warm], labels[:warm], probe, num_classes=7, seed=seed, device=device, quiet=True)
        return fit(images, labels, probe, num_classes=7, seed=seed, device=device, quiet=True)

    result = timed_fit("cpu")
    t0 = time.perf_counter()
    predict_proba(result.model, images, tta=bool(rec["tta"]), batch_size=rec["eval_batch_size"], device="cpu")
    eval_ips = n / (time.perf_counter() - t0)
    model = build_from_recipe(rec, 7)
    fwd = flops_per_image(model, rec["input_size"])
    total = 3.0 * fwd * train_images * rec["epochs"]
    cpu_hours = train_images * rec["epochs"] / result.images_per_s / 3600.0
    gpu: dict[str, Any] = {"gpu": None}
    if torch.cuda.is_available():  # measure there too: the estimate below is only a FLOP count
        on_gpu = timed_fit("cuda")
        gpu = {"gpu": torch.cuda.get_device_name(0), "gpu_train_images_per_s": on_gpu.images_per_s,
               "gpu_minutes_full_run": round(train_images * rec["epochs"] / on_gpu.images_per_s / 60.0, 1)}
    return gpu | {
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
        "train_images": train_images,
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
            f"{b['target_tflops']} TFLOP/s sustained"
            + (f"\n  GPU {b['gpu']}: train {b['gpu_train_images_per_s']:.0f} img/s -> "
               f"{b['gpu_minutes_full_run']} min for the full run" if b.get("gpu") else "\n  no GPU here"))


def render_bench_section(b: dict[str, Any], command: str) -> str:
    """Markdown section for a report: the recipe, the command to run it, measured and estimated time."""
    name = b["recipe"]
    lines = [f"## Recipe `{name}`: throughput and time estimate", "",
             f"Measured by `{command}` ({b['threads']} CPU threads, torch {b['torch']}"
             + (f", GPU {b['gpu']}" if b.get("gpu") else ", no GPU on this machine") + ").", "",
             "Run it on a GPU machine (same workspace, same seed as the CPU runs above):", "", "```bash",
             "curate split -w WS --raw && curate split -w WS --name cleaned",
             f"curate train-eval -w WS --split raw --recipe {name} --name raw-{name}",
             f"curate train-eval -w WS --split cleaned --recipe {name} --name cleaned-{name}",
             f"curate compare raw-{name} cleaned-{name} -w WS --report reports/train-eval.md", "```", "",
             "| figure | value |", "|---|---:|",
             f"| model | {b['model']} ({b['params']:,} parameters, {b['input_size']}px input, batch {b['batch_size']}) |",
             f"| epochs x training images | {b['epochs']} x {b['train_images']:,} |",
             f"| forward MFLOPs per image | {b['forward_mflops_per_image']} |",
             f"| training PFLOPs for the whole run (forward + backward = 3x forward) | {b['run_train_pflops']} |",
             f"| CPU training images/s (measured) | {b['cpu_train_images_per_s']:.0f} |",
             f"| CPU evaluation images/s{' with TTA' if b['eval_tta'] else ''} (measured) | "
             f"{b['cpu_eval_images_per_s']:.0f} |",
             f"| whole run on this CPU (estimate from the measured rate) | {b['cpu_hours_full_run']} h |",
             f"| whole run at {b['target_tflops']} TFLOP/s sustained (estimate) | "
             f"{b['estimated_minutes_at_target']} min |"]
    if b.get("gpu"):
        lines.append(f"| GPU training images/s (measured) / whole run | {b['gpu_train_images_per_s']:.0f} / "
                     f"{b['gpu_minutes_full_run']} min |")
    lines += ["", "The FLOP estimate is a lower bound at the stated sustained rate (small 3x3 convolutions "
                  "rarely reach a GPU's peak); augmentation runs batched on the training device "
                  "(`curate/train/augment.py`), so no CPU loader caps it. The recipe's accuracy target "
                  "(>= 72 % on PrivateTest) is only measured by the commands above on a GPU."]
    return "\n".join(lines) + "\n"


def write_bench_section(b: dict[str, Any], path: Path) -> Path:
    """Put :func:`render_bench_section` into the Markdown file at ``path`` (its own marked section)."""
    from curate import atomic
    from curate.invocation import current_command
    from curate.report.sections import put_section

    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    atomic.write_text(path, put_section(text, f"train-bench-{b['recipe']}", render_bench_section(b, current_command())))
    return path
