"""Face stage on a workspace: outputs of ingest for photo sources, and ``curate faces`` re-runs.

Photos (sources ingested with ``images: photos``, or ``auto`` deciding so) are not face crops:
each goes through :func:`curate.faces.stage.process_photo` and the workspace gets

- the grey pixel store row = the aligned main face (FER2013 framing; the centred square of
  the photo when no face is found, and every crop check then says "not judged");
- ``crops-rgb-*.u8``: colour aligned crops (``rgb_size``, default 112) for colour models;
- ``faces.parquet`` (contract), ``face_images.parquet``, ``photo_features.parquet`` and
  ``text_boxes.parquet`` (the text detector's boxes).

``curate ingest`` runs the stage while it decodes each photo (one decode per file);
``curate faces -w WS`` re-runs it on the originals (e.g. with other ``faces.*`` settings).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd

from curate.errors import CurateError
from curate.faces.stage import PhotoResult, process_photo
from curate.faces.tables import FACE_IMAGES_FILE, FACES_FILE, face_stage_tables, replace_rows
from curate.progress import progress
from curate.threads import resolve_threads, torch_single_threaded
from curate.settings import FacesSettings, IngestSettings, load_settings
from curate.workspace import Workspace, utc_now


def photo_counts(results: Sequence[PhotoResult]) -> dict[str, int]:
    """How many photos, with a face, with several faces, with a face-stage error."""
    return {"photos": len(results), "with_face": sum(r.main is not None for r in results),
            "several_faces": sum(len(r.faces) >= 2 for r in results),
            "errors": sum(r.status == "error" for r in results)}


def face_crop_rows(ws: Workspace) -> np.ndarray:
    """Boolean per manifest row: its pixel-store image is a real face crop (every row of a
    crop source; a photo row only when the face stage found a face). What learns from the
    workspace (mislabel folds, the defect model's clean class) uses these rows only."""
    kinds = ws.image_kinds().to_numpy()
    ok = kinds != "photo"
    if ok.all():
        return ok
    fi = ws.read_parquet(FACE_IMAGES_FILE)
    if fi is None:
        return ok
    status = fi.drop_duplicates("image_id", keep="last").set_index("image_id")["status"]
    ids = ws.manifest()["image_id"].astype(str)
    return ok | (ids.map(status).fillna("missing").to_numpy() == "ok")


def grey_to_rgb(block: np.ndarray, side: int) -> np.ndarray:
    """Grey (k, S, S) crops as colour (k, side, side, 3) crops."""
    import cv2

    out = np.empty((len(block), side, side, 3), np.uint8)
    for i, img in enumerate(block):
        up = cv2.resize(np.ascontiguousarray(img), (side, side), interpolation=cv2.INTER_CUBIC)
        out[i] = up[..., None]
    return out


def merge_photo_outputs(ws: Workspace, merged: pd.DataFrame, keep_mask: np.ndarray, new_rows: list[pd.DataFrame],
                        new_pixels: list[np.ndarray], photo_batches: list[tuple[list[str], list[PhotoResult]]],
                        cfg: IngestSettings) -> Iterator[np.ndarray] | None:
    """Write the face tables for the new photos (replacing rows of re-ingested sources) and
    return the colour crop rows for the merged manifest, or None when it holds no photos."""
    kinds = merged["image_kind"].fillna("crop") if "image_kind" in merged else pd.Series(["crop"] * len(merged))
    new_ids = set(pd.concat([r["image_id"] for r in new_rows]).tolist()) if new_rows else set()
    dropped = set(ws.manifest()["image_id"][~keep_mask].tolist()) if ws.exists() else set()
    stale = new_ids | dropped
    ids = [i for batch_ids, _ in photo_batches for i in batch_ids]
    results = [r for _, batch in photo_batches for r in batch]
    if photo_batches or any(ws.path(n).exists() for n in (FACES_FILE, FACE_IMAGES_FILE)):
        for name, frame in face_stage_tables(ids, results):
            ws.write_parquet(name, replace_rows(ws.read_parquet(name), frame, stale))
    if not (kinds == "photo").any():
        return None
    side = cfg.faces.rgb_size
    old_rgb = ws.colour_crops() if ws.exists() else None
    old_grey = ws.pixels() if ws.exists() else None
    by_id = {i: r.rgb for i, r in zip(ids, results)}

    def rows() -> Iterator[np.ndarray]:
        idx = np.flatnonzero(keep_mask)
        for start in range(0, len(idx), 2048):
            part = idx[start:start + 2048]
            yield np.asarray(old_rgb[part]) if old_rgb is not None and old_rgb.shape[1] == side \
                else grey_to_rgb(np.asarray(old_grey[part]), side)
        for frame, pixels in zip(new_rows, new_pixels):
            for image_id, grey in zip(frame["image_id"].tolist(), pixels):
                rgb = by_id.get(image_id)
                yield (rgb if rgb is not None and rgb.shape[0] == side else grey_to_rgb(grey[None], side)[0])[None]

    return rows()


@dataclass(frozen=True)
class RerunWork:
    """Engine factory of ``curate faces``: one photo's original (``(location, stored grey crop)``)
    decoded again and through the face stage; picklable, so Ray workers run it too."""

    size: int
    params: FacesSettings
    max_pixels: int

    def __call__(self):
        return self.one

    def one(self, item: tuple[Any, np.ndarray]) -> PhotoResult:
        from curate.ingest.originals import decode_original

        location, grey = item
        try:
            arr = np.asarray(decode_original(location, max_pixels=self.max_pixels).image)
        except Exception as exc:  # noqa: BLE001 - a file that vanished or broke since ingest
            res = PhotoResult(width=0, height=0, status="error", detail=f"error: {exc}"[:300])
            res.grey = np.asarray(grey)
            res.rgb = grey_to_rgb(res.grey[None], self.params.rgb_size)[0]
            return res
        return process_photo(arr, size=self.size, params=self.params)


def find_faces(ws: Workspace, *, overrides: Any = None, config_file=None, workers: int | None = None,
               quiet: bool = False) -> dict[str, Any]:
    """Re-run the face stage on every photo of ``ws`` from its original file.

    Parameters
    ----------
    ws : Workspace
        A workspace with photo sources (``image_kind == "photo"`` rows).
    overrides : list of str or dict, optional
        ``KEY=VALUE`` strings or a nested dict merged last over configs/ingest.yaml (its ``faces.*``
        settings drive the stage, e.g. ``faces.upsample=2``); an unknown key is refused. Default None.
    config_file : str or Path, optional
        A YAML file merged over those defaults before ``overrides``. Default None.
    workers : int, optional
        Decoding threads; None = the settings' ``workers`` (4 as shipped). Default None.
    quiet : bool, default=False
        No progress bars or messages on stderr.
    """
    from curate.engine import get_engine
    from curate.ingest.originals import original_location

    started = utc_now()
    t0 = time.perf_counter()
    cfg = load_settings("ingest", overrides, config_file)
    ws = Workspace.open(ws.root)
    with ws.lock():
        ws.refresh()
        manifest = ws.manifest()
        photo_rows = np.flatnonzero((ws.image_kinds() == "photo").to_numpy())
        if len(photo_rows) == 0:
            raise CurateError(f"{ws.root}: no photo sources (all images are face crops); nothing to do. "
                              "Re-ingest a folder with --images photos to treat it as photos.")
        size, params = ws.image_size, cfg.faces
        stored = ws.pixels()
        items = [(original_location(ws, row), np.asarray(stored[row])) for row in photo_rows.tolist()]
        engine = get_engine()
        with torch_single_threaded() if engine.is_local else contextlib.nullcontext():
            mapped = engine.map_items(RerunWork(size, params, cfg.max_pixels), items, batch_size=4,
                                      workers=int(workers or cfg.workers or resolve_threads()), threads=1)
            results = list(progress(mapped, total=len(photo_rows), desc="faces", quiet=quiet, unit="img"))
        ids = manifest["image_id"].iloc[photo_rows].tolist()
        grey = np.array(ws.pixels())
        grey[photo_rows] = np.stack([r.grey for r in results])
        side = params.rgb_size
        old_rgb = ws.colour_crops()
        rgb = np.asarray(old_rgb).copy() if old_rgb is not None and old_rgb.shape[1] == side \
            else grey_to_rgb(grey, side)
        rgb[photo_rows] = np.stack([r.rgb for r in results])
        for name, frame in face_stage_tables(ids, results):
            ws.write_parquet(name, replace_rows(ws.read_parquet(name), frame, set(ids)))
        ws.commit(manifest, grey, image_size=size, rgb_rows=rgb, rgb_size=side)
    summary = {"workspace": str(ws.root), **photo_counts(results), "seconds": round(time.perf_counter() - t0, 2)}
    ws.record_run("faces", started=started, options={"overrides": overrides or {}}, counts=photo_counts(results))
    return summary
