"""Blind contact sheets of the FER2013 images the non-face rankings put highest, for a by-eye review.

    python tools/nonface_review_sheets.py sheets SCRATCH --reviewed reports/review/fer2013-reviewed.csv \\
        --out DIR [--top 100 --seed 0]
    python tools/nonface_review_sheets.py merge DIR --verdicts DIR/verdicts.csv \\
        --reviewed reports/review/fer2013-reviewed.csv --base SCRATCH/base --round R

SCRATCH is the scratch folder of ``curate audit-bench`` (its ``ws-tune`` and ``ws-report`` half
workspaces hold each half's findings). ``sheets`` takes, in each half, the ``--top`` untouched
images of each ranking that judges "not a face" (``non_face``, ``low_information``, ``blank``),
leaves out the images already in the reviewed CSV, shuffles the union (so no tile tells which
ranking or half it came from) and draws sheets of 10 x 10 tiles (each crop at 2x, headed only by
its tile number). Writes ``DIR/key.csv`` (tile -> image_id, half, the rankings that chose it: not
for the reviewer) and ``DIR/sheet_<k>.png``.

``merge`` reads the reviewer's ``verdicts.csv`` (``tile, verdict`` with verdict ``face`` or
``non_face``; tiles not listed are faces), writes ``DIR/viewed.csv`` (every viewed image with its
verdict) and appends the confirmed non-faces to the reviewed CSV (``decision = exclude``,
``issue = non_face``) unless already there.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from curate.workspace import Workspace

RANKINGS = ("non_face", "low_information", "blank")
COLS, ROWS, SCALE, HEAD = 10, 10, 2, 12


def pick(scratch: Path, reviewed: set[str], top: int) -> pd.DataFrame:
    """Per half, the top untouched, not yet reviewed images of each ranking (one row per image)."""
    rows = []
    for half in ("tune", "report"):
        f = pd.read_parquet(scratch / f"ws-{half}" / "findings.parquet", columns=["image_id", "check", "score"])
        f = f[f["image_id"].str.startswith("fer2013:") & ~f["image_id"].isin(reviewed)]
        for check in RANKINGS:
            part = f[f["check"] == check].sort_values(["score", "image_id"], ascending=[False, True]).head(top)
            rows += [(i, half, check) for i in part["image_id"]]
    picked = pd.DataFrame(rows, columns=["image_id", "half", "ranking"])
    return picked.groupby(["image_id", "half"], as_index=False)["ranking"].agg("+".join)


def sheets(args: argparse.Namespace) -> None:
    reviewed = set(pd.read_csv(args.reviewed, dtype=str)["image_id"])
    picked = pick(args.scratch, reviewed, args.top)
    picked = picked.sample(frac=1.0, random_state=args.seed).reset_index(drop=True)
    picked.insert(0, "tile", np.arange(1, len(picked) + 1))
    base = Workspace.open(args.scratch / "base")
    pixels = base.pixels()
    index = pd.Series(np.arange(len(pixels)), index=base.manifest()["image_id"].astype(str))
    args.out.mkdir(parents=True, exist_ok=True)
    picked.to_csv(args.out / "key.csv", index=False)
    per = COLS * ROWS
    side = pixels.shape[1] * SCALE
    for k in range(0, len(picked), per):
        chunk = picked.iloc[k:k + per]
        sheet = Image.new("L", (COLS * side, ROWS * (side + HEAD)), 255)
        draw = ImageDraw.Draw(sheet)
        for j, (tile, image_id) in enumerate(zip(chunk["tile"], chunk["image_id"])):
            x, y = (j % COLS) * side, (j // COLS) * (side + HEAD)
            crop = Image.fromarray(np.asarray(pixels[index[image_id]])).resize((side, side), Image.NEAREST)
            sheet.paste(crop, (x, y + HEAD))
            draw.text((x + 2, y), str(tile), fill=0)
        sheet.save(args.out / f"sheet_{k // per + 1}.png")
    print(f"{len(picked)} images on {(len(picked) + per - 1) // per} sheets in {args.out}")


def merge(args: argparse.Namespace) -> None:
    key = pd.read_csv(args.dir / "key.csv", dtype={"image_id": str})
    verdicts = pd.read_csv(args.verdicts, dtype={"verdict": str})
    bad = set(verdicts["verdict"]) - {"face", "non_face"}
    if bad:
        raise SystemExit(f"{args.verdicts}: unknown verdict(s) {sorted(bad)} (face | non_face)")
    viewed = key.merge(verdicts, on="tile", how="left")
    viewed["verdict"] = viewed["verdict"].fillna("face")
    viewed["round"] = args.round
    viewed.to_csv(args.dir / "viewed.csv", index=False)
    table = pd.read_csv(args.reviewed, dtype=str, keep_default_na=False)
    manifest = Workspace.open(args.base).manifest()[["image_id", "source_row", "split", "label"]]
    new = viewed[(viewed["verdict"] == "non_face") & ~viewed["image_id"].isin(table["image_id"])]
    add = manifest[manifest["image_id"].isin(new["image_id"])].copy()
    add.insert(1, "decision", "exclude")
    add.insert(2, "new_label", "")
    add.insert(3, "issue", "non_face")
    add = add.astype({"source_row": int}).astype(str)
    out = pd.concat([table, add[table.columns]], ignore_index=True)
    out.to_csv(args.reviewed, index=False)
    print(f"{len(viewed)} viewed, {int((viewed['verdict'] == 'non_face').sum())} non-faces, {len(add)} added")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sheets")
    s.add_argument("scratch", type=Path)
    s.add_argument("--reviewed", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--top", type=int, default=100)
    s.add_argument("--seed", type=int, default=0)
    m = sub.add_parser("merge")
    m.add_argument("dir", type=Path)
    m.add_argument("--verdicts", type=Path, required=True)
    m.add_argument("--reviewed", type=Path, required=True)
    m.add_argument("--base", type=Path, required=True)
    m.add_argument("--round", default="2")
    args = ap.parse_args()
    sheets(args) if args.cmd == "sheets" else merge(args)


if __name__ == "__main__":
    main()
