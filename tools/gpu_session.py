"""Run the GPU recipes of issue 14 on a lent accelerator inside one short device call.

    python tools/gpu_session.py pack WS DEST                 # here: workspace -> DEST (< 64 MiB)
    python tools/gpu_session.py run DEST OUT --budget 520    # on the device machine

``pack`` keeps what ``curate mislabel``, ``curate split`` and ``curate train-eval`` read from a
FER2013 workspace made by the default pipeline (manifest, dedupe outputs, the audit findings) and
stores the grey pixels as JPEG mosaics (quality 95, 48x48 tiles on the 8x8 DCT grid, 0.51 bytes a
pixel, about 1.7 grey levels RMS): the device call carries at most 64 MiB and the lossless store
does not fit. ``run`` rebuilds the workspace, measures the GPU's training speed with two epochs of
``gpu_vgg``, then runs, in this order and scaled to fit ``--budget`` seconds when needed: the
5-fold mislabel check with recipe ``oof_gpu``, the default cleaned split built from it, and
``train-eval --recipe gpu_vgg`` on the raw and the cleaned split. Every stage's figures and
seconds go to OUT/session.json as soon as it ends; OUT also gets the OOF contract files and the
runs' metrics and predictions, for ``curate mislabel-bench --baseline`` and ``curate compare`` here.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tarfile
import time
import traceback
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
META_FILES = ("manifest.parquet", "workspace.json", "duplicates.parquet", "duplicate_pairs.parquet",
              "dedupe_summary.json", "rejects.parquet")
TILES = (40, 100)   # mosaic rows x columns of 48x48 images
QUALITY = 95


def _encode_mosaics(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    n, s, _ = pixels.shape
    per = TILES[0] * TILES[1]
    chunks, offsets = [], [0]
    for start in range(0, n, per):
        block = np.zeros((per, s, s), np.uint8)
        part = pixels[start:start + per]
        block[:len(part)] = part
        mosaic = block.reshape(TILES[0], TILES[1], s, s).transpose(0, 2, 1, 3).reshape(TILES[0] * s, TILES[1] * s)
        buf = io.BytesIO()
        Image.fromarray(mosaic).save(buf, format="JPEG", quality=QUALITY, subsampling=0, optimize=True)
        chunks.append(np.frombuffer(buf.getvalue(), np.uint8))
        offsets.append(offsets[-1] + len(chunks[-1]))
    return np.concatenate(chunks), np.array(offsets, np.int64)


def _decode_mosaics(data: np.ndarray, offsets: np.ndarray, n: int, s: int) -> np.ndarray:
    from PIL import Image

    out = np.zeros((n, s, s), np.uint8)
    per = TILES[0] * TILES[1]
    for k in range(len(offsets) - 1):
        mosaic = np.asarray(Image.open(io.BytesIO(data[offsets[k]:offsets[k + 1]].tobytes())).convert("L"))
        block = mosaic.reshape(TILES[0], s, TILES[1], s).transpose(0, 2, 1, 3).reshape(per, s, s)
        take = min(per, n - k * per)
        out[k * per:k * per + take] = block[:take]
    return out


def pack(ws_root: Path, dest: Path) -> dict:
    """Write DEST/meta.tar and DEST/pixels-jpeg.npz from a full workspace."""
    import pandas as pd

    sys.path.insert(0, str(REPO))
    from curate.workspace import Workspace

    ws = Workspace.open(ws_root)
    dest.mkdir(parents=True, exist_ok=True)
    pixels = np.asarray(ws.pixels())
    data, offsets = _encode_mosaics(pixels)
    decoded = _decode_mosaics(data, offsets, len(pixels), pixels.shape[1])
    rms = float(np.sqrt(((decoded.astype(np.float32) - pixels) ** 2).mean()))
    np.savez(dest / "pixels-jpeg.npz", data=data, offsets=offsets, shape=np.array(pixels.shape), rms=rms)
    with tarfile.open(dest / "meta.tar", "w") as tar:
        for name in META_FILES:
            if ws.path(name).exists():
                tar.add(ws.path(name), arcname=name)
        findings = pd.read_parquet(ws.path("findings.parquet"))
        findings = findings[findings["check"] != "mislabel"]  # recomputed there
        buf = io.BytesIO()
        findings.to_parquet(buf, index=False, compression="zstd")
        info = tarfile.TarInfo("findings.parquet")
        info.size = buf.tell()
        buf.seek(0)
        tar.addfile(info, buf)
    sizes = {p.name: p.stat().st_size for p in dest.iterdir()}
    return {"images": int(len(pixels)), "rms_grey_levels": round(rms, 3), "bytes": sizes}


def _restore(src: Path, root: Path, limit: int) -> dict:
    """Rebuild the workspace under ``root`` (``limit`` > 0: a stratified-free random subset, for trying the
    script on a CPU)."""
    import pandas as pd
    import pyarrow.parquet as pq

    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    with tarfile.open(src / "meta.tar") as tar:
        tar.extractall(root, filter="data")
    z = np.load(src / "pixels-jpeg.npz")
    n, s = int(z["shape"][0]), int(z["shape"][1])
    pixels = _decode_mosaics(z["data"], z["offsets"], n, s)
    table = pq.read_table(root / "manifest.parquet")
    meta = dict(table.schema.metadata or {})
    name = meta[b"curate.pixels"].decode()
    if limit:
        manifest = table.to_pandas()
        keep = np.sort(np.random.default_rng(0).choice(n, size=min(limit, n), replace=False))
        ids = set(manifest["image_id"].iloc[keep])
        manifest = manifest.iloc[keep].reset_index(drop=True)
        pixels = pixels[keep]
        import pyarrow as pa

        out = pa.Table.from_pandas(manifest, preserve_index=False)
        out = out.replace_schema_metadata({**(out.schema.metadata or {}), b"curate.pixels": name.encode(),
                                           b"curate.image_size": str(s).encode()})
        pq.write_table(out, root / "manifest.parquet")
        for table_name in ("findings.parquet", "duplicates.parquet", "rejects.parquet"):
            path = root / table_name
            if path.exists():
                frame = pd.read_parquet(path)
                if "image_id" in frame.columns:
                    frame[frame["image_id"].isin(ids)].to_parquet(path, index=False)
        (root / "duplicate_pairs.parquet").unlink(missing_ok=True)
    pixels.tofile(root / name)
    return {"images": int(len(pixels)), "jpeg_rms": float(z["rms"])}


def _faiss_or_shim() -> str:
    import importlib

    try:
        importlib.import_module("faiss")
        return "faiss"
    except ImportError:
        sys.path.insert(0, str(REPO / "tools" / "device_shims"))
        return "shim (exact inner product in torch)"


class Session:
    """Stage runner: each stage's result or error lands in OUT/session.json at once."""

    def __init__(self, out: Path, budget: float):
        self.out, self.budget, self.t0 = out, budget, time.perf_counter()
        self.record: dict = {"budget_s": budget, "stages": {}}

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.t0)

    def save(self) -> None:
        tmp = self.out / "session.json.tmp"
        tmp.write_text(json.dumps(self.record, indent=1, default=str))
        os.replace(tmp, self.out / "session.json")

    def stage(self, name: str, fn, *args, **kwargs):
        t = time.perf_counter()
        print(f"== {name} (budget left {self.left():.0f}s)", flush=True)
        try:
            value = fn(*args, **kwargs)
            self.record["stages"][name] = {"seconds": round(time.perf_counter() - t, 1), "result": value}
            return value
        except Exception as exc:  # one failing stage must not lose the others' figures
            self.record["stages"][name] = {"seconds": round(time.perf_counter() - t, 1), "error": repr(exc),
                                           "traceback": traceback.format_exc()[-4000:]}
            print(traceback.format_exc(), flush=True)
            return None
        finally:
            self.save()


def _env() -> dict:
    import pandas as pd
    import torch

    cuda = torch.cuda.is_available()
    return {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__,
            "pandas": pd.__version__, "cuda": cuda, "gpu": torch.cuda.get_device_name(0) if cuda else None,
            "cpus": os.cpu_count(), "knn": _faiss_or_shim()}


def _probe(ws, device: str, epochs: int = 2) -> dict:
    """Training images/s of gpu_vgg (the full-width net) on the raw train rows, from the last epoch."""
    from curate.mislabel.api import labelled_rows
    from curate.train.recipes import load_recipe
    from curate.train.trainer import fit

    manifest = ws.manifest()
    rows, classes, y = labelled_rows(manifest)
    train = manifest["split"].iloc[rows].eq("train").to_numpy(dtype=bool, na_value=False)
    rows, y = rows[train], y[train]
    stamps: list[float] = []
    recipe = load_recipe("gpu_vgg", {"epochs": epochs, "tta": False})
    t = time.perf_counter()
    fit(np.asarray(ws.pixels()[rows]), y, recipe, num_classes=len(classes), seed=0, device=device, quiet=True,
        on_epoch=lambda row: stamps.append(time.perf_counter()))
    last = stamps[-1] - stamps[-2] if len(stamps) > 1 else stamps[-1] - t
    return {"images": int(len(rows)), "epochs": epochs, "images_per_s": round(len(rows) / last, 1),
            "seconds": round(time.perf_counter() - t, 1)}


def _plan(left: float, ips: float, n_train: int, n_all: int, oof_epochs: int, gpu_epochs: int) -> dict:
    """Epochs for the OOF and the two gpu_vgg runs that fit ``left`` seconds (full recipes when they fit)."""
    oof_cost = 5 * oof_epochs * (n_all * 0.8) / ips * 1.2 + 30      # dynamics, snapshots, TTA, kNN
    gpu_cost = gpu_epochs * (n_train * 1.6) / ips * 1.1 + 40        # raw + a cleaned split about 0.6 of it
    scale = min(1.0, left / (oof_cost + gpu_cost))
    return {"scale": round(scale, 3), "oof_epochs": max(8, int(oof_epochs * scale)),
            "gpu_vgg_epochs": max(15, int(gpu_epochs * scale)), "estimated_s": round(oof_cost + gpu_cost, 1),
            "oof_s": round(oof_cost * scale, 1)}


def _mislabel(ws, device: str, epochs: int, full_epochs: int, fold_minutes: float) -> dict:
    """The 5-fold check with oof_gpu; ``fold_minutes``: a safety stop per fold (recipe max_minutes)."""
    from curate.mislabel.api import run_mislabel

    over = {"recipe": "oof_gpu", "device": device, "recipe_overrides": {"max_minutes": fold_minutes}}
    if epochs != full_epochs:
        over["recipe_overrides"]["epochs"] = epochs
    summary = run_mislabel(ws, overrides=over, seed=0, quiet=True, log=lambda m: print(m, flush=True))
    return {k: summary.get(k) for k in ("images", "recipe", "oof_accuracy", "fold_accuracy", "fold_seconds",
                                        "judged", "flagged", "seconds")} | {"overrides": over}


def _copy_oof(ws, out: Path) -> dict:
    signals = dict(np.load(ws.path("mislabel") / "signals.npz"))
    signals.pop("embeddings", None)  # 18 MB; the kNN distribution made from them is kept
    np.savez_compressed(out / "signals.npz", **signals)
    for name in ("oof_probs.npy", "oof_index.parquet", "oof_meta.json"):
        shutil.copy2(ws.path(name), out / name)
    import pandas as pd

    findings = pd.read_parquet(ws.path("findings.parquet"))
    findings[findings["check"] == "mislabel"].to_parquet(out / "findings-mislabel.parquet", index=False)
    return {"files": sorted(p.name for p in out.iterdir())}


def _split(ws, name: str, raw: bool) -> dict:
    from curate.split.api import build_split

    summary = build_split(ws, name=name, raw=raw, seed=0, quiet=True)
    return {k: summary.get(k) for k in ("counts", "removed", "sizes", "seconds")} | {"keys": sorted(summary)}


def _train(ws, split: str, name: str, device: str, epochs: int, full_epochs: int, minutes: float) -> dict:
    """train-eval with gpu_vgg; ``minutes``: a safety stop (recipe max_minutes) so the call ends in time."""
    from curate.train.api import train_eval

    over = {"max_minutes": minutes} | ({} if epochs == full_epochs else {"epochs": epochs})
    train_eval(ws, split, recipe="gpu_vgg", name=name, overrides=over, seed=0, device=device, quiet=True)
    metrics = json.loads((ws.path("runs") / name / "metrics.json").read_text())
    return {k: metrics.get(k) for k in ("accuracy", "accuracy_no_tta", "macro_f1", "n_train", "epochs_run",
                                        "best_epoch", "val_accuracy", "train_seconds", "images_per_s", "seconds",
                                        "device")} | {"overrides": over}


def _bundle_runs(ws, out: Path, names: list[str]) -> dict:
    with tarfile.open(out / "runs.tar.gz", "w:gz") as tar:
        for name in names:
            run = ws.path("runs") / name
            for file in ("metrics.json", "history.json", "predictions.parquet", "model.json"):
                if (run / file).exists():
                    tar.add(run / file, arcname=f"runs/{name}/{file}")
        for split in ("raw", "cleaned"):
            for file in ("split.json", "manifest.parquet"):
                path = ws.path("splits") / split / file
                if path.exists():
                    tar.add(path, arcname=f"splits/{split}/{file}")
    return {"bytes": (out / "runs.tar.gz").stat().st_size}


def run(src: Path, out: Path, budget: float, device: str, limit: int, cap: int = 0) -> dict:
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("CURATE_QUIET", "1")
    out.mkdir(parents=True, exist_ok=True)
    s = Session(out, budget)
    s.record["env"] = _env()
    s.save()
    from curate.workspace import Workspace

    root = Path("/tmp/gpu-session-ws")
    s.stage("restore", _restore, src, root, limit)
    ws = Workspace.open(root)
    probe = s.stage("probe", _probe, ws, device)
    if probe is None:
        return s.record
    from curate.train.recipes import load_recipe

    oof_full, gpu_full = int(load_recipe("oof_gpu")["epochs"]), int(load_recipe("gpu_vgg")["epochs"])
    manifest = ws.manifest()
    plan = _plan(s.left(), probe["images_per_s"], probe["images"], len(manifest), oof_full, gpu_full)
    if cap:
        plan.update(oof_epochs=min(cap, plan["oof_epochs"]), gpu_vgg_epochs=min(cap, plan["gpu_vgg_epochs"]), cap=cap)
    s.record["plan"] = plan
    print(f"plan: {plan}", flush=True)
    fold_minutes = round(max(0.5, 1.5 * plan["oof_s"] / 5 / 60), 2)
    if s.stage("mislabel", _mislabel, ws, device, plan["oof_epochs"], oof_full, fold_minutes) is not None:
        s.stage("copy_oof", _copy_oof, ws, out)
    s.stage("split_raw", _split, ws, "raw", True)
    cleaned = s.stage("split_cleaned", _split, ws, "cleaned", False)
    names = []
    for split in ("raw", "cleaned"):
        if split == "cleaned" and cleaned is None:
            continue
        name = f"{split}-gpu_vgg"
        minutes = round(max(0.5, (s.left() - 20) * (0.62 if split == "raw" else 1.0) / 60), 2)
        if s.stage(f"train_{split}", _train, ws, split, name, device, plan["gpu_vgg_epochs"], gpu_full,
                   minutes) is not None:
            names.append(name)
        s.stage("bundle_runs", _bundle_runs, ws, out, names)
    s.record["total_s"] = round(time.perf_counter() - s.t0, 1)
    s.save()
    return s.record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="workspace -> DEST (meta.tar, pixels-jpeg.npz)")
    p.add_argument("workspace", type=Path)
    p.add_argument("dest", type=Path)
    r = sub.add_parser("run", help="rebuild the workspace from SRC, run the GPU stages, write OUT")
    r.add_argument("src", type=Path)
    r.add_argument("out", type=Path)
    r.add_argument("--budget", type=float, default=520.0, help="seconds of work to plan for (default 520)")
    r.add_argument("--device", default="cuda", help="cuda (default) or cpu, to try the script here")
    r.add_argument("--limit", type=int, default=0, help="use a random subset of this many images (0 = all)")
    r.add_argument("--cap-epochs", type=int, default=0, help="at most this many epochs per run (0 = no cap)")
    args = parser.parse_args()
    if args.cmd == "pack":
        print(json.dumps(pack(args.workspace, args.dest), indent=1))
    else:
        record = run(args.src, args.out, args.budget, args.device, args.limit, args.cap_epochs)
        print(json.dumps({k: v for k, v in record.items()}, indent=1, default=str)[-6000:])


if __name__ == "__main__":
    main()
