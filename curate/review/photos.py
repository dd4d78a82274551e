"""Photos (rows the face stage processed) as the App and the report show them: the original with its faces.

For a photo row the App shows the original file itself when a browser can display it as the
face stage saw it (JPEG, PNG or WebP in an ordinary mode, no EXIF rotation, at most
:data:`MAX_DIRECT_SIDE` px); otherwise a JPEG copy (decoded like ingest does: EXIF-rotated,
alpha on white, long side at most :data:`COPY_SIDE`) in ``images/display/``, named by the
manifest digest so a changed original gets a new copy. The colour aligned crop goes to
``images/crops/`` (named by a hash of its pixels, so a face-stage re-run gets new files).
Face boxes come from ``faces.parquet`` (original pixels) as relative ``[x, y, w, h]`` boxes, text
boxes (the evidence of the watermark check) from ``text_boxes.parquet``.
Crop rows (face-crop sources such as FER2013) are left to :mod:`curate.review.images`.
"""
from __future__ import annotations

import hashlib
import io
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from curate import atomic
from curate.review.images import IMAGES_DIR, encode_png, safe_id
from curate.workspace import Workspace

DISPLAY_DIR = f"{IMAGES_DIR}/display"
CROPS_DIR = f"{IMAGES_DIR}/crops"
BROWSER_MODES = {"JPEG": {"L", "RGB"}, "PNG": {"1", "L", "LA", "P", "RGB", "RGBA"}, "WEBP": {"RGB", "RGBA"}}
"""Formats (and their PIL modes) that browsers, and so the FiftyOne App, display as decoded at ingest."""
MAX_DIRECT_SIDE = 4096
COPY_SIDE = 2048
MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
MAIN_LABEL, OTHER_LABEL, TEXT_LABEL = "main face", "face", "text"
MAIN_COLOUR, OTHER_COLOUR, TEXT_COLOUR = (0, 220, 0), (255, 48, 48), (255, 196, 0)
"""Box colours in the App and the report: the main face (the one aligned into the crop), the other
faces, and the text detector's boxes (``text_boxes.parquet``)."""
EXIF_ORIENTATION = 0x0112


def hex_colour(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


@dataclass
class Face:
    """One detected face: box in original pixels, detector score, 5 landmarks, main or not."""

    x: float
    y: float
    w: float
    h: float
    score: float
    landmarks: list
    is_main: bool


def photo_rows(ws: Workspace) -> np.ndarray:
    """Manifest rows of photos (empty for crop-only workspaces)."""
    return np.flatnonzero((ws.image_kinds() == "photo").to_numpy())


def _by_image(ws: Workspace, name: str, order: str, record) -> dict[str, list[Face]]:
    """Rows of table ``name`` grouped per image id in ``order`` order, each made a :class:`Face`
    by ``record`` (empty when the table is absent or empty)."""
    table = ws.read_parquet(name)
    if table is None or len(table) == 0:
        return {}
    out: dict[str, list[Face]] = {}
    for rec in table.sort_values(["image_id", order], kind="stable").itertuples(index=False):
        out.setdefault(str(rec.image_id), []).append(record(rec))
    return out


def faces_by_image(ws: Workspace) -> dict[str, list[Face]]:
    """``faces.parquet`` grouped per image id, in face_index order (empty when absent)."""
    def record(rec) -> Face:
        lms = [] if rec.landmarks is None else [[float(p[0]), float(p[1])] for p in rec.landmarks]
        return Face(float(rec.x), float(rec.y), float(rec.w), float(rec.h), float(rec.score), lms, bool(rec.is_main))

    return _by_image(ws, "faces.parquet", "face_index", record)


def text_boxes_by_image(ws: Workspace) -> dict[str, list[Face]]:
    """``text_boxes.parquet`` grouped per image id, as :class:`Face` records (no landmarks, never
    main), largest first; empty when absent (workspaces from before the text detector)."""
    return _by_image(ws, "text_boxes.parquet", "box_index",
                     lambda rec: Face(float(rec.x), float(rec.y), float(rec.w), float(rec.h), float(rec.score), [], False))


def face_status(ws: Workspace) -> dict[str, str]:
    """``face_images.parquet`` status (ok | no_face | error) per image id."""
    table = ws.read_parquet("face_images.parquet")
    if table is None or len(table) == 0:
        return {}
    return dict(zip(table["image_id"].astype(str), table["status"].astype(str)))


def relative_box(face: Face, width: int, height: int) -> list[float]:
    """``[x, y, w, h]`` in 0-1 of an image ``width`` x ``height``, clipped to the image."""
    x0, y0 = min(max(face.x, 0.0), width), min(max(face.y, 0.0), height)
    x1, y1 = min(max(face.x + face.w, 0.0), width), min(max(face.y + face.h, 0.0), height)
    return [x0 / width, y0 / height, (x1 - x0) / width, (y1 - y0) / height]


# ------------------------------------------------------------------ what a browser can show
def direct_display(path: Path) -> tuple[str | None, dict[str, Any]]:
    """(None when the browser can show ``path`` as ingest decoded it, else why not; header facts)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                fmt, mode, (w, h) = img.format, img.mode, img.size
                frames = int(getattr(img, "n_frames", 1) or 1)
                orientation = img.getexif().get(EXIF_ORIENTATION, 1) if fmt in ("JPEG", "PNG", "WEBP") else 1
    except Exception as exc:  # noqa: BLE001 - unreadable now: the caller copies or falls back
        return f"unreadable ({type(exc).__name__})", {}
    facts = {"format": fmt, "mode": mode, "width": w, "height": h,
             "channels": 1 if mode in ("1", "L") else 3, "mime": MIME.get(fmt)}
    if fmt not in BROWSER_MODES:
        return f"format {fmt}", facts
    if mode not in BROWSER_MODES[fmt]:
        return f"mode {mode}", facts
    if orientation not in (None, 1):
        return "EXIF rotation", facts
    if frames > 1:
        return "animated", facts
    if max(w, h) > MAX_DIRECT_SIDE:
        return f"{w}x{h} px", facts
    return None, facts


def write_display_copy(src: Path, dst: Path, *, max_side: int = COPY_SIDE) -> tuple[int, int, int]:
    """Decode ``src`` as ingest does and write a JPEG of long side <= ``max_side``; (w, h, channels)."""
    from PIL import Image

    from curate.ingest.decode import decode_image

    img = decode_image(src).image
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    dst.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(dst, buf.getvalue())
    return img.width, img.height, 1 if img.mode == "L" else 3


@dataclass
class Media:
    """What the App shows for one photo row."""

    filepath: str
    width: int
    height: int
    channels: int
    mime: str
    display: str          # "original" | "copy: <why>" | "crop: <why>"
    crop_filepath: str


def crop_path(ws: Workspace, image_id: str, crop: np.ndarray) -> Path:
    digest = hashlib.sha1(np.ascontiguousarray(crop).tobytes()).hexdigest()[:10]
    return ws.path(CROPS_DIR) / f"{safe_id(image_id)}-{digest}.png"


def _media_one(ws: Workspace, row: int, image_id: str, digest: str, crop: np.ndarray) -> Media:
    cpath = crop_path(ws, image_id, crop)
    if not cpath.exists():
        cpath.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(cpath, encode_png(crop[..., ::-1] if crop.ndim == 3 else crop))  # cv2 wants BGR
    side = int(crop.shape[0])
    fallback = Media(str(cpath), side, side, 3 if crop.ndim == 3 else 1, "image/png", "", str(cpath))
    original = ws.original_path(row)
    if original is None or not original.exists():
        fallback.display = "crop: original file not found"
        return fallback
    why, facts = direct_display(original)
    if why is None:
        return Media(str(original), int(facts["width"]), int(facts["height"]), int(facts["channels"]), facts["mime"],
                     "original", str(cpath))
    copy = ws.path(DISPLAY_DIR) / f"{safe_id(image_id)}-{(digest or 'x')[:12]}.jpg"
    if copy.exists():  # named by the decoded pixels' digest: still the same image
        from PIL import Image

        with Image.open(copy) as img:
            return Media(str(copy), img.width, img.height, 1 if img.mode == "L" else 3, "image/jpeg",
                         f"copy: {why}", str(cpath))
    try:
        w, h, ch = write_display_copy(original, copy)
    except Exception as exc:  # noqa: BLE001 - the crop still shows
        fallback.display = f"crop: original not decodable ({type(exc).__name__})"
        return fallback
    return Media(str(copy), w, h, ch, "image/jpeg", f"copy: {why}", str(cpath))


def photo_media(ws: Workspace, rows: Iterable[int], *, workers: int = 2) -> dict[int, Media]:
    """:class:`Media` per photo row (display copies and crop PNGs written where missing)."""
    rows = [int(r) for r in rows]
    if not rows:
        return {}
    manifest = ws.manifest()
    crops = ws.colour_crops()
    pixels = ws.pixels()
    ids = manifest["image_id"].astype(str).to_numpy()
    digests = manifest["digest"].astype("string").fillna("").to_numpy()

    def one(row: int) -> Media:
        crop = np.asarray(crops[row]) if crops is not None else np.asarray(pixels[row])
        return _media_one(ws, row, ids[row], str(digests[row]), crop)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return dict(zip(rows, pool.map(one, rows)))


# ---------------------------------------------------------------- FiftyOne documents
def detections_doc(faces: list[Face], width: int, height: int, label: str | None = None) -> dict[str, Any]:
    """A ``Detections`` document as FiftyOne stores it (label "main face" / "face", or ``label`` for
    every box; confidence = score)."""
    from bson import ObjectId

    dets = [{"_id": ObjectId(), "_cls": "Detection", "attributes": {}, "tags": [],
             "label": label or (MAIN_LABEL if f.is_main else OTHER_LABEL),
             "bounding_box": relative_box(f, width, height), "confidence": f.score} for f in faces]
    return {"_cls": "Detections", "detections": dets}


def keypoints_doc(faces: list[Face], width: int, height: int) -> dict[str, Any]:
    """The 5 landmarks of each face (relative), as a ``Keypoints`` document."""
    from bson import ObjectId

    kps = [{"_id": ObjectId(), "_cls": "Keypoint", "attributes": {}, "tags": [],
            "label": MAIN_LABEL if f.is_main else OTHER_LABEL,
            "points": [[px / width, py / height] for px, py in f.landmarks]}
           for f in faces if f.landmarks]
    return {"_cls": "Keypoints", "keypoints": kps}


def review_columns(ws: Workspace, image_ids: pd.Series,
                   grey_paths: list[str]) -> tuple[pd.DataFrame, list[dict]] | None:
    """For a workspace with photos: plain columns for the review table (``filepath`` = what the
    App shows, ``crop_filepath``, ``image_kind``, ``face_status``, ``n_faces``, ``display_source``) and
    per row the embedded documents (``metadata``, ``faces``, ``face_landmarks``, ``text_boxes``; None for crop
    rows and for photos shown by their crop). None for a crop-only workspace (nothing changes there)."""
    rows = photo_rows(ws)
    if len(rows) == 0:
        return None
    pos = ws.index_of(image_ids)
    manifest = ws.manifest()
    kinds = ws.image_kinds().to_numpy()[pos]
    media = photo_media(ws, rows)
    faces = faces_by_image(ws)
    texts = text_boxes_by_image(ws)
    status = face_status(ws)
    n = len(pos)
    filepath, crop, shown = list(grey_paths), list(grey_paths), [None] * n
    statuses: list[str | None] = [None] * n
    counts: list[int | None] = [None] * n
    docs: list[dict] = [{"faces": None, "face_landmarks": None, "text_boxes": None} for _ in range(n)]
    for k, (row, image_id) in enumerate(zip(pos, image_ids.astype(str))):
        m = media.get(int(row))
        if m is None:
            continue
        found = faces.get(image_id, [])
        filepath[k], crop[k], shown[k] = m.filepath, m.crop_filepath, m.display
        statuses[k], counts[k] = status.get(image_id), len(found)
        docs[k]["metadata"] = {"_cls": "ImageMetadata", "mime_type": m.mime, "width": m.width, "height": m.height,
                               "num_channels": m.channels}
        if not m.display.startswith("crop"):  # boxes belong to the photo, not to a crop shown instead
            width, height = int(manifest["width"].iat[row]), int(manifest["height"].iat[row])
            docs[k]["faces"] = detections_doc(found, width, height)
            docs[k]["face_landmarks"] = keypoints_doc(found, width, height)
            docs[k]["text_boxes"] = detections_doc(texts.get(image_id, []), width, height, label=TEXT_LABEL)
    cols = pd.DataFrame({"filepath": filepath, "crop_filepath": crop, "image_kind": pd.array(kinds, dtype="string"),
                         "face_status": pd.array(statuses, dtype="string"), "n_faces": pd.array(counts, dtype="Int64"),
                         "display_source": pd.array(shown, dtype="string")})
    return cols, docs
