"""PNG copies of the pixel store for the App (written once, only the missing ones)."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np

from curate.progress import progress
from curate.workspace import Workspace

IMAGES_DIR = "images"


def safe_id(image_id: str) -> str:
    """A file-name-safe form of an image id; a short hash keeps rewritten ids unique."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", image_id).strip(".") or "image"
    if safe != image_id:
        safe = f"{safe}-{hashlib.sha1(image_id.encode('utf-8')).hexdigest()[:8]}"
    return safe


def image_paths(ws: Workspace, image_ids) -> list[str]:
    """Absolute PNG path of each image id (whether or not it exists yet)."""
    folder = ws.path(IMAGES_DIR)
    return [str(folder / f"{safe_id(str(i))}.png") for i in image_ids]


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of one uint8 grey (H, W) image."""
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(pixels))
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def write_missing_pngs(ws: Workspace, paths: list[str], *, quiet: bool = False) -> dict[str, int]:
    """Write ``paths[i]`` from pixel row i where the file is absent; one failure never stops the rest."""
    folder = ws.path(IMAGES_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    present = set(os.listdir(folder))
    todo = [i for i, p in enumerate(paths) if os.path.basename(p) not in present]
    pixels = ws.pixels()
    errors = 0
    for i in progress(todo, total=len(todo), desc="writing PNGs", quiet=quiet, unit="img"):
        path = Path(paths[i])
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_bytes(encode_png(np.asarray(pixels[i])))
            os.replace(tmp, path)
        except OSError:
            errors += 1
            tmp.unlink(missing_ok=True)
    return {"written": len(todo) - errors, "existing": len(paths) - len(todo), "errors": errors}
