"""Export a split: ImageFolder tree (PNG), fer2013-style CSV (emotion,pixels,Usage), parquet.

Everything goes under ``splits/<name>/export/``; each export is written to a temporary path and
renamed, so a killed export never leaves a half tree behind. All three read back with
``curate ingest`` (the folder as ``<split>/<label>/*.png``, the CSV as FER2013).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from curate import atomic
from curate.errors import CurateError
from curate.labels import CLASSES
from curate.progress import progress
from curate.settings import EXPORT_FORMATS
from curate.split.store import read_split, split_dir
from curate.workspace import Workspace

USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
FOLDER_SPLIT = {"train": "train", "val": "val", "test": "test"}


def _codes(labels: pd.Series) -> pd.Series:
    """FER2013 codes 0-6 for the seven classes; other classes get 7, 8, ... in name order."""
    extra = sorted(set(labels.astype(str)) - set(CLASSES))
    mapping = {c: i for i, c in enumerate(list(CLASSES) + extra)}
    return labels.astype(str).map(mapping).astype(int)


def _pixel_strings(pixels: np.ndarray) -> list[str]:
    flat = pixels.reshape(len(pixels), -1)
    return [" ".join(map(str, row.tolist())) for row in flat]


def safe_name(image_id: str) -> str:
    """A file name for an image id (``fer2013:123`` -> ``fer2013_123``)."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in image_id)


def export_imagefolder(frame: pd.DataFrame, pixels: np.ndarray, dest: Path, quiet: bool = False) -> Path:
    """``dest/<split>/<label>/<image>.png``; oversampled copies get ``__<k>`` suffixes."""
    from PIL import Image

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        seen: dict[str, int] = {}
        for i, rec in enumerate(progress(frame.itertuples(index=False), total=len(frame), desc="imagefolder",
                                         quiet=quiet, unit="img")):
            folder = tmp / FOLDER_SPLIT.get(rec.split, str(rec.split)) / str(rec.label)
            folder.mkdir(parents=True, exist_ok=True)
            stem = safe_name(str(rec.image_id))
            k = seen.get(stem, 0)
            seen[stem] = k + 1
            name = stem if k == 0 else f"{stem}__{k + 1}"
            Image.fromarray(np.asarray(pixels[i]), mode="L").save(folder / f"{name}.png", optimize=False)
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def export_csv(frame: pd.DataFrame, pixels: np.ndarray, dest: Path) -> Path:
    """FER2013-style CSV: emotion (code), pixels (space-separated), Usage (Training/PublicTest/PrivateTest)."""
    df = pd.DataFrame({"emotion": _codes(frame["label"]).to_numpy(), "pixels": _pixel_strings(pixels),
                       "Usage": frame["split"].map(USAGE).fillna("Training").to_numpy()})
    with atomic.atomic_path(dest) as tmp:
        df.to_csv(tmp, index=False)
    return dest


def export_parquet(frame: pd.DataFrame, pixels: np.ndarray, dest: Path) -> Path:
    """Parquet: image_id, split, label, emotion, weight, pixels (FER2013-style string)."""
    df = frame[["image_id", "split", "label", "weight"]].reset_index(drop=True).copy()
    df["emotion"] = _codes(df["label"]).to_numpy()
    df["pixels"] = _pixel_strings(pixels)
    atomic.write_parquet(dest, df)
    return dest


def export_split(ws: Workspace, name: str, formats: Iterable[str], quiet: bool = False) -> dict[str, str]:
    """Write the requested exports of ``splits/<name>``; returns format -> path."""
    formats = list(dict.fromkeys(formats))
    bad = [f for f in formats if f not in EXPORT_FORMATS]
    if bad:
        raise CurateError(f"unknown export format(s) {bad}; choose from {', '.join(EXPORT_FORMATS)}", exit_code=2)
    frame = read_split(ws, name)
    pixels = np.asarray(ws.pixels()[ws.index_of(frame["image_id"])])
    base = split_dir(ws, name) / "export"
    done: dict[str, str] = {}
    if "imagefolder" in formats:
        done["imagefolder"] = str(export_imagefolder(frame, pixels, base / "imagefolder", quiet))
    if "csv" in formats:
        done["csv"] = str(export_csv(frame, pixels, base / f"{name}_fer2013.csv"))
    if "parquet" in formats:
        done["parquet"] = str(export_parquet(frame, pixels, base / f"{name}.parquet"))
    return done
