"""Draw the FER2013 mislabel review sample and render blind contact sheets for reviewers.

    python tools/mislabel_review_sheets.py WS --out DIR [--top 200 --random 200 --test 200 --reviewers 3
                                                        --overlap 20 --seed 0]

WS is a FER2013 workspace on which ``curate mislabel`` ran (its ``findings.parquet`` holds the
ranking). Three parts are drawn: the ``--top`` images of the mislabel ranking, ``--random`` images
drawn uniformly from every labelled image, and ``--test`` images drawn uniformly from the
PrivateTest split (``split == "test"``). An image drawn by two parts is reviewed once. The union is
shuffled, so no reviewer can tell which part a tile comes from, and shared among ``--reviewers``
reviewers; ``--overlap`` tiles of each reviewer's share are also shown to the next reviewer (to
measure agreement). Each tile shows the crop at 3x and its given label, never a model output.

Writes ``DIR/key.csv`` (tile -> image_id, parts; not for reviewers), ``DIR/reviewer_<r>/sheet_<k>.png``
and ``DIR/reviewer_<r>/tiles.csv`` (tile, given label).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from curate.workspace import Workspace

COLS, ROWS, SCALE = 8, 5, 3


def draw_sample(ws: Workspace, top: int, random: int, test: int, seed: int) -> pd.DataFrame:
    """One row per drawn image: image_id, label, split, parts (``top``/``random``/``test``, '+'-joined)."""
    manifest = ws.manifest()
    findings = ws.read_parquet("findings.parquet")
    ranking = findings[findings["check"] == "mislabel"].sort_values(["score", "image_id"], ascending=[False, True])
    rng = np.random.default_rng(seed)
    labelled = manifest[manifest["label"].notna()]
    parts = {
        "top": ranking["image_id"].astype(str).head(top).tolist(),
        "random": rng.choice(labelled["image_id"].astype(str).to_numpy(), size=random, replace=False).tolist(),
        "test": rng.choice(labelled.loc[labelled["split"] == "test", "image_id"].astype(str).to_numpy(),
                           size=test, replace=False).tolist(),
    }
    member: dict[str, list[str]] = {}
    for part, ids in parts.items():
        for image_id in ids:
            member.setdefault(image_id, []).append(part)
    info = manifest.set_index(manifest["image_id"].astype(str))
    rows = [{"image_id": i, "label": str(info.at[i, "label"]), "split": str(info.at[i, "split"]),
             "parts": "+".join(p)} for i, p in member.items()]
    sample = pd.DataFrame(rows)
    return sample.iloc[rng.permutation(len(sample))].reset_index(drop=True)


def listed_sample(ws: Workspace, image_ids: list[str], part: str, seed: int) -> pd.DataFrame:
    """The listed images (a later review round), shuffled, in :func:`draw_sample`'s columns."""
    info = ws.manifest().set_index(ws.manifest()["image_id"].astype(str))
    sample = pd.DataFrame({"image_id": image_ids, "label": [str(info.at[i, "label"]) for i in image_ids],
                           "split": [str(info.at[i, "split"]) for i in image_ids], "parts": part})
    return sample.iloc[np.random.default_rng(seed).permutation(len(sample))].reset_index(drop=True)


def render_sheet(tiles: list[tuple[int, np.ndarray, str]], path: Path) -> None:
    """A grid of 3x tiles, each headed by its tile number and given label."""
    side = 48 * SCALE
    head = 22
    sheet = Image.new("RGB", (COLS * (side + 6), ROWS * (side + head + 6)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (tile, pixels, label) in enumerate(tiles):
        x, y = (k % COLS) * (side + 6), (k // COLS) * (side + head + 6)
        draw.text((x + 3, y + 4), f"#{tile} {label}", fill="black")
        crop = Image.fromarray(pixels).resize((side, side), Image.BICUBIC).convert("RGB")
        sheet.paste(crop, (x, y + head))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workspace")
    parser.add_argument("--out", required=True)
    parser.add_argument("--top", type=int, default=200)
    parser.add_argument("--random", type=int, default=200)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--reviewers", type=int, default=3)
    parser.add_argument("--overlap", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ids", help="CSV with an image_id column: review these (a later round) instead of drawing")
    parser.add_argument("--first-tile", type=int, default=0, help="number of the first tile (later rounds)")
    parser.add_argument("--part", default="extra", help="part name of the --ids images")
    args = parser.parse_args()
    ws = Workspace(Path(args.workspace))
    out = Path(args.out)
    if args.ids:
        sample = listed_sample(ws, pd.read_csv(args.ids)["image_id"].astype(str).tolist(), args.part, args.seed)
    else:
        sample = draw_sample(ws, args.top, args.random, args.test, args.seed)
    sample.insert(0, "tile", np.arange(len(sample)) + args.first_tile)
    shares = np.array_split(np.arange(len(sample)), args.reviewers)
    sample["reviewer"] = np.concatenate([np.full(len(s), r) for r, s in enumerate(shares)])
    out.mkdir(parents=True, exist_ok=True)
    sample.to_csv(out / "key.csv", index=False)
    position = {i: k for k, i in enumerate(ws.manifest()["image_id"].astype(str))}
    pixels = ws.pixels()
    for r, share in enumerate(shares):
        extra = shares[(r - 1) % args.reviewers][:args.overlap] if args.reviewers > 1 else []
        tiles = list(share) + list(extra)
        table = sample.iloc[tiles][["tile", "label"]]
        folder = out / f"reviewer_{r}"
        folder.mkdir(parents=True, exist_ok=True)
        table.to_csv(folder / "tiles.csv", index=False)
        per_sheet = COLS * ROWS
        for s in range(0, len(tiles), per_sheet):
            chunk = [(int(sample.at[t, "tile"]), pixels[position[sample.at[t, "image_id"]]], sample.at[t, "label"])
                     for t in tiles[s:s + per_sheet]]
            render_sheet(chunk, folder / f"sheet_{s // per_sheet:02d}.png")
    print(f"{len(sample)} images ({sample['parts'].str.contains('top').sum()} top, "
          f"{sample['parts'].str.contains('random').sum()} random, {sample['parts'].str.contains('test').sum()} test) "
          f"-> {out}")


if __name__ == "__main__":
    main()
