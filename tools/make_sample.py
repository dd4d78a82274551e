"""Build the bundled FER2013 sample (curate/data/fer2013_sample.csv.gz) from the full Kaggle CSV.

Maintainer script, run once: ``python tools/make_sample.py ../shared/data/fer2013/fer2013.csv.gz``.
Stratified by class x Usage, plus deliberately included exact-duplicate groups (within a split,
across splits, with conflicting labels) and all blank (constant) images.
"""
from __future__ import annotations

import gzip
import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parents[1] / "curate" / "data" / "fer2013_sample.csv.gz"


def main(src: str, per_cell: int = 105, dup_groups: int = 70, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    df = pd.read_csv(src)
    pix = np.stack([np.asarray(s.split(), dtype=np.uint8) for s in df["pixels"]])
    df["digest"] = [hashlib.sha256(row.tobytes()).hexdigest() for row in pix]
    df["std"] = pix.std(axis=1)
    chosen: set[int] = set(np.flatnonzero(df["std"].to_numpy() < 1.0).tolist())  # blank images
    groups = df.groupby("digest").filter(lambda g: len(g) > 1).groupby("digest")
    kinds = {"cross_split": [], "conflict": [], "intra": []}
    for _, g in groups:
        if g["std"].iloc[0] < 1.0:
            continue
        if g["emotion"].nunique() > 1:
            kinds["conflict"].append(g.index.tolist())
        elif g["Usage"].nunique() > 1:
            kinds["cross_split"].append(g.index.tolist())
        else:
            kinds["intra"].append(g.index.tolist())
    share = {"cross_split": 0.4, "conflict": 0.25, "intra": 0.35}
    for kind, members in kinds.items():
        take = min(len(members), int(dup_groups * share[kind]))
        for i in rng.choice(len(members), size=take, replace=False):
            chosen.update(members[i])
    for (_, _), cell in df.groupby(["emotion", "Usage"]):
        k = min(len(cell), per_cell if cell["Usage"].iloc[0] == "Training" else per_cell // 2)
        chosen.update(rng.choice(cell.index.to_numpy(), size=k, replace=False).tolist())
    out = df.loc[sorted(chosen), ["emotion", "pixels", "Usage"]]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(OUT, "wb", compresslevel=9, mtime=0) as fh:
        fh.write(out.to_csv(index=False, lineterminator="\n").encode())
    print(f"{len(out)} rows -> {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")
    print(out["Usage"].value_counts().to_dict(), out["emotion"].value_counts().sort_index().to_dict())
    print({k: len(v) for k, v in kinds.items()})


if __name__ == "__main__":
    main(sys.argv[1])
