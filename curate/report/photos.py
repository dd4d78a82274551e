"""Report thumbnails for workspaces with photos: the original, downscaled, with its face boxes drawn.

A photo row's card shows the original photo (long side ``photo_size`` px, EXIF-rotated and
flattened like ingest decodes it; JPEGs are decoded at a reduced scale, so large files stay
cheap) with every detected face boxed (the main face, the one aligned into the crop, in
:data:`~curate.review.photos.MAIN_COLOUR`; the others in ``OTHER_COLOUR``; the text detector's
boxes in ``TEXT_COLOUR``) and, beside it, the
aligned colour crop the checks judged. Crop rows (face-crop sources) keep the crop thumbnail.
Thumbnails are built in a small thread pool and embedded as JPEG data URIs.
"""
from __future__ import annotations

import base64
import io
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

import numpy as np

from curate.report.render import Thumbnails, esc
from curate.review.photos import (MAIN_COLOUR, OTHER_COLOUR, TEXT_COLOUR, Face, face_status, faces_by_image, photo_rows,
                                  text_boxes_by_image)
from curate.workspace import Workspace

CROP_SIDE = 72


def jpeg_uri(img, quality: int = 85) -> str:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def load_downscaled(path, long_side: int):
    """The image at ``path`` as RGB with its long side at most ``long_side`` (EXIF-rotated, alpha on white)."""
    from PIL import Image, ImageOps

    from curate.ingest.decode import _to_standard_mode

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(path) as img:
            w, h = img.size
            if img.format == "JPEG":  # DCT-domain downscale: a 45 MP JPEG decodes in tens of ms
                img.draft("RGB", (max(1, w * long_side // max(w, h)), max(1, h * long_side // max(w, h))))
            img.seek(0)
            img.load()
            img = _to_standard_mode(ImageOps.exif_transpose(img)).convert("RGB")
    img.thumbnail((long_side, long_side), Image.LANCZOS)
    return img


def draw_faces(img, faces: list[Face], width: int, height: int, texts: list[Face] = ()):
    """Draw the text boxes and then the face boxes (original pixels of a ``width`` x ``height``
    image) on the thumbnail ``img``."""
    from PIL import ImageDraw

    sx, sy = img.width / width, img.height / height
    line = max(2, round(max(img.size) / 128))
    draw = ImageDraw.Draw(img)
    boxes = [(t, TEXT_COLOUR) for t in texts]
    boxes += [(f, MAIN_COLOUR if f.is_main else OTHER_COLOUR) for f in sorted(faces, key=lambda f: f.is_main)]
    for box, colour in boxes:  # text first, the main face last, on top
        x0 = min(max(box.x * sx, 0), img.width - 1)
        y0 = min(max(box.y * sy, 0), img.height - 1)
        x1 = min(max((box.x + box.w) * sx, 0), img.width - 1)
        y1 = min(max((box.y + box.h) * sy, 0), img.height - 1)
        if x1 - x0 >= 1 and y1 - y0 >= 1:
            draw.rectangle([x0, y0, x1, y1], outline=colour, width=line)
    return img


class PhotoThumbnails(Thumbnails):
    """Card media per manifest row: photo rows get the boxed original and the aligned crop,
    crop rows the crop thumbnail of :class:`Thumbnails`. ``html(row)`` is the card's media markup."""

    grid_class = "photos"

    def __init__(self, ws: Workspace, *, size: int, photo_size: int, workers: int = 2):
        super().__init__(ws.pixels(), size=size)
        self.ws, self.photo_size, self.workers = ws, photo_size, workers
        self.photo = set(photo_rows(ws).tolist())
        self.faces = faces_by_image(ws)
        self.texts = text_boxes_by_image(ws)
        self.status = face_status(ws)
        self.crops = ws.colour_crops()
        manifest = ws.manifest()
        self.ids = manifest["image_id"].astype(str).to_numpy()
        self.size_of = (manifest["width"].to_numpy(), manifest["height"].to_numpy())
        self._html: dict[int, str] = {}

    def _crop_uri(self, row: int) -> str:
        from PIL import Image

        if self.crops is None:
            img = Image.fromarray(np.asarray(self.pixels[row]), mode="L").convert("RGB")
        else:
            img = Image.fromarray(np.asarray(self.crops[row]), mode="RGB")
        return jpeg_uri(img.resize((CROP_SIDE, CROP_SIDE), Image.BICUBIC), quality=90)

    def _photo_html(self, row: int) -> str:
        image_id = self.ids[row]
        faces = self.faces.get(image_id, [])
        crop = f'<img class="crop" src="{self._crop_uri(row)}" alt="aligned crop" title="aligned crop">'
        status = self.status.get(image_id)
        path = self.ws.original_path(row)
        try:
            if path is None:
                raise FileNotFoundError("no original file")
            img = load_downscaled(path, self.photo_size)
        except Exception as exc:  # noqa: BLE001 - a moved or broken original: the crop alone
            return (f'<div class="media">{crop}</div><span class="tag drop">original unavailable: '
                    f"{esc(type(exc).__name__)}</span>")
        width, height = int(self.size_of[0][row]), int(self.size_of[1][row])
        texts = self.texts.get(image_id, [])
        img = draw_faces(img, faces, width, height, texts)
        n = len(faces)
        title = (f"{width}x{height} px, {n} face{'s' if n != 1 else ''}" + (f", {status}" if status else "")
                 + (f", {len(texts)} text box{'es' if len(texts) != 1 else ''}" if texts else ""))
        photo = (f'<img class="orig" src="{jpeg_uri(img)}" alt="photo with {n} face box{"es" if n != 1 else ""}" '
                 f'title="{esc(title)}" data-faces="{n}" data-text-boxes="{len(texts)}">')
        note = "" if faces else '<span class="tag drop">no face found</span>'
        return f'<div class="media">{photo}{crop}</div>{note}'

    def prefetch(self, rows: Iterable[int]) -> None:
        """Build the photo cards of ``rows`` in parallel (decoding originals dominates the report's time)."""
        todo = sorted({int(r) for r in rows if int(r) in self.photo and int(r) not in self._html})
        if not todo:
            return
        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            for row, markup in zip(todo, pool.map(self._photo_html, todo)):
                self._html[row] = markup
                self._cache[row] = markup

    def is_photo(self, row: int) -> bool:
        return int(row) in self.photo

    def html(self, row: int) -> str:
        row = int(row)
        if row not in self.photo:
            return f'<img src="{self(row)}" alt="" loading="eager">'
        if row not in self._html:
            self.prefetch([row])
        return self._html[row]


def report_thumbnails(ws: Workspace, data: dict, *, size: int, photo_size: int) -> Thumbnails:
    """:class:`Thumbnails` for a crop-only workspace; for one with photos, :class:`PhotoThumbnails`
    with the cards of every row the report will show (``data`` from :func:`collect`) built up front."""
    if len(photo_rows(ws)) == 0:
        return Thumbnails(ws.pixels(), size=size)
    thumb = PhotoThumbnails(ws, size=size, photo_size=photo_size)
    rows = [it["row"] for c in data["checks"] for it in c["items"]]
    rows += [m["row"] for cl in data["duplicates"]["clusters"] for m in cl["members"]]
    thumb.prefetch(rows)
    return thumb


def photo_legend(thumb) -> str:
    """One line explaining the box colours (empty for a crop-only report)."""
    if not isinstance(thumb, PhotoThumbnails):
        return ""
    return ('<p class="note">Photos: <span class="box-main">green box</span> = the main face (aligned into the crop '
            'shown beside the photo, which the checks judged); <span class="box-other">red boxes</span> = other '
            "detected faces.</p>")
