"""Versioned weights files of the audit's defect model (``curate audit-model train`` writes them).

A weights file is a pair:

* ``NAME.pt``: the network's ``state_dict`` as plain tensors (``torch.save`` of a flat
  ``{name: tensor}`` dict; floating-point tensors stored as float16 to keep the file small),
  read back with ``torch.load(weights_only=True)``, so loading never unpickles Python objects;
* ``NAME.json``: how to rebuild and use it (classes in logit order, network name and
  arguments, input size, normalisation) and where it came from (seed, training data digest,
  curate version, the command), plus the sha256 of ``NAME.pt``, checked on load.

The package ships one such pair (:data:`BUNDLED_WEIGHTS`), used by ``curate audit`` by default.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from curate import atomic
from curate.audit.defect_net import DefectModel
from curate.errors import CurateError

FORMAT = "curate-defect-model/1"
"""Value of the sidecar's ``format`` key; a loader refuses other formats."""

BUNDLED_WEIGHTS = Path(__file__).resolve().parent / "models" / "defect-v1.pt"
"""The defect model that ships with the package (trained on FER2013, see reports/audit.md)."""

STORE_DTYPE = "float16"


def sidecar_path(path: str | Path) -> Path:
    """``NAME.json`` next to ``NAME.pt``."""
    return Path(path).with_suffix(".json")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_weights(net: Any, path: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``net``'s weights to ``path`` (.pt) and ``meta`` + the rebuild spec to the .json sidecar."""
    import torch

    path = Path(path)
    if path.suffix != ".pt":
        raise CurateError(f"{path}: a defect-model weights file must end in .pt", exit_code=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {}
    for key, value in net.state_dict().items():
        value = value.detach().cpu()
        state[key] = value.to(torch.float16) if value.is_floating_point() else value.clone()
    with atomic.atomic_path(path) as tmp:
        torch.save(state, tmp)
    spec = {"format": FORMAT, "name": path.stem, "model": net.name, "model_args": dict(net.model_args),
            "num_classes": int(net.num_classes), "input_size": int(net.in_size),
            "image_size": int(getattr(net, "image_size", net.in_size)), "channels": 1,
            "stored_dtype": STORE_DTYPE, "weights_file": path.name, "weights_sha256": file_sha256(path)}
    atomic.write_json(sidecar_path(path), {**spec, **meta})
    return path


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The sidecar of weights file ``path`` (a clear CurateError when missing or unreadable)."""
    side = sidecar_path(path)
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CurateError(f"{side}: sidecar of the defect-model weights {path} not found "
                          "(a weights file is NAME.pt + NAME.json, as `curate audit-model train` writes them)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CurateError(f"{side}: unreadable defect-model sidecar ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CurateError(f"{side}: not a defect-model sidecar (format {found!r}, expected {FORMAT!r})")
    for key in ("classes", "model", "model_args", "input_size", "image_size", "weights_sha256"):
        if key not in meta:
            raise CurateError(f"{side}: defect-model sidecar lacks {key!r}")
    return meta


def load_weights(path: str | Path, *, device: str = "cpu", mirror_tta: bool = True):
    """A ready :class:`~curate.audit.defect_net.DefectModel` from weights file ``path``.

    Errors name the file: missing .pt or .json, a digest that does not match the sidecar
    (truncated or replaced file), a file torch cannot read as plain tensors, tensors that do
    not fit the network the sidecar describes.
    """
    import torch

    from curate.train.models import build_model

    path = Path(path)
    if not path.is_file():
        raise CurateError(f"{path}: defect-model weights file not found (model.weights is 'bundled', 'none' or "
                          "the path of a .pt written by `curate audit-model train`)")
    meta = read_sidecar(path)
    digest = file_sha256(path)
    if digest != meta["weights_sha256"]:
        raise CurateError(f"{path}: defect-model weights do not match their sidecar {sidecar_path(path).name} "
                          f"(sha256 {digest[:12]}..., expected {meta['weights_sha256'][:12]}...): "
                          "the file is corrupt or was replaced")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user-facing error
        raise CurateError(f"{path}: cannot read defect-model weights ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CurateError(f"{path}: defect-model weights must be a flat dict of tensors")
    classes = tuple(str(c) for c in meta["classes"])
    try:
        net = build_model(str(meta["model"]), len(classes), in_size=int(meta["input_size"]), **meta["model_args"])
        net.load_state_dict(state)  # copies into float32 parameters
    except (ValueError, RuntimeError, TypeError) as exc:
        raise CurateError(f"{path}: weights do not fit the network in {sidecar_path(path).name} ({exc})") from None
    net.image_size = int(meta["image_size"])
    net = net.to(device).eval()
    info = {"weights": str(path), "weights_name": meta.get("name", path.stem),
            "weights_sha256": meta["weights_sha256"], "trained_on": meta.get("training", {}).get("data")}
    return DefectModel(net=net, classes=classes, device=str(device), mirror_tta=mirror_tta,
                       image_size=int(meta["image_size"]), info=info, meta=meta)


def pixels_digest(images: np.ndarray) -> str:
    """sha256 of a uint8 pixel array (shape included): names the exact images a model trained on."""
    h = hashlib.sha256(repr(tuple(images.shape)).encode())
    arr = np.asarray(images)
    for start in range(0, len(arr), 4096):
        h.update(np.ascontiguousarray(arr[start:start + 4096], dtype=np.uint8).tobytes())
    return h.hexdigest()


def ids_digest(ids: list[str]) -> str:
    """sha256 of a sorted list of image ids (one per line)."""
    return hashlib.sha256("\n".join(sorted(map(str, ids))).encode()).hexdigest()
