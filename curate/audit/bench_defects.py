"""Defects injected by the audit *benchmark* (kept apart from the training generators).

Deliberately different from :mod:`curate.audit.synthetic`: text is rendered with PIL
(its bitmap default font and the TrueType fonts found on the machine, e.g. matplotlib's
DejaVu/STIX), warps use ``scipy.ndimage`` with edge padding, non-face patches are crops of
the photos shipped by scikit-image (``skimage.data``) and scikit-learn
(``load_sample_images``), which the training generators never see.
"""
from __future__ import annotations

import string
from functools import lru_cache
from pathlib import Path

import numpy as np

# skimage.data images without human faces (astronaut, camera show people; lfw_subset is faces)
SKIMAGE_PHOTOS = ("brick", "cat", "chelsea", "checkerboard", "clock", "coffee", "coins", "colorwheel", "grass",
                  "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "logo", "microaneurysms",
                  "moon", "page", "retina", "rocket", "text", "cell")
TEXT_SAMPLES = ("SAMPLE", "Stock", "© photo", "PREVIEW", "watermark", "imgur", "copyright", "DEMO", "fotolia",
                "www.faces.net", "ID 4471", "©2013", "Pinterest", "Tumblr")


@lru_cache(maxsize=1)
def font_files() -> tuple[str, ...]:
    """TrueType fonts available here: matplotlib's bundled fonts plus the system's."""
    found: list[str] = []
    try:
        import matplotlib

        found += sorted(str(p) for p in (Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf").glob("*.ttf")
                        if not p.name.startswith(("cm", "STIXSiz", "STIXNonUni", "LastResort")))
    except ImportError:
        pass
    found += sorted(str(p) for p in Path("/usr/share/fonts").rglob("*.ttf"))[:40]
    return tuple(found)


def _font(rng: np.random.Generator, size: int):
    from PIL import ImageFont

    files = font_files()
    if not files or rng.random() < 0.25:
        return ImageFont.load_default(size=size) if rng.random() < 0.5 else ImageFont.load_default()
    return ImageFont.truetype(str(rng.choice(list(files))), size=size)


def text_watermark(img: np.ndarray, rng: np.random.Generator, opacity: float) -> np.ndarray:
    """PIL-rendered text at ``opacity`` with random size, font, position, tone, maybe rotated."""
    from PIL import Image, ImageDraw

    s = img.shape[0]
    up = 4
    layer = Image.new("L", (s * up, s * up), 0)
    draw = ImageDraw.Draw(layer)
    text = str(rng.choice(TEXT_SAMPLES)) if rng.random() < 0.7 else "".join(
        rng.choice(list(string.ascii_uppercase + string.digits), size=int(rng.integers(3, 8))))
    size = int(rng.integers(7, 20)) * up
    font = _font(rng, size)
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    tw, th = x1 - x0, y1 - y0
    x = int(rng.integers(-tw // 5, max(1, s * up - tw * 4 // 5)))
    y = int(rng.integers(-th // 5, max(1, s * up - th * 4 // 5)))
    draw.text((x - x0, y - y0), text, fill=255, font=font)
    if rng.random() < 0.3:
        layer = layer.rotate(float(rng.uniform(-40, 40)), resample=Image.BILINEAR)
    return _blend(img, layer.resize((s, s), Image.LANCZOS), rng, opacity)


def logo_watermark(img: np.ndarray, rng: np.random.Generator, opacity: float) -> np.ndarray:
    """A PIL-drawn logo (ellipse/rounded box/triangle with initials) at ``opacity``."""
    from PIL import Image, ImageDraw

    s = img.shape[0]
    up = 4
    big = s * up
    layer = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(layer)
    w = int(rng.integers(big // 5, big // 2))
    h = int(w * rng.uniform(0.5, 1.0))
    x = int(rng.integers(0, big - w))
    y = int(rng.integers(0, big - h))
    shape = int(rng.integers(0, 3))
    width = int(rng.integers(1, 4)) * up
    if shape == 0:
        draw.ellipse((x, y, x + w, y + h), outline=255, width=width)
    elif shape == 1:
        draw.rounded_rectangle((x, y, x + w, y + h), radius=w // 6, outline=255, width=width)
    else:
        draw.polygon([(x, y + h), (x + w // 2, y), (x + w, y + h)], outline=255, width=width)
    initials = "".join(rng.choice(list(string.ascii_uppercase), size=int(rng.integers(1, 3))))
    font = _font(rng, max(8, h // 2))
    draw.text((x + w // 2, y + h // 2), initials, fill=255, font=font, anchor="mm")
    return _blend(img, layer.resize((s, s), Image.LANCZOS), rng, opacity)


def _blend(img: np.ndarray, layer, rng: np.random.Generator, opacity: float) -> np.ndarray:
    mask = np.asarray(layer, np.float32) / 255.0 * opacity
    tone = 255.0 if rng.random() < 0.6 else (0.0 if rng.random() < 0.5 else float(rng.uniform(100, 220)))
    out = img.astype(np.float32) * (1 - mask) + tone * mask
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def shifted(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Crop window moved by 15-35% of the side in a random direction (edge padding)."""
    from scipy import ndimage

    s = img.shape[0]
    mag = float(rng.uniform(0.15, 0.35)) * s
    theta = float(rng.uniform(0, 2 * np.pi))
    return ndimage.shift(img.astype(np.float32), (mag * np.sin(theta), mag * np.cos(theta)), order=1,
                         mode="nearest").clip(0, 255).astype(np.uint8)


def scaled(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Crop window scaled by 0.6-0.8x or 1.25-1.6x about the centre (edge padding)."""
    from scipy import ndimage

    s = img.shape[0]
    factor = float(rng.uniform(0.6, 0.8)) if rng.random() < 0.5 else float(rng.uniform(1.25, 1.6))
    c = (s - 1) / 2
    matrix = np.eye(2) / factor
    offset = c - matrix @ np.array([c, c])
    return ndimage.affine_transform(img.astype(np.float32), matrix, offset=offset, order=1,
                                    mode="nearest").clip(0, 255).astype(np.uint8)


def rotated(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotated by 15-40 degrees either way (edge padding)."""
    from scipy import ndimage

    angle = float(rng.uniform(15, 40)) * float(rng.choice([-1, 1]))
    return ndimage.rotate(img.astype(np.float32), angle, reshape=False, order=1,
                          mode="nearest").clip(0, 255).astype(np.uint8)


@lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    import skimage.data
    from sklearn.datasets import load_sample_images

    out = []
    for name in SKIMAGE_PHOTOS:
        try:
            im = np.asarray(getattr(skimage.data, name)())
        except (ImportError, OSError):  # an image needing pooch or a download (ConnectionError) is skipped
            continue
        out.append(im)
    out += list(load_sample_images().images)
    grey = []
    for im in out:
        im = im.astype(np.float32)
        if im.ndim == 3:
            im = im[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
        if im.max() <= 1.0:
            im = im * 255.0
        grey.append(im.clip(0, 255).astype(np.uint8))
    return tuple(grey)


def non_face_patch(size: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop (8-45% of the short side) of a scikit-image / scikit-learn sample photo."""
    from PIL import Image

    photos = _photos()
    im = photos[int(rng.integers(0, len(photos)))]
    h, w = im.shape
    side = int(min(h, w) * rng.uniform(0.08, 0.45))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    patch = Image.fromarray(np.ascontiguousarray(im[y:y + side, x:x + side]))
    return np.asarray(patch.resize((size, size), Image.BILINEAR), np.uint8)
