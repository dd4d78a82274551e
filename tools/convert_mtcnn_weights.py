"""Convert facenet-pytorch's MTCNN weights (pnet.pt, rnet.pt, onet.pt) into curate's bundled
``curate/faces/models/mtcnn.npz`` (float32 arrays named ``pnet.conv1.weight`` ...).

The weights are the MTCNN of Zhang et al. (2016) as converted by Tim Esler for
facenet-pytorch (MIT licence, see curate/faces/models/NOTICE). They are stored as a plain
``.npz`` so that curate loads them without unpickling anything. Run once, offline::

    pip download facenet-pytorch==2.6.0 --no-deps -d /tmp/pk
    python tools/convert_mtcnn_weights.py /tmp/pk/facenet_pytorch-2.6.0-py3-none-any.whl
"""
from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parents[1] / "curate" / "faces" / "models" / "mtcnn.npz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("wheel", type=Path, help="facenet_pytorch-*.whl (or a folder holding pnet.pt, rnet.pt, onet.pt)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    arrays: dict[str, np.ndarray] = {}
    for net in ("pnet", "rnet", "onet"):
        if args.wheel.is_dir():
            raw = (args.wheel / f"{net}.pt").read_bytes()
        else:
            with zipfile.ZipFile(args.wheel) as zf:
                raw = zf.read(f"facenet_pytorch/data/{net}.pt")
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        for key, value in state.items():
            arrays[f"{net}.{key}"] = value.detach().float().numpy()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(args.out)
    print(f"{args.out}: {len(arrays)} arrays, {args.out.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
