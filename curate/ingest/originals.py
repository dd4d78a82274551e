"""The original image behind a workspace row, decoded on demand.

Lives in the ingest package because it reads the sources the way ingest does (the image file
through :mod:`curate.ingest.decode`, a CSV row through :mod:`curate.ingest.fer2013`); the
workspace itself only knows where the original is (:meth:`curate.workspace.Workspace.original_path`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from curate.ingest.decode import DEFAULT_MAX_PIXELS, DecodedImage, decode_image
from curate.ingest.fer2013 import read_pixel_row
from curate.ingest.remote import RemoteFile, is_url, join, local_copy, parent, storage_options
from curate.workspace import Workspace


def original_location(ws: Workspace, row: int) -> Path | RemoteFile | None:
    """Where the original file of manifest row ``row`` is: a local path, an object of a URL source
    (:class:`~curate.ingest.remote.RemoteFile`), or None for CSV pixels."""
    rec = ws.manifest().iloc[int(row)]
    if pd.isna(rec["source_path"]):
        return None
    source = str(rec["source"])
    if not is_url(source):
        return ws.original_path(row)
    base = source if rec["source_format"] == "folder" else parent(source)
    rel = str(rec["source_path"])
    url = rel if is_url(rel) else join(base, rel)
    return RemoteFile(url, storage_options(url))


def decode_original(location: Path | RemoteFile, *, draft_side: int | None = None,
                    max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """:func:`~curate.ingest.decode.decode_image` of a local file or a remote object (fetched first)."""
    with local_copy(location) as path:
        return decode_image(path, max_pixels=max_pixels, draft_side=draft_side)


def load_original(ws: Workspace, row: int, draft_side: int | None = None) -> Image.Image:
    """The original image of manifest row ``row`` of ``ws`` as a PIL image (L or RGB).

    Files are decoded on demand (JPEGs at a reduced scale keeping both sides at least
    ``draft_side`` when given); images from CSV pixels come from the pixel store (they
    are 48x48 already) or, for a workspace of another size, from the CSV row.
    """
    path = original_location(ws, row)
    if path is None:
        rec = ws.manifest().iloc[int(row)]
        side = int(rec["width"])
        if side == ws.image_size:
            return Image.fromarray(np.asarray(ws.pixels()[int(row)]), mode="L")
        return Image.fromarray(read_pixel_row(Path(rec["source"]), int(rec["source_row"]), side), mode="L")
    return decode_original(path, draft_side=draft_side).image
