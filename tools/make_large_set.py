"""Build a reproducible FER2013-style set of N crops (10k, 100k, 1M ...) for scale tests.

    python tools/make_large_set.py ../shared/data/fer2013/fer2013.csv.gz /tmp/scale/fer-1m.csv.gz --n 1000000
    curate ingest /tmp/scale/fer-1m.csv.gz -w /tmp/scale/ws-1m

Output: a gzipped Kaggle CSV (``emotion,pixels,Usage``, the form ``curate ingest`` reads for
FER2013 itself) and, beside it, ``<out>.truth.parquet``: one row per CSV data row with how the row
was made (``kind``, ``transform``, the CSV row of its source, its FER2013 parents). Same input,
same ``--n``, same ``--seed``: the same bytes (the gzip header carries no name and no time).

What the N rows are (shares of N, defaults):

* ``original`` (up to 35,887): FER2013's own crops as released, with their labels and Usage; when N
  is small, a seeded subset of them;
* ``filler``: new faces, so that a large set is not simply FER2013 repeated: the blend of two
  different FER2013 crops (weight 0.4-0.6 for the first), each independently mirrored (50%) and
  shifted by up to 2 px (edge pixels repeated), then a gamma curve of 0.8-1.25. A blend correlates
  with each parent by about 0.7-0.9 (aligned NCC), far from the 0.965 of a copy, so fillers are not
  duplicates of their parents or of each other; label of the heavier parent; Usage drawn 80 / 10 /
  10 % Training / PublicTest / PrivateTest;
* ``near_copy`` (``--copy-share`` 0.15): a copy of a random original or filler with one transform
  (exact copy 5%, shift 1-4 px, mirror, Gaussian noise sigma 3-10, brightness x0.8-1.2 and
  contrast x0.8-1.2, JPEG re-quantisation at quality 30-90, rotation 3-8 degrees, crop 3-8 % and
  resize back) and a second one (mirror or noise) for 30% of them; same Usage as its source except
  for 15% (drawn anew: cross-split leaks), same label except for 5% (another class: conflicts);
* ``defect`` (``--defect-share`` 0.02): blank frames (a flat grey, some with sigma-1 noise),
  text overlays (a word in large white or black letters over a source crop), heavy blur (Gaussian
  sigma 2.5-5), noise patches (no face: smoothed noise), very dark crops (x0.1-0.2), with the
  source's label and Usage.

Rows are shuffled (seeded), so copies and defects are spread through the file. Everything is drawn
up front into a small recipe table (a few dozen bytes per row); the images are then rendered and
written in blocks of 4,096 rows (rendering one block while the previous one is compressed), so
building 1M crops holds a few blocks in memory, never the set (peak about 0.5 GB, most of it the
35,887 originals and the recipe). gzip level ``--level`` (1 default: 1M rows are 8.4 GB of text).
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

SIDE = 48
PIXELS = SIDE * SIDE
BLOCK = 4096  # rows rendered at a time; fixed (not an option) so that the bytes never depend on it
USAGES = (b"Training", b"PublicTest", b"PrivateTest")
USAGE_P = (0.8, 0.1, 0.1)
KINDS = ("original", "filler", "near_copy", "defect")
COPY_TRANSFORMS = ("exact", "shift", "hflip", "noise", "brightness_contrast", "jpeg", "rotate", "crop")
COPY_P = (0.05, 0.18, 0.14, 0.14, 0.14, 0.14, 0.1, 0.11)
DEFECTS = ("blank", "text", "blur", "noise_patch", "dark")
DEFECT_P = (0.25, 0.25, 0.2, 0.15, 0.15)
WORDS = ("STOCK", "SAMPLE", "PHOTO", "(c) 2013", "PREVIEW", "www.pix.com", "FACES", "DEMO")


def read_fer2013(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pixels uint8 (N, 48, 48), emotion codes int8 (N,), usage codes int8 (N,)) of a Kaggle CSV."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from curate.ingest.fer2013 import parse_pixel_array

    table = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
        column_types={"emotion": pa.int8(), "pixels": pa.string(), "Usage": pa.string()}))
    pix = np.concatenate([parse_pixel_array(c, PIXELS) for c in table.column("pixels").chunks])
    usage = np.array([USAGES.index(u.encode()) for u in table.column("Usage").to_pylist()], np.int8)
    return pix.reshape(-1, SIDE, SIDE), table.column("emotion").to_numpy().astype(np.int8), usage


def plan(n: int, n_fer: int, labels: np.ndarray, usages: np.ndarray, seed: int, *, copy_share: float = 0.15,
         defect_share: float = 0.02) -> dict[str, np.ndarray]:
    """The recipe of every output row, drawn at once (row order = CSV order). Columns: kind, fer (the
    FER2013 row of an original), p1/p2/w/flip1/flip2/dx1/dy1/dx2/dy2/gamma (a filler's blend),
    src (the output row a copy or defect is made from), transform, a/b (transform strengths),
    noise_seed, label, usage."""
    rng = np.random.default_rng([seed, 1])
    n_defect = int(round(n * defect_share))
    n_copy = int(round(n * copy_share))
    n_base = n - n_defect - n_copy
    if n_base < 1:
        raise SystemExit(f"--n {n} leaves no original or filler rows")
    n_orig = min(n_fer, n_base)
    n_fill = n_base - n_orig
    fer = np.sort(rng.choice(n_fer, n_orig, replace=False)) if n_orig < n_fer else np.arange(n_fer)
    # base items 0..n_base-1 (originals, then fillers), then copies, then defects; shuffled at the end
    kind = np.r_[np.zeros(n_orig, np.int8), np.ones(n_fill, np.int8), np.full(n_copy, 2, np.int8),
                 np.full(n_defect, 3, np.int8)]
    r = {"kind": kind}
    r["fer"] = np.r_[fer, np.full(n - n_orig, -1)].astype(np.int32)
    p1 = np.full(n, -1, np.int32)
    p2 = np.full(n, -1, np.int32)
    a = rng.integers(0, n_fer, n_fill)
    b = (a + rng.integers(1, n_fer, n_fill)) % n_fer  # a different crop
    p1[n_orig:n_base], p2[n_orig:n_base] = a, b
    r["p1"], r["p2"] = p1, p2
    fill = slice(n_orig, n_base)
    w = np.zeros(n, np.float32)
    w[fill] = rng.uniform(0.4, 0.6, n_fill)
    r["w"] = w
    for name in ("flip1", "flip2"):
        v = np.zeros(n, bool)
        v[fill] = rng.random(n_fill) < 0.5
        r[name] = v
    for name in ("dx1", "dy1", "dx2", "dy2"):
        v = np.zeros(n, np.int8)
        v[fill] = rng.integers(-2, 3, n_fill)
        r[name] = v
    g = np.ones(n, np.float32)
    g[fill] = np.exp(rng.uniform(np.log(0.8), np.log(1.25), n_fill))
    r["gamma"] = g
    # copies and defects: a source among the base items
    derived = slice(n_base, n)
    src = np.full(n, -1, np.int64)
    src[derived] = rng.integers(0, n_base, n - n_base)
    r["src"] = src
    transform = np.full(n, -1, np.int8)
    transform[n_base:n_base + n_copy] = rng.choice(len(COPY_TRANSFORMS), n_copy, p=COPY_P)
    transform[n_base + n_copy:] = rng.choice(len(DEFECTS), n_defect, p=DEFECT_P)
    r["transform"] = transform
    r["a"] = rng.random(n).astype(np.float32)  # strengths in [0, 1), mapped to each transform's range
    r["b"] = rng.random(n).astype(np.float32)
    second = np.full(n, -1, np.int8)  # a copy's second transform: 0 mirror, 1 noise
    pick = rng.random(n_copy) < 0.3
    second[n_base:n_base + n_copy] = np.where(pick, rng.integers(0, 2, n_copy), -1)
    r["second"] = second
    r["noise_seed"] = rng.integers(0, 2**62, n, dtype=np.int64)
    # labels and usages
    label = np.zeros(n, np.int8)
    usage = np.zeros(n, np.int8)
    label[:n_orig], usage[:n_orig] = labels[fer], usages[fer]
    label[fill] = np.where(w[fill] >= 0.5, labels[a], labels[b])
    usage[fill] = rng.choice(3, n_fill, p=USAGE_P)
    label[derived], usage[derived] = label[src[derived]], usage[src[derived]]
    copies = slice(n_base, n_base + n_copy)
    leak = rng.random(n_copy) < 0.15
    usage[copies] = np.where(leak, rng.choice(3, n_copy, p=USAGE_P), usage[copies])
    conflict = rng.random(n_copy) < 0.05
    label[copies] = np.where(conflict, (label[copies] + rng.integers(1, 7, n_copy)) % 7, label[copies])
    r["label"], r["usage"] = label, usage
    # shuffle the rows; sources point at their new positions
    order = rng.permutation(n)
    where = np.empty(n, np.int64)
    where[order] = np.arange(n)
    out = {k: v[order] for k, v in r.items()}
    out["src"] = np.where(out["src"] >= 0, where[np.maximum(out["src"], 0)], -1)
    return out


# -- rendering ----------------------------------------------------------------------------------

def _shift(x: np.ndarray, dx: np.ndarray, dy: np.ndarray, pad: int = 4) -> np.ndarray:
    """Images (k, S, S) moved by (dx, dy) whole pixels each, edge pixels repeated."""
    k, h, w = x.shape
    p = np.pad(x, ((0, 0), (pad, pad), (pad, pad)), mode="edge")
    rows = np.arange(h)[None, :] + pad - dy[:, None]
    cols = np.arange(w)[None, :] + pad - dx[:, None]
    return p[np.arange(k)[:, None, None], rows[:, :, None], cols[:, None, :]]


def render_fillers(fer: np.ndarray, r: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """The blends of the filler rows ``rows`` (vectorised)."""
    def parent(p, flip, dx, dy):
        x = fer[r[p][rows]]
        x = np.where(r[flip][rows][:, None, None], x[:, :, ::-1], x)
        return _shift(x, r[dx][rows].astype(np.int64), r[dy][rows].astype(np.int64)).astype(np.float32)

    w = r["w"][rows][:, None, None]
    x = w * parent("p1", "flip1", "dx1", "dy1") + (1 - w) * parent("p2", "flip2", "dx2", "dy2")
    x = 255.0 * (x / 255.0) ** r["gamma"][rows][:, None, None]
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img, "L").save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("L"))


def copy_transform(img: np.ndarray, t: int, a: float, b: float, rng: np.random.Generator) -> np.ndarray:
    """One near-copy transform (``COPY_TRANSFORMS[t]``) of a (S, S) uint8 crop; ``a``, ``b`` in [0, 1)."""
    import cv2

    name = COPY_TRANSFORMS[t]
    h, w = img.shape
    if name == "exact":
        return img.copy()
    if name == "shift":
        d = 1 + int(a * 4)  # 1-4 px in a random direction
        ang = 2 * np.pi * b
        return _shift(img[None], np.array([round(d * np.cos(ang))]), np.array([round(d * np.sin(ang))]))[0]
    if name == "hflip":
        return np.ascontiguousarray(img[:, ::-1])
    if name == "noise":
        x = img + rng.normal(0.0, 3.0 + 7.0 * a, img.shape)
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)
    if name == "brightness_contrast":
        x = img.astype(np.float32)
        m = x.mean()
        x = (x - m) * (0.8 + 0.4 * a) + m * (0.8 + 0.4 * b)
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)
    if name == "jpeg":
        return _jpeg(img, 30 + int(a * 61))
    if name == "rotate":
        ang = (3.0 + 5.0 * a) * (1 if b < 0.5 else -1)
        mat = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), ang, 1.0)
        return cv2.warpAffine(img, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if name == "crop":
        frac = 0.03 + 0.05 * a
        ch, cw = round(h * (1 - frac)), round(w * (1 - frac))
        y0 = int(b * (h - ch + 1))
        x0 = int(((b * 7.0) % 1.0) * (w - cw + 1))
        return cv2.resize(img[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_LINEAR)
    raise ValueError(name)


def defect(img: np.ndarray, t: int, a: float, b: float, rng: np.random.Generator) -> np.ndarray:
    """One injected defect (``DEFECTS[t]``) made from a (S, S) uint8 crop."""
    import cv2

    name = DEFECTS[t]
    h, w = img.shape
    if name == "blank":
        level = int(a * 256)
        x = np.full((h, w), level, np.float64)
        if b < 0.4:
            x += rng.normal(0.0, 1.0, (h, w))
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)
    if name == "text":
        out = img.copy()
        word = WORDS[int(b * len(WORDS))]
        scale = 0.5 + 0.4 * a
        shade = 255 if b * 10 % 1 < 0.7 else 0
        y = int(h * (0.35 + 0.5 * ((a * 13) % 1)))
        cv2.putText(out, word, (1, y), cv2.FONT_HERSHEY_SIMPLEX, scale, shade, 1 + int(a * 2), cv2.LINE_AA)
        return out
    if name == "blur":
        return cv2.GaussianBlur(img, (0, 0), 2.5 + 2.5 * a, borderType=cv2.BORDER_REPLICATE)
    if name == "noise_patch":
        x = rng.normal(128.0, 40.0 + 40 * a, (h, w)).astype(np.float32)
        x = cv2.GaussianBlur(x, (0, 0), 0.5 + 2.0 * b)
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)
    if name == "dark":
        return np.rint(img * (0.1 + 0.1 * a)).astype(np.uint8)
    raise ValueError(name)


def render_block(fer: np.ndarray, r: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """The uint8 (len(rows), S, S) images of output rows ``rows``."""
    out = np.empty((len(rows), SIDE, SIDE), np.uint8)
    kind = r["kind"][rows]
    orig = kind == 0
    out[orig] = fer[r["fer"][rows[orig]]]
    fill = kind == 1
    if fill.any():
        out[fill] = render_fillers(fer, r, rows[fill])
    derived = np.flatnonzero(kind >= 2)
    if len(derived):
        srcs = r["src"][rows[derived]]
        base = np.empty((len(derived), SIDE, SIDE), np.uint8)  # sources are originals or fillers
        s_kind = r["kind"][srcs]
        base[s_kind == 0] = fer[r["fer"][srcs[s_kind == 0]]]
        if (s_kind == 1).any():
            base[s_kind == 1] = render_fillers(fer, r, srcs[s_kind == 1])
        for j, i in enumerate(derived):
            row = rows[i]
            rng = np.random.default_rng(int(r["noise_seed"][row]))
            t, a, b = int(r["transform"][row]), float(r["a"][row]), float(r["b"][row])
            if kind[i] == 2:
                img = copy_transform(base[j], t, a, b, rng)
                second = int(r["second"][row])
                if second == 0:
                    img = np.ascontiguousarray(img[:, ::-1])
                elif second == 1:
                    img = copy_transform(img, COPY_TRANSFORMS.index("noise"), 0.3 * b, 0.0, rng)
            else:
                img = defect(base[j], t, a, b, rng)
            out[i] = img
    return out


# -- CSV text -----------------------------------------------------------------------------------

_TOKENS = np.zeros((256, 4), np.uint8)  # "<value> " left-aligned, zero-padded to 4 bytes
for _v in range(256):
    _t = f"{_v} ".encode()
    _TOKENS[_v, :len(_t)] = np.frombuffer(_t, np.uint8)
_TOKEN_LEN = (_TOKENS != 0).sum(1)


def csv_lines(images: np.ndarray, labels: np.ndarray, usages: np.ndarray) -> bytes:
    """``emotion,pixels,Usage`` lines of the images (vectorised text formatting)."""
    flat = images.reshape(len(images), -1)
    text = _TOKENS[flat].reshape(len(images), -1)  # (k, 4 * pixels)
    lengths = _TOKEN_LEN[flat].sum(1)
    packed = text[text != 0]  # row-major: the rows' texts one after the other
    ends = np.cumsum(lengths)
    starts = ends - lengths
    buf = packed.tobytes()
    parts = []
    for i in range(len(images)):
        parts.append(b"%d,%s,%s\n" % (labels[i], buf[starts[i]:ends[i] - 1], USAGES[usages[i]]))
    return b"".join(parts)


def build(source: Path, out: Path, n: int, *, seed: int = 0, copy_share: float = 0.15, defect_share: float = 0.02,
          level: int = 1, quiet: bool = False) -> dict:
    """Write the set of ``n`` rows to ``out`` (gzip CSV) and ``<out>.truth.parquet``; returns a summary."""
    import pandas as pd

    t0 = time.perf_counter()
    fer, labels, usages = read_fer2013(source)
    r = plan(n, len(fer), labels, usages, seed, copy_share=copy_share, defect_share=defect_share)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                compresslevel=level) as gz, \
            ThreadPoolExecutor(max_workers=1) as writer:  # compress block k while block k + 1 renders
        gz.write(b"emotion,pixels,Usage\n")
        pending = None
        for s in range(0, n, BLOCK):
            rows = np.arange(s, min(n, s + BLOCK))
            text = csv_lines(render_block(fer, r, rows), r["label"][rows], r["usage"][rows])
            if pending is not None:
                pending.result()
            pending = writer.submit(gz.write, text)
            if not quiet and (s // BLOCK) % 25 == 0:
                print(f"  {s + len(rows):,} / {n:,} rows, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        if pending is not None:
            pending.result()
    tmp.replace(out)
    truth = pd.DataFrame({
        "row": np.arange(n), "kind": pd.Categorical.from_codes(r["kind"], KINDS),
        "transform": [COPY_TRANSFORMS[t] if k == 2 else DEFECTS[t] if k == 3 else None
                      for k, t in zip(r["kind"].tolist(), r["transform"].tolist())],
        "second": pd.Series(r["second"]).map({0: "hflip", 1: "noise"}).astype("string"),
        "source_row": r["src"], "fer_row": r["fer"], "parent1": r["p1"], "parent2": r["p2"],
        "emotion": r["label"], "usage": pd.Categorical.from_codes(r["usage"], [u.decode() for u in USAGES])})
    truth.to_parquet(out.with_name(out.name + ".truth.parquet"), index=False)
    counts = {k: int((r["kind"] == i).sum()) for i, k in enumerate(KINDS)}
    return {"out": str(out), "rows": n, "seed": seed, "counts": counts, "bytes": out.stat().st_size,
            "seconds": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path, help="fer2013.csv.gz (the Kaggle CSV)")
    ap.add_argument("out", type=Path, help="output .csv.gz")
    ap.add_argument("--n", type=int, required=True, help="rows to write")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--copy-share", type=float, default=0.15)
    ap.add_argument("--defect-share", type=float, default=0.02)
    ap.add_argument("--level", type=int, default=1, help="gzip level (1 fastest)")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    summary = build(args.source, args.out, args.n, seed=args.seed, copy_share=args.copy_share,
                    defect_share=args.defect_share, level=args.level, quiet=args.quiet)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
