"""Matplotlib figures for the report, returned as PNG bytes (Agg backend, no display needed)."""
from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd

PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                         "axes.titleweight": "bold", "figure.dpi": 100})
    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def class_distribution(before: pd.DataFrame, after: pd.DataFrame) -> bytes:
    """One panel per split: images per class before (light) and after (dark) cleaning."""
    plt = _pyplot()
    splits = [s for s in before.columns]
    splits += [s for s in after.columns if s not in splits]
    classes = list(before.index) + [c for c in after.index if c not in before.index]
    fig, axes = plt.subplots(1, len(splits), figsize=(4.2 * len(splits), 3.2), squeeze=False)
    x = np.arange(len(classes))
    for ax, split in zip(axes[0], splits):
        b = before.reindex(index=classes, fill_value=0).get(split, pd.Series(0, index=classes)).to_numpy()
        a = after.reindex(index=classes, fill_value=0).get(split, pd.Series(0, index=classes)).to_numpy()
        ax.bar(x - 0.2, b, 0.4, label="before", color="#A1C4E8")
        ax.bar(x + 0.2, a, 0.4, label="after", color=PALETTE[0])
        ax.set_xticks(x, classes, rotation=40, ha="right")
        ax.set_title(f"{split}: {int(b.sum()):,} → {int(a.sum()):,}")
    axes[0][0].set_ylabel("images")
    axes[0][0].legend(frameon=False)
    fig.tight_layout()
    return _png(fig)


def flagged_per_check(checks: list[dict[str, Any]]) -> bytes:
    """Horizontal bars: flagged images per check."""
    plt = _pyplot()
    names = [c["check"] for c in checks][::-1]
    counts = [c["flagged"] for c in checks][::-1]
    labels = ["not judged" if c.get("not_judged") else f"{c['flagged']:,}" for c in checks][::-1]
    fig, ax = plt.subplots(figsize=(6, 0.32 * len(names) + 0.8))
    bars = ax.barh(names, counts, color=PALETTE[1])
    ax.bar_label(bars, labels=labels, padding=3, fontsize=8)
    ax.set_xlabel("flagged images")
    fig.tight_layout()
    return _png(fig)


def confusion_matrix(confusion: np.ndarray, classes: list[str], title: str) -> bytes:
    """Row-normalised heat map with counts in the cells (rows = given label)."""
    plt = _pyplot()
    conf = np.asarray(confusion, dtype=np.float64)
    norm = np.divide(conf, conf.sum(1, keepdims=True), out=np.zeros_like(conf), where=conf.sum(1, keepdims=True) > 0)
    fig, ax = plt.subplots(figsize=(0.62 * len(classes) + 2.2, 0.55 * len(classes) + 1.6))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{int(conf[i, j]):,}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.55 else "#222")
    ax.set_xticks(range(len(classes)), classes, rotation=40, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted (out of fold)")
    ax.set_ylabel("given label")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of row")
    fig.tight_layout()
    return _png(fig)


def noise_rates(classes: list[str], noise: np.ndarray) -> bytes:
    """Bars: estimated share of wrong labels per given class."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 2.8))
    bars = ax.bar(classes, 100 * np.asarray(noise), color=PALETTE[3])
    ax.bar_label(bars, labels=[f"{100 * v:.1f}%" for v in noise], padding=2, fontsize=8)
    ax.set_ylabel("estimated wrong labels (%)")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return _png(fig)


def runs_comparison(runs: list[dict[str, Any]]) -> bytes:
    """Accuracy and macro-F1 per run, and per-class F1 per run."""
    plt = _pyplot()
    runs = [r for r in runs if "error" not in r]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.2), gridspec_kw={"width_ratios": [1, 1.6]})
    x = np.arange(len(runs))
    acc = [100 * float(r.get("accuracy", np.nan)) for r in runs]
    f1 = [100 * float(r.get("macro_f1", np.nan)) for r in runs]
    b1 = ax1.bar(x - 0.2, acc, 0.4, label="accuracy", color=PALETTE[0])
    b2 = ax1.bar(x + 0.2, f1, 0.4, label="macro F1", color=PALETTE[2])
    for bars in (b1, b2):
        ax1.bar_label(bars, fmt="%.1f", padding=2, fontsize=7)
    ax1.set_xticks(x, [r["name"] for r in runs], rotation=20, ha="right")
    ax1.set_ylabel("%")
    ax1.legend(frameon=False, fontsize=8)
    classes = list(runs[0].get("classes") or list(runs[0].get("per_class", {}))) if runs else []
    width = 0.8 / max(1, len(runs))
    for k, run in enumerate(runs):
        per = run.get("per_class", {})
        vals = [100 * float(per.get(c, {}).get("f1", np.nan)) for c in classes]
        ax2.bar(np.arange(len(classes)) + k * width - 0.4 + width / 2, vals, width, label=run["name"],
                color=PALETTE[k % len(PALETTE)])
    ax2.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax2.set_ylabel("F1 (%)")
    ax2.set_title("per-class F1")
    ax2.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return _png(fig)
