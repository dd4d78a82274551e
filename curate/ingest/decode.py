"""Robust image decoding: any mode/size/format to a grey or RGB array, with clear reasons."""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

Image.MAX_IMAGE_PIXELS = None  # our own limit (max_pixels) gives a clearer message
DEFAULT_MAX_PIXELS = 80_000_000


class DecodeError(ValueError):
    """An image could not be used; ``code`` is a short category, the message says why."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code

    def __reduce__(self):  # picklable with its code (results of remote workers)
        return (DecodeError, (self.code, str(self)))


@dataclass
class DecodedImage:
    """A decoded image: PIL image (L or RGB) plus the facts the manifest records."""

    image: Image.Image
    width: int
    height: int
    channels: int

    def array(self) -> np.ndarray:
        return np.asarray(self.image)


def _to_standard_mode(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to L (grey) or RGB; alpha is composited on white."""
    mode = img.mode
    if mode in ("L", "RGB"):
        return img
    if mode in ("1",):
        return img.convert("L")
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16") or (mode == "I" and arr.max(initial=0) > 255):
            arr = arr / 257.0
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("LA", "La", "RGBA", "RGBa", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        flat = Image.alpha_composite(background, rgba).convert("RGB")
        return flat.convert("L") if mode in ("LA", "La") else flat
    return img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, ...


def is_grey(img: Image.Image) -> bool:
    """True for L images and RGB images whose three channels are equal."""
    if img.mode == "L":
        return True
    arr = np.asarray(img)
    return bool((arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all())


_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"), (b"BM", "BMP"),
          (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))


def sniff_format(path: Path) -> str | None:
    """Image format named by the file's magic bytes, or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return next((name for magic, name in _MAGIC if head.startswith(magic)), None)


def decode_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS, draft_side: int | None = None) -> DecodedImage:
    """Decode the first frame of an image file, EXIF-rotated, as L or RGB.

    ``draft_side``: a JPEG is decoded at a reduced scale (1/2 to 1/8) that keeps both sides
    at least this long, which is several times faster for large photos; width/height then
    describe the reduced image.

    Raises :class:`DecodeError` with a code among ``empty_file``, ``not_an_image``,
    ``decompression_bomb``, ``truncated``, ``corrupt``, ``unreadable``.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DecodeError("unreadable", f"cannot read file: {exc.strerror or exc}") from None
    if size == 0:
        raise DecodeError("empty_file", "zero-byte file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise DecodeError("decompression_bomb",
                                      f"decompression bomb: {w}x{h} = {w * h:,} pixels exceeds the limit of "
                                      f"{max_pixels:,} (ingest.max_pixels)")
                if w == 0 or h == 0:
                    raise DecodeError("corrupt", f"image has zero size {w}x{h}")
                img.seek(0)
                if draft_side and img.format == "JPEG":
                    img.draft(img.mode if img.mode in ("L", "RGB") else "RGB", (int(draft_side), int(draft_side)))
                img.load()
                img = ImageOps.exif_transpose(img)
                img = _to_standard_mode(img)
                img.load()
    except DecodeError:
        raise
    except UnidentifiedImageError:
        kind = sniff_format(path)
        if kind:
            raise DecodeError("corrupt", f"corrupt {kind} file: it cannot be decoded") from None
        raise DecodeError("not_an_image", "not an image file (no known image format)") from None
    except PermissionError as exc:
        raise DecodeError("unreadable", f"cannot read file: {exc.strerror}") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        text = str(exc)
        code = "truncated" if "truncated" in text.lower() or isinstance(exc, EOFError) else "corrupt"
        raise DecodeError(code, f"{'truncated' if code == 'truncated' else 'corrupt'} image: {text}") from None
    if img.mode == "RGB" and is_grey(img):
        img = img.convert("L")
    return DecodedImage(image=img, width=img.width, height=img.height, channels=1 if img.mode == "L" else 3)


def to_store(img: Image.Image, size: int) -> np.ndarray:
    """Grey ``size`` x ``size`` uint8 array for the pixel store (whole image, resized)."""
    grey = img if img.mode == "L" else img.convert("L")
    if grey.size != (size, size):
        grey = grey.resize((size, size), Image.Resampling.LANCZOS if grey.width > size else Image.Resampling.BICUBIC)
    return np.asarray(grey, dtype=np.uint8)


def pixel_digest(arr: np.ndarray) -> str:
    """sha256 of a decoded pixel array and its shape (re-encoded identical pixels share it)."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    h = hashlib.sha256(repr(arr.shape).encode())
    h.update(arr.reshape(-1))   # the same bytes as arr.tobytes(), without copying a large photo
    return h.hexdigest()
