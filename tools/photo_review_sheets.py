"""Contact sheets of a random sample of scraped photos, for a by-eye review (issue 29).

    python tools/photo_review_sheets.py sheets SRC --out DIR [--count 800 --seed 29]
    python tools/photo_review_sheets.py merge DIR --out reports/review/scraped2-reviewed.csv

``sheets`` lists every image file under SRC, keeps one file of each set of byte-identical
files (the first path in sorted order), shuffles them with ``--seed`` and takes the first
``--count``: any prefix of the order is itself a uniform random sample. Each sheet shows
``--per-sheet`` photos, each tile headed by its sample index, folder, original size and the
scale it is shown at, with a bar as long as 40 original pixels (the minimum width of a usable
face in the review guide) so that face sizes can be judged in original pixels. No detector
output is drawn. Writes ``DIR/sample.csv`` (index, path, sha256, width, height, sheet) and
``DIR/sheet_<k>.png``.

``merge`` concatenates the reviewers' ``DIR/verdicts_*.csv`` (the columns of
``reports/review/scraped-reviewed.csv`` plus ``index`` and ``reviewer``), checks every value
against the guide's allowed values, and writes the review CSV sorted by path.
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from curate.ingest.decode import DecodeError, decode_image

EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".jfif", ".avif"}
TILE, HEAD, COLS = 420, 34, 3
MIN_FACE_PX = 40
COLUMNS = ["path", "usable_face", "n_faces", "multiple_faces", "cartoon", "watermark", "text_overlay",
           "no_face_reason", "label_ok", "notes"]
ALLOWED = {"usable_face": {"0", "1"}, "multiple_faces": {"0", "1"}, "cartoon": {"0", "1"},
           "watermark": {"0", "1"}, "text_overlay": {"0", "1"}, "label_ok": {"0", "1", "?"},
           "no_face_reason": {"", "none", "drawing", "too_small", "profile", "hidden", "other"}}


def list_files(src: Path) -> pd.DataFrame:
    rows = []
    for p in sorted(src.rglob("*")):
        if p.is_file() and not p.name.startswith("."):
            rows.append((p.relative_to(src).as_posix(), hashlib.sha256(p.read_bytes()).hexdigest()))
    return pd.DataFrame(rows, columns=["path", "sha256"])


def tile_image(path: Path, index: int, rel: str) -> tuple[Image.Image, int, int]:
    canvas = Image.new("RGB", (TILE, TILE + HEAD), (235, 235, 235))
    draw = ImageDraw.Draw(canvas)
    try:
        img = decode_image(path).image.convert("RGB")
    except DecodeError as exc:
        draw.text((4, 2), f"#{index} {rel[:48]}", fill=(0, 0, 0))
        draw.text((4, HEAD + 10), f"cannot decode: {exc}"[:60], fill=(200, 0, 0))
        return canvas, 0, 0
    w, h = img.size
    scale = min(TILE / w, TILE / h, 2.0)
    shown = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)
    canvas.paste(shown, ((TILE - shown.width) // 2, HEAD + (TILE - shown.height) // 2))
    folder = rel.split("/", 1)[0]
    draw.text((4, 2), f"#{index}  [{folder}]  {w}x{h}  shown x{scale:.2f}", fill=(0, 0, 0))
    draw.text((4, 17), rel[:56], fill=(60, 60, 60))
    bar = max(1, round(MIN_FACE_PX * scale))
    draw.rectangle([TILE - bar - 6, 22, TILE - 6, 28], fill=(220, 0, 0))
    draw.text((TILE - bar - 40, 20), "40px", fill=(220, 0, 0))
    return canvas, w, h


def sheets(args: argparse.Namespace) -> None:
    files = list_files(args.src)
    unique = files.drop_duplicates("sha256", keep="first")
    order = np.random.default_rng(args.seed).permutation(len(unique))
    sample = unique.iloc[order[: args.count]].reset_index(drop=True)
    sample.insert(0, "index", np.arange(len(sample)))
    sample["sheet"] = sample["index"] // args.per_sheet
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = []
    rows_per_sheet = -(-args.per_sheet // COLS)
    for k, part in sample.groupby("sheet"):
        sheet = Image.new("RGB", (COLS * (TILE + 8), rows_per_sheet * (TILE + HEAD + 8)), (255, 255, 255))
        for j, row in enumerate(part.itertuples(index=False)):
            tile, w, h = tile_image(args.src / row.path, row.index, row.path)
            sizes.append((row.index, w, h))
            sheet.paste(tile, ((j % COLS) * (TILE + 8), (j // COLS) * (TILE + HEAD + 8)))
        sheet.save(args.out / f"sheet_{k:03d}.png")
    size = pd.DataFrame(sizes, columns=["index", "width", "height"])
    sample = sample.merge(size, on="index")
    sample.to_csv(args.out / "sample.csv", index=False)
    print(f"{len(files)} files, {len(unique)} distinct; {len(sample)} drawn (seed {args.seed}) "
          f"on {sample['sheet'].nunique()} sheets in {args.out}")


def merge(args: argparse.Namespace) -> None:
    parts = [pd.read_csv(p, dtype=str, keep_default_na=False) for p in sorted(args.dir.glob("verdicts_*.csv"))]
    if not parts:
        raise SystemExit(f"{args.dir}: no verdicts_*.csv")
    df = pd.concat(parts, ignore_index=True)
    sample = pd.read_csv(args.dir / "sample.csv", dtype={"path": str})
    problems = []
    for col, allowed in ALLOWED.items():
        bad = df[~df[col].isin(allowed)]
        problems += [f"index {r['index']}: {col}={r[col]!r}" for _, r in bad.iterrows()]
    n = pd.to_numeric(df["n_faces"], errors="coerce")
    problems += [f"index {i}: n_faces={v!r}" for i, v in zip(df.loc[n.isna(), "index"], df.loc[n.isna(), "n_faces"])]
    dup = df[df.duplicated("path", keep=False)]
    problems += [f"{p}: reviewed twice" for p in sorted(set(dup["path"]))]
    unknown = set(df["path"]) - set(sample["path"])
    problems += [f"{p}: not in the sample" for p in sorted(unknown)]
    if problems:
        raise SystemExit("verdicts refused:\n" + "\n".join(problems[:50]))
    missing = sorted(set(sample["path"]) - set(df["path"]))
    out = df.sort_values("path")[COLUMNS + ["reviewer"]]
    out.to_csv(args.out, index=False)
    print(f"{len(out)} reviewed photos -> {args.out}; {len(missing)} of the sample not reviewed")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sheets")
    s.add_argument("src", type=Path)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--count", type=int, default=800)
    s.add_argument("--seed", type=int, default=29)
    s.add_argument("--per-sheet", type=int, default=6)
    m = sub.add_parser("merge")
    m.add_argument("dir", type=Path)
    m.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    {"sheets": sheets, "merge": merge}[args.cmd](args)


if __name__ == "__main__":
    main()
