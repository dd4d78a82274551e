"""The expression model that ships with curate: a FER2013-trained net as plain tensors, and its uses.

``curate expression-model export -w WS --run RUN`` packages a ``curate train-eval`` run (trained
on FER2013 with curate's own cleaned split) as three files next to each other:

* ``NAME.pt``: the state_dict as plain tensors (float16), read with ``torch.load(weights_only=True)``;
* ``NAME.json``: how to rebuild it (network, arguments, input size, classes in logit order, TTA),
  where it came from (recipe, seed, command, workspace, split, data digest, test accuracy) and
  the sha256 of the two other files, checked on load;
* ``NAME-seen.npy``: the first 8 bytes (uint64) of the pixel digest of every image the model must
  never judge: all of FER2013 as the Kaggle CSV and as the folder release's JPEGs (it learned their
  labels), which covers the bundled sample too.

:class:`ExpressionModel` gives class probabilities of 48x48 grey crops; :meth:`ExpressionModel.for_classes`
maps them to a workspace's classes (a subset renormalised; a class the model does not know is an
error naming it); :meth:`ExpressionModel.seen` tells which images it was trained on (matched by
pixel digest). The mislabel check uses it as a judge from elsewhere (``mislabel.judge``), and
recipes start from its trunk (``init: expression``) for offline transfer learning.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from curate import atomic
from curate.errors import CurateError

FORMAT = "curate-expression-model/1"
BUNDLED = Path(__file__).resolve().parent / "weights" / "expression-v1.pt"
"""The expression model that ships with the package (see reports/expression-model.md)."""


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def seen_path(path: str | Path) -> Path:
    p = Path(path)
    return p.with_name(p.stem + "-seen.npy")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def digest_keys(digests: Iterable[str | None]) -> np.ndarray:
    """uint64 keys (first 16 hex digits) of pixel digests; 0 for a missing digest."""
    return np.array([int(str(d)[:16], 16) if d and str(d) != "<NA>" else 0 for d in digests], dtype=np.uint64)


def resolve(path: str | Path | None) -> Path:
    """``bundled``/None -> the bundled file; else the path (``~`` expanded)."""
    return BUNDLED if path in (None, "bundled") else Path(path).expanduser()


@dataclass
class ExpressionModel:
    """A loaded expression model: the network (eval mode, CPU unless moved), its sidecar and its seen keys."""

    net: Any
    meta: dict[str, Any]
    seen_keys: np.ndarray
    path: Path

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    def predict_proba(self, images: np.ndarray, *, device: str = "cpu", batch_size: int = 512) -> np.ndarray:
        """(N, C) probabilities over :attr:`classes` of uint8 (N, S, S) grey crops (resized to the
        model's image size when S differs; mirrored test-time augmentation when the recipe used it)."""
        from curate.train.inference import predict_proba

        images = np.asarray(images)
        size = int(self.meta["image_size"])
        if images.ndim != 3:
            raise CurateError(f"expression model: expected (N, S, S) grey crops, got shape {images.shape}")
        if images.shape[1] != size or images.shape[2] != size:
            import cv2

            images = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images])
        if len(images) == 0:
            return np.zeros((0, len(self.classes)), np.float64)
        return np.asarray(predict_proba(self.net, images, tta=bool(self.meta.get("tta", True)),
                                        batch_size=batch_size, device=device), np.float64)

    def class_map(self, classes: list[str]) -> tuple[list[int], list[str]]:
        """(column of each of ``classes`` in the model's output, the classes it does not know)."""
        own = {c: i for i, c in enumerate(self.classes)}
        return [own.get(c, -1) for c in classes], [c for c in classes if c not in own]

    def for_classes(self, probs: np.ndarray, classes: list[str]) -> np.ndarray:
        """The model's probabilities ``probs`` over ``classes`` only, renormalised to sum to 1
        (FER2013's seven classes mapped to, say, happy/neutral/sad/surprise); a class the model does
        not know is a CurateError naming it."""
        cols, unknown = self.class_map(classes)
        if unknown:
            raise CurateError(f"the expression model ({self.path.name}) knows {', '.join(self.classes)}; it cannot "
                              f"judge the class(es) {', '.join(unknown)} (use mislabel.judge: own, or map them "
                              "with ingest's label_map)", exit_code=2)
        sub = np.asarray(probs, np.float64)[:, cols]
        return sub / np.maximum(sub.sum(axis=1, keepdims=True), 1e-12)

    def seen(self, digests: Iterable[str | None]) -> np.ndarray:
        """True for each image whose pixel digest is one the model was trained on (or is FER2013's)."""
        keys = digest_keys(digests)
        return np.isin(keys, self.seen_keys) & (keys != 0)


def load_expression_model(path: str | Path | None = None, device: str = "cpu") -> ExpressionModel:
    """The expression model at ``path`` (default: the bundled one), checked against its sidecar."""
    import torch

    from curate.train.models import build_model

    path = resolve(path)
    side, seen = sidecar_path(path), seen_path(path)
    for p in (path, side, seen):
        if not p.is_file():
            raise CurateError(f"{p}: expression-model file not found (expected {path.name}, {side.name} and {seen.name} "
                              "side by side)")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise CurateError(f"{side}: not a JSON sidecar ({exc})") from None
    if meta.get("format") != FORMAT:
        raise CurateError(f"{side}: format {meta.get('format')!r}, expected {FORMAT!r}")
    for p, key in ((path, "weights_sha256"), (seen, "seen_sha256")):
        if _sha256(p) != meta.get(key):
            raise CurateError(f"{p}: sha256 differs from the one its sidecar {side.name} records (file changed?)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = build_model(meta["model"], len(meta["classes"]), in_size=int(meta["in_size"]), **meta.get("model_args", {}))
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    net.image_size = int(meta["image_size"])
    from curate.train.inference import resolve_device

    net = net.to(resolve_device(device)).eval()
    return ExpressionModel(net=net, meta=meta, seen_keys=np.sort(np.load(seen, allow_pickle=False)), path=path)


def export_expression_model(run_dir: str | Path, out: str | Path, *, seen_digests: Iterable[str | None],
                            meta: dict[str, Any]) -> dict[str, Any]:
    """Write the three files of an expression model from a train-eval run folder (model.pt/model.json)."""
    import torch

    run_dir, out = Path(run_dir), Path(out)
    if out.suffix != ".pt":
        raise CurateError(f"{out}: an expression-model file must end in .pt", exit_code=2)
    spec = json.loads((run_dir / "model.json").read_text(encoding="utf-8"))
    state = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)
    small = {k: (v.to(torch.float16) if v.is_floating_point() else v.clone()) for k, v in state.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(out) as tmp:
        torch.save(small, tmp)
    keys = np.unique(digest_keys(seen_digests))
    keys = keys[keys != 0]
    with atomic.atomic_path(seen_path(out)) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, keys)
    sidecar = {"format": FORMAT, "model": spec["model"], "model_args": spec.get("model_args", {}),
               "in_size": spec["in_size"], "image_size": spec.get("image_size", spec["in_size"]),
               **meta, "weights_sha256": _sha256(out), "seen_sha256": _sha256(seen_path(out)), "seen_images": int(len(keys))}
    atomic.write_json(sidecar_path(out), sidecar)
    return {"weights": str(out), "bytes": out.stat().st_size, "sidecar": str(sidecar_path(out)),
            "seen": str(seen_path(out)), "seen_images": int(len(keys))}
