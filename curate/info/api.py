"""``curate info``: counts per class x split, sizes and modes, rejects; class distribution plot."""
from __future__ import annotations

from typing import Any

import pandas as pd

from curate.labels import CLASSES
from curate.workspace import Workspace

SPLIT_ORDER = ("train", "val", "test", "none")


def class_split_counts(manifest: pd.DataFrame) -> pd.DataFrame:
    """Table of image counts, classes as rows and splits as columns (plus 'all')."""
    frame = manifest.assign(split=manifest["split"].fillna("none"), label=manifest["label"].fillna("<none>"))
    table = pd.crosstab(frame["label"], frame["split"])
    cols = [c for c in SPLIT_ORDER if c in table.columns] + [c for c in table.columns if c not in SPLIT_ORDER]
    order = [c for c in CLASSES if c in table.index] + sorted(c for c in table.index if c not in CLASSES)
    table = table.loc[order, cols]
    table["all"] = table.sum(axis=1)
    return table


def workspace_info(ws: Workspace, plot: bool = True) -> dict[str, Any]:
    """Summary of the workspace; writes class_distribution.png when ``plot``.

    Parameters
    ----------
    ws : Workspace
        An ingested workspace.
    plot : bool, default=True
        Also write class_distribution.png (counts per class and split) into the workspace.
    """
    m = ws.manifest()
    table = class_split_counts(m)
    rejects = ws.rejects()
    sizes = (m["width"].astype("string") + "x" + m["height"].astype("string")).value_counts()
    summary: dict[str, Any] = {
        "workspace": str(ws.root),
        "images": len(m),
        "image_size": ws.image_size,
        "sources": sorted(m["source"].dropna().unique().tolist()),
        "counts": {label: {k: int(v) for k, v in row.items()} for label, row in table.iterrows()},
        "splits": {k: int(v) for k, v in m["split"].fillna("none").value_counts().items()},
        "sizes": {k: int(v) for k, v in sizes.head(10).items()},
        "channels": {str(k): int(v) for k, v in m["channels"].value_counts().items()},
        "unique_digests": int(m["digest"].nunique()),
        "rejects": {"total": len(rejects),
                    "by_reason": {k: int(v) for k, v in rejects["reason_code"].value_counts().items()}},
        "outputs": sorted(p.name for p in ws.root.iterdir() if p.suffix in (".parquet", ".json", ".npy", ".png")),
    }
    if plot and len(m):
        summary["plot"] = str(plot_class_distribution(table.drop(columns="all"), ws.path("class_distribution.png")))
    return summary


def plot_class_distribution(table: pd.DataFrame, path) -> str:
    """Grouped bar chart of class counts per split, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from curate.atomic import atomic_path

    fig, ax = plt.subplots(figsize=(8, 4), dpi=110)
    table.plot(kind="bar", ax=ax, width=0.8, color=["#4C72B0", "#DD8452", "#55A868", "#8172B3", "#937860"][: table.shape[1]])
    ax.set_xlabel("")
    ax.set_ylabel("images")
    ax.set_title("Images per class and split")
    ax.grid(axis="y", alpha=0.3)
    for container in ax.containers:
        ax.bar_label(container, fontsize=6, rotation=90, padding=2)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return str(path)


def render_info(s: dict[str, Any]) -> str:
    """Text rendering of :func:`workspace_info`."""
    splits = [c for c in next(iter(s["counts"].values()), {}).keys()] if s["counts"] else []
    lines = [f"{s['workspace']}: {s['images']:,} images ({s['unique_digests']:,} distinct pixel arrays), "
             f"stored {s['image_size']}x{s['image_size']} grey", ""]
    lines.append(f"{'class':<12}" + "".join(f"{c:>9}" for c in splits))
    for label, row in s["counts"].items():
        lines.append(f"{label:<12}" + "".join(f"{row[c]:>9,}" for c in splits))
    lines.append("")
    lines.append("sizes: " + ", ".join(f"{k} ({v:,})" for k, v in s["sizes"].items()))
    lines.append("channels: " + ", ".join(f"{k} ({v:,})" for k, v in s["channels"].items()))
    rej = s["rejects"]
    lines.append(f"rejects: {rej['total']:,}" + (" (" + ", ".join(f"{k} {v:,}" for k, v in rej["by_reason"].items()) + ")"
                                                 if rej["total"] else ""))
    if s.get("plot"):
        lines.append(f"plot: {s['plot']}")
    return "\n".join(lines)


def info_step(ws: Workspace, options: dict[str, Any], *, seed: int, quiet: bool) -> dict[str, Any]:
    """Pipeline step: summary of the workspace (``{plot: true}``)."""
    return workspace_info(Workspace.open(ws.root), plot=bool(options.get("plot", True)))
