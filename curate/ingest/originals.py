"""The original image behind a workspace row, decoded on demand.

Lives in the ingest package because it reads the sources the way ingest does (the image file
through :mod:`curate.ingest.decode`, a CSV row through :mod:`curate.ingest.fer2013`); the
workspace itself only knows where the original is (:meth:`curate.workspace.Workspace.original_path`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from curate.ingest.decode import decode_image
from curate.ingest.fer2013 import read_pixel_row
from curate.workspace import Workspace


def load_original(ws: Workspace, row: int, draft_side: int | None = None) -> Image.Image:
    """The original image of manifest row ``row`` of ``ws`` as a PIL image (L or RGB).

    Files are decoded on demand (JPEGs at a reduced scale keeping both sides at least
    ``draft_side`` when given); images from CSV pixels come from the pixel store (they
    are 48x48 already) or, for a workspace of another size, from the CSV row.
    """
    path = ws.original_path(row)
    if path is None:
        rec = ws.manifest().iloc[int(row)]
        side = int(rec["width"])
        if side == ws.image_size:
            return Image.fromarray(np.asarray(ws.pixels()[int(row)]), mode="L")
        return Image.fromarray(read_pixel_row(Path(rec["source"]), int(rec["source_row"]), side), mode="L")
    return decode_image(path, draft_side=draft_side).image
