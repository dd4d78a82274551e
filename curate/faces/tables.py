"""The face stage's outputs as tables (contracts) built from :class:`PhotoResult` records.

- ``faces.parquet`` (contract): ``image_id, face_index, x, y, w, h`` (original pixels),
  ``score`` (MTCNN's face probability 0-1, or the HOG detector's margin), ``landmarks`` (list of
  5 [x, y] points: dlib's two corners per eye, then the nose), ``is_main``; and ``detector``
  (mtcnn | hog: which detector found the box).
- ``face_images.parquet``: one row per photo: ``image_id, status`` (ok | no_face | error),
  ``n_faces, main_face_index, detail, seconds``.
- ``photo_features.parquet``: ``image_id`` then the numeric image-level features.
- ``text_boxes.parquet``: ``image_id, box_index, x, y, w, h`` (original pixels), ``score``: the
  text detector's boxes (at most 64 per photo, largest first), for display.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from curate.faces.stage import PhotoResult

FACES_FILE = "faces.parquet"
FACE_IMAGES_FILE = "face_images.parquet"
PHOTO_FEATURES_FILE = "photo_features.parquet"
TEXT_BOXES_FILE = "text_boxes.parquet"
FACE_COLUMNS = ("image_id", "face_index", "x", "y", "w", "h", "score", "landmarks", "is_main", "detector")
FACE_IMAGE_COLUMNS = ("image_id", "status", "n_faces", "main_face_index", "detail", "seconds")
TEXT_BOX_COLUMNS = ("image_id", "box_index", "x", "y", "w", "h", "score")


def faces_frame(image_ids: Sequence[str], results: Sequence[PhotoResult]) -> pd.DataFrame:
    """Every detected face, one row each (contract columns)."""
    rows = []
    for image_id, res in zip(image_ids, results):
        for k, f in enumerate(res.faces):
            rows.append((image_id, k, f.x, f.y, f.w, f.h, f.score,
                         [[round(float(x), 1), round(float(y), 1)] for x, y in f.landmarks], k == res.main, f.detector))
    df = pd.DataFrame(rows, columns=list(FACE_COLUMNS))
    return coerce_faces(df)


def coerce_faces(df: pd.DataFrame) -> pd.DataFrame:
    """Contract dtypes of faces.parquet."""
    out = df.reindex(columns=list(FACE_COLUMNS)).copy()
    out["image_id"] = out["image_id"].astype("string")
    out["face_index"] = out["face_index"].astype("int32")
    for col in ("x", "y", "w", "h", "score"):
        out[col] = out[col].astype("float64").round(1 if col != "score" else 4)
    out["is_main"] = out["is_main"].astype(bool)
    out["landmarks"] = out["landmarks"].astype(object)
    detector = out["detector"].astype(object)
    out["detector"] = detector.where(detector.notna(), "hog").astype("string")   # tables from before MTCNN: HOG
    return out.reset_index(drop=True)


def face_images_frame(image_ids: Sequence[str], results: Sequence[PhotoResult]) -> pd.DataFrame:
    """One row per photo: status, face count, main face, detail, seconds."""
    return pd.DataFrame({
        "image_id": pd.array(list(image_ids), dtype="string"),
        "status": pd.array([r.status for r in results], dtype="string"),
        "n_faces": np.array([len(r.faces) for r in results], dtype=np.int32),
        "main_face_index": pd.array([r.main for r in results], dtype="Int32"),
        "detail": pd.array([r.detail for r in results], dtype="string"),
        "seconds": np.array([round(r.seconds, 4) for r in results], dtype=np.float64),
    })


def features_frame(image_ids: Sequence[str], results: Sequence[PhotoResult]) -> pd.DataFrame:
    """Image-level features, one row per photo (NaN where a photo failed)."""
    feats = pd.DataFrame([r.features for r in results], dtype="float64")
    feats.insert(0, "image_id", pd.array(list(image_ids), dtype="string"))
    return feats


def text_boxes_frame(image_ids: Sequence[str], results: Sequence[PhotoResult]) -> pd.DataFrame:
    """Every text box the detector kept, one row each (original pixels)."""
    ids, index, vals = [], [], []
    for image_id, res in zip(image_ids, results):
        boxes = np.asarray(res.text_boxes, np.float64).reshape(-1, 5)
        ids += [image_id] * len(boxes)
        index += list(range(len(boxes)))
        vals.append(boxes)
    arr = np.concatenate(vals) if vals else np.zeros((0, 5))
    out = pd.DataFrame({"image_id": pd.array(ids, dtype="string"), "box_index": np.array(index, dtype=np.int32)})
    for k, col in enumerate(TEXT_BOX_COLUMNS[2:]):
        out[col] = arr[:, k].round(1 if col != "score" else 4)
    return out


def face_stage_tables(image_ids: Sequence[str], results: Sequence[PhotoResult]) -> list[tuple[str, pd.DataFrame]]:
    """(file name, rows) of every table the face stage writes, for these photos."""
    return [(FACES_FILE, faces_frame(image_ids, results)), (FACE_IMAGES_FILE, face_images_frame(image_ids, results)),
            (PHOTO_FEATURES_FILE, features_frame(image_ids, results)),
            (TEXT_BOXES_FILE, text_boxes_frame(image_ids, results))]


def replace_rows(old: pd.DataFrame | None, new: pd.DataFrame, drop_ids: pd.Series | set) -> pd.DataFrame:
    """``old`` without the rows of ``drop_ids``, then ``new`` (for re-ingest and re-runs)."""
    if old is None or old.empty:
        return new.reset_index(drop=True)
    keep = ~old["image_id"].isin(set(drop_ids))
    return pd.concat([old[keep], new], ignore_index=True)
