"""Near-copy transforms for the duplicate benchmark (grey uint8 images in, same size out).

Each transform takes one (H, W) uint8 image and a numpy Generator and returns a
transformed (H, W) uint8 image, drawing its strength at random within the documented
range. They imitate how copies of one photo drift apart in scraped datasets.
"""
from __future__ import annotations

import io
from typing import Callable

import numpy as np

Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def jpeg(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Re-encode as JPEG at quality 30-90."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img, "L").save(buf, format="JPEG", quality=int(rng.integers(30, 91)))
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("L"))


def rescale(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Downscale to 50-85 % (bilinear or area), then upscale back (bicubic or bilinear)."""
    import cv2

    h, w = img.shape
    f = rng.uniform(0.5, 0.85)
    small = cv2.resize(img, (max(8, round(w * f)), max(8, round(h * f))),
                       interpolation=[cv2.INTER_AREA, cv2.INTER_LINEAR][int(rng.integers(2))])
    return cv2.resize(small, (w, h), interpolation=[cv2.INTER_CUBIC, cv2.INTER_LINEAR][int(rng.integers(2))])


def crop_shift(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Crop 3-8 % off (at a random offset) and resize back, or shift by 3-8 % with edge padding."""
    import cv2

    h, w = img.shape
    frac = rng.uniform(0.03, 0.08)
    if rng.random() < 0.5:
        ch, cw = round(h * (1 - frac)), round(w * (1 - frac))
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        return cv2.resize(img[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_LINEAR)
    angle = rng.uniform(0, 2 * np.pi)
    dx, dy = frac * w * np.cos(angle), frac * h * np.sin(angle)
    mat = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def brightness_contrast(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scale brightness and contrast by factors in 0.75-1.25 each."""
    x = img.astype(np.float32)
    b, c = rng.uniform(0.75, 1.25), rng.uniform(0.75, 1.25)
    mean = x.mean()
    x = (x - mean) * c + mean * b
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def gamma(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gamma curve with gamma in 0.6-1.6."""
    g = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
    lut = np.clip(np.rint(255.0 * (np.arange(256) / 255.0) ** g), 0, 255).astype(np.uint8)
    return lut[img]


def rotate(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotate by 3-10 degrees either way about the centre (edge padding)."""
    import cv2

    h, w = img.shape
    angle = rng.uniform(3, 10) * (1 if rng.random() < 0.5 else -1)
    mat = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), angle, 1.0)
    return cv2.warpAffine(img, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def hflip(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Horizontal mirror."""
    return np.ascontiguousarray(img[:, ::-1])


_WORDS = ("stock", "photo", "(c) 2013", "sample", "www.pix", "PREVIEW", "getty", "faces")


def text_overlay(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blend a short white or black word (alpha 0.35-0.65) at a random place."""
    from PIL import Image, ImageDraw, ImageFont

    h, w = img.shape
    base = Image.fromarray(img, "L")
    layer = Image.new("L", (w, h), 0)
    mask = Image.new("L", (w, h), 0)
    word = _WORDS[int(rng.integers(len(_WORDS)))]
    font = ImageFont.load_default(size=max(8, h // 5))
    x0, y0 = int(rng.integers(0, max(1, w // 3))), int(rng.integers(0, max(1, h - h // 5)))
    shade = 255 if rng.random() < 0.7 else 0
    ImageDraw.Draw(layer).text((x0, y0), word, fill=shade, font=font)
    ImageDraw.Draw(mask).text((x0, y0), word, fill=int(255 * rng.uniform(0.35, 0.65)), font=font)
    return np.asarray(Image.composite(layer, base, mask))


TRANSFORMS: dict[str, Transform] = {
    "jpeg": jpeg,
    "rescale": rescale,
    "crop_shift": crop_shift,
    "brightness_contrast": brightness_contrast,
    "gamma": gamma,
    "rotate": rotate,
    "hflip": hflip,
    "text_overlay": text_overlay,
}
"""Benchmark transforms by name, in report order."""
