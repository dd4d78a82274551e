"""Build a larger scraped-photo folder for timing the photo pipeline (not a benchmark of accuracy).

    python tools/make_photo_set.py ../shared/data/scraped/angry-happy-sad /tmp/photos3500 --count 3500

Every original is copied once as it is; the rest are variants of random originals (rescaled 0.5-2x,
capped at 8,000 px, some mirrored, re-encoded as JPEG or PNG), so the set holds photos of any size
up to 8,000 px, exact and near duplicates, like a real scrape. Same seed, same folder.
"""
from __future__ import annotations

import argparse
import random
import shutil
from pathlib import Path

from PIL import Image, ImageOps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--count", type=int, default=3500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    files = sorted(p for p in args.source.rglob("*") if p.is_file())
    for f in files:
        dst = args.out / f.relative_to(args.source)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dst)
    k = 0
    while len(files) + k < args.count:
        f = rng.choice(files)
        try:
            with Image.open(f) as im:
                im.seek(0)
                im = ImageOps.exif_transpose(im).convert("RGB")
        except Exception:  # noqa: BLE001 - unreadable originals stay as they are
            continue
        s = rng.uniform(0.5, 2.0)
        w, h = im.size
        s = min(s, 8000 / max(w, h))
        im = im.resize((max(16, int(w * s)), max(16, int(h * s))), Image.Resampling.BILINEAR)
        if rng.random() < 0.3:
            im = ImageOps.mirror(im)
        rel = f.relative_to(args.source)
        ext = ".png" if rng.random() < 0.15 else ".jpg"
        dst = args.out / rel.parent / f"variant{k:05d}-{rel.stem[:40]}{ext}"
        im.save(dst, quality=rng.choice([70, 85, 95])) if ext == ".jpg" else im.save(dst)
        k += 1
    print(f"{len(files) + k} photos in {args.out}")


if __name__ == "__main__":
    main()
