"""Synthetic defects used to *train* the audit's defect model on the workspace itself.

Self-supervision: the workspace's own images are the "clean" class; each generator here
turns a real crop into one defect class (watermark, misaligned, non_face, cartoon,
occlusion). Everything is drawn with OpenCV (Hershey vector fonts, cv2 shapes, cv2 warps)
from a seeded ``numpy.random.Generator``. The benchmark (:mod:`curate.audit.bench`) uses
different renderers, fonts and sources (PIL TrueType/bitmap fonts, scipy warps, scikit-image
and scikit-learn sample photos), so it does not test the model on its own generators.
"""
from __future__ import annotations

import string
from typing import Callable

import cv2
import numpy as np

DEFECT_CLASSES: tuple[str, ...] = ("clean", "watermark", "misaligned", "non_face", "cartoon", "occlusion")
"""Output classes of the defect model, in logit order."""

_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX,
          cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_COMPLEX_SMALL,
          cv2.FONT_HERSHEY_SCRIPT_SIMPLEX)
_WORDS = ("stock", "photo", "sample", "copy", "getty", "alamy", "dream", "image", "pic", "www", ".com",
          "shutter", "istock", "preview", "123rf", "foto", "depos", "(c)", "pro", "free")


def _random_text(rng: np.random.Generator) -> str:
    if rng.random() < 0.5:
        return str(rng.choice(_WORDS))
    alphabet = string.ascii_letters + string.digits
    return "".join(rng.choice(list(alphabet), size=int(rng.integers(2, 9))))


def _blend(img: np.ndarray, layer: np.ndarray, mask: np.ndarray, opacity: float) -> np.ndarray:
    """Alpha-blend ``layer`` over ``img`` where ``mask`` (0..1) is set, at ``opacity``."""
    a = np.clip(mask * opacity, 0.0, 1.0)
    out = img.astype(np.float32) * (1.0 - a) + layer.astype(np.float32) * a
    return np.clip(out, 0, 255).astype(np.uint8)


def _pseudo_text(mask: np.ndarray, rng: np.random.Generator, x: int, y: int, height: int, chars: int,
                 thick: int) -> None:
    """Glyph-like strokes (2-4 random segments and arcs per character cell) along a baseline."""
    width = max(2, int(height * rng.uniform(0.5, 0.8)))
    for c in range(chars):
        x0 = x + c * int(width * 1.25)
        for _ in range(int(rng.integers(2, 5))):
            if rng.random() < 0.7:
                p = rng.integers(0, [width + 1, height + 1, width + 1, height + 1])
                cv2.line(mask, (x0 + int(p[0]), y - int(p[1])), (x0 + int(p[2]), y - int(p[3])), 1.0, thick,
                         cv2.LINE_AA)
            else:
                r = max(1, width // 2)
                cv2.ellipse(mask, (x0 + r, y - height // 2), (r, max(1, height // 2)), 0,
                            int(rng.integers(0, 360)), int(rng.integers(90, 361)), 1.0, thick, cv2.LINE_AA)


def _logo(mask: np.ndarray, rng: np.random.Generator, big: int, up: int) -> None:
    """A logo-like mark: ellipse, polygon (regular or not), box or arc outline(s) with 0-3 letters."""
    cx, cy = int(rng.integers(big // 6, big * 5 // 6)), int(rng.integers(big // 6, big * 5 // 6))
    rx = int(rng.integers(big // 12, big // 3))
    ry = max(2, int(rx * rng.uniform(0.4, 1.0)))
    thick = max(1, int(rng.integers(1, 4)) * up // 2)
    angle = float(rng.uniform(-30, 30))
    for _ in range(1 if rng.random() < 0.75 else 2):
        shape = int(rng.integers(0, 4))
        if shape == 0:
            cv2.ellipse(mask, (cx, cy), (rx, ry), angle, 0, 360, 1.0, thick, cv2.LINE_AA)
        elif shape == 1:  # polygon: triangle .. octagon, sometimes irregular
            k = int(rng.integers(3, 9))
            t = np.linspace(0, 2 * np.pi, k, endpoint=False) + rng.uniform(0, 2 * np.pi)
            r = np.where(rng.random(k) < 0.3, rng.uniform(0.6, 1.0, k), 1.0)
            pts = np.stack([cx + rx * r * np.cos(t), cy + ry * r * np.sin(t)], axis=1).astype(np.int32)
            cv2.polylines(mask, [pts], True, 1.0, thick, cv2.LINE_AA)
        elif shape == 2:
            box = ((cx, cy), (2 * rx, 2 * ry), angle)
            cv2.polylines(mask, [cv2.boxPoints(box).astype(np.int32)], True, 1.0, thick, cv2.LINE_AA)
        else:  # open arc, like a swoosh
            cv2.ellipse(mask, (cx, cy), (rx, ry), angle, int(rng.integers(0, 180)), int(rng.integers(200, 330)),
                        1.0, thick, cv2.LINE_AA)
        rx, ry = max(2, int(rx * rng.uniform(0.55, 0.8))), max(2, int(ry * rng.uniform(0.55, 0.8)))
    letters = "".join(rng.choice(list(string.ascii_uppercase), size=int(rng.integers(0, 4))))
    if letters:
        font = int(rng.choice(_FONTS))
        scale = max(0.3, ry / 16.0)
        (tw, th), _ = cv2.getTextSize(letters, font, scale, max(1, thick // 2))
        cv2.putText(mask, letters, (cx - tw // 2, cy + th // 2), font, scale, 1.0, max(1, thick // 2), cv2.LINE_AA)


def _overlay_mask(big: int, up: int, rng: np.random.Generator) -> np.ndarray:
    """A watermark mask at ``up`` times the crop size: text, pseudo-text, tiled text, banner or logo."""
    mask = np.zeros((big, big), np.float32)
    kind = rng.random()
    if kind < 0.55:  # Hershey text, possibly several lines or tiled diagonally
        font = int(rng.choice(_FONTS))
        scale = float(rng.uniform(0.25, 0.9)) * up
        thick = max(1, int(rng.integers(1, 3)) * up // 2)
        tiled = rng.random() < 0.25
        lines = int(rng.integers(3, 6)) if tiled else (1 if rng.random() < 0.75 else int(rng.integers(2, 4)))
        for _ in range(lines):
            text = _random_text(rng)
            (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
            x = int(rng.integers(-tw // 5, max(1, big - tw * 4 // 5)))
            y = int(rng.integers(th, big))
            cv2.putText(mask, text, (x, y), font, scale, 1.0, thick, cv2.LINE_AA)
    elif kind < 0.7:  # pseudo-text: unknown glyphs, so the model learns strokes rather than one font
        height = int(rng.uniform(5, 16) * up)
        chars = int(rng.integers(3, 10))
        thick = max(1, int(rng.integers(1, 3)) * up // 2)
        x = int(rng.integers(-height, max(1, big - height * chars // 2)))
        y = int(rng.integers(height, big))
        _pseudo_text(mask, rng, x, y, height, chars, thick)
    elif kind < 0.78:  # banner: a translucent bar carrying text
        h = int(rng.uniform(0.15, 0.3) * big)
        y = int(rng.integers(0, big - h))
        cv2.rectangle(mask, (0, y), (big, y + h), 0.45, -1)
        font = int(rng.choice(_FONTS))
        scale = h / 40.0
        cv2.putText(mask, _random_text(rng), (int(rng.integers(0, big // 3)), y + int(h * 0.75)), font, scale, 1.0,
                    max(1, up // 2), cv2.LINE_AA)
    else:  # logo: a shape outline (or two) with letters inside
        _logo(mask, rng, big, up)
    if rng.random() < 0.3:  # slanted watermark
        m = cv2.getRotationMatrix2D((big / 2, big / 2), float(rng.uniform(-45, 45)), 1.0)
        mask = cv2.warpAffine(mask, m, (big, big))
    return mask


def watermark(img: np.ndarray, rng: np.random.Generator, min_change: float = 12.0) -> np.ndarray:
    """Text, pseudo-text, banner or logo overlay at opacity 0.2-0.9 that visibly changes the crop.

    An overlay whose covered pixels change by less than ``min_change`` grey levels on average
    (white text on a white background, text off the frame) is redrawn, so every training
    example really shows a watermark.
    """
    s = img.shape[0]
    up = 4
    out = img
    for _ in range(8):
        mask = cv2.resize(_overlay_mask(s * up, up, rng), (s, s), interpolation=cv2.INTER_AREA)
        tone = float(rng.choice([255.0, 0.0, rng.uniform(120, 255)]))
        base = img
        if rng.random() < 0.2:  # embossed look: shadowed copy
            shadow = np.roll(mask, 1, axis=(0, 1))
            base = _blend(img, np.full(img.shape, 255.0 - tone, np.float32), shadow, 0.5 * float(rng.uniform(0.2, 0.9)))
        out = _blend(base, np.full(img.shape, tone, np.float32), mask, float(rng.uniform(0.2, 0.9)))
        covered = mask > 0.3
        if covered.sum() >= 6 and np.abs(out.astype(np.float32) - img)[covered].mean() >= min_change:
            break
    return out


def misaligned(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Crop shifted 12-45%, scaled 0.5-0.8 / 1.3-1.9x, rotated 12-50 degrees, or a mix."""
    s = img.shape[0]
    angle, scale, dx, dy = 0.0, 1.0, 0.0, 0.0
    kinds = rng.choice(["shift", "scale", "rotate", "mix"], p=[0.35, 0.25, 0.25, 0.15])
    if kinds in ("shift", "mix"):
        mag = float(rng.uniform(0.12, 0.45)) * s
        theta = float(rng.uniform(0, 2 * np.pi))
        dx, dy = mag * np.cos(theta), mag * np.sin(theta)
    if kinds in ("scale", "mix"):
        scale = float(rng.uniform(0.5, 0.8)) if rng.random() < 0.5 else float(rng.uniform(1.3, 1.9))
    if kinds in ("rotate", "mix"):
        angle = float(rng.uniform(12, 50)) * float(rng.choice([-1, 1]))
    m = cv2.getRotationMatrix2D((s / 2 - 0.5, s / 2 - 0.5), angle, scale)
    m[:, 2] += (dx, dy)
    border = int(rng.choice([cv2.BORDER_REPLICATE, cv2.BORDER_REFLECT_101, cv2.BORDER_CONSTANT]))
    value = float(rng.choice([0.0, float(img.mean()), 255.0]))
    return cv2.warpAffine(img, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=border, borderValue=value)


def _dead_leaves(s: int, rng: np.random.Generator) -> np.ndarray:
    """Overlapping discs and boxes of random grey and texture (a natural-image proxy)."""
    out = np.full((s, s), float(rng.uniform(0, 255)), np.float32)
    for _ in range(int(rng.integers(8, 60))):
        r = int(s * rng.uniform(0.03, 0.4) ** 1.5 * 2) + 1
        c = (int(rng.integers(-r, s + r)), int(rng.integers(-r, s + r)))
        level = float(rng.uniform(0, 255))
        if rng.random() < 0.7:
            cv2.circle(out, c, r, level, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(out, (c[0] - r, c[1] - r), (c[0] + r, c[1] + r), level, -1)
    out += rng.normal(0, float(rng.uniform(0, 12)), (s, s))
    return cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.3, 1.5))).clip(0, 255).astype(np.uint8)


def _spectral_noise(s: int, rng: np.random.Generator) -> np.ndarray:
    """1/f^alpha noise (alpha 1-3): from gravel to clouds."""
    fy = np.fft.fftfreq(s)[:, None]
    fx = np.fft.rfftfreq(s)[None, :]
    f = np.sqrt(fx ** 2 + fy ** 2)
    f[0, 0] = 1.0
    amp = f ** (-float(rng.uniform(1.0, 3.0)) / 2.0)
    phase = rng.uniform(0, 2 * np.pi, amp.shape)
    img = np.fft.irfft2(amp * np.exp(1j * phase), s=(s, s))
    img = (img - img.mean()) / (img.std() + 1e-9)
    return (128 + img * rng.uniform(20, 70) + rng.uniform(-60, 60)).clip(0, 255).astype(np.uint8)


def _lines(s: int, rng: np.random.Generator) -> np.ndarray:
    """Walls, grids, vessels: jittered parallel lines, staggered bricks or random curves."""
    out = np.full((s, s), float(rng.uniform(40, 220)), np.float32)
    ink = float(rng.choice([rng.uniform(0, 60), rng.uniform(180, 255)]))
    thick = int(rng.integers(1, 3))
    kind = int(rng.integers(0, 3))
    if kind == 0:
        step = int(rng.integers(4, 14))
        for y in range(int(rng.integers(0, step)), s, step):
            cv2.line(out, (0, y), (s, y + int(rng.integers(-2, 3))), ink, thick)
            if rng.random() < 0.8:  # staggered joints
                off = (y // step) % 2 * step
                for x in range(off, s, 2 * step):
                    cv2.line(out, (x, y), (x, y + step), ink, thick)
    elif kind == 1:
        for _ in range(int(rng.integers(3, 12))):
            p = rng.integers(0, s, size=2)
            a = float(rng.uniform(0, np.pi))
            d = np.array([np.cos(a), np.sin(a)]) * s
            cv2.line(out, (int(p[0] - d[0]), int(p[1] - d[1])), (int(p[0] + d[0]), int(p[1] + d[1])), ink, thick)
    else:
        for _ in range(int(rng.integers(2, 7))):
            pts = np.cumsum(rng.normal(0, s / 8, (8, 2)), axis=0) + rng.uniform(0, s, 2)
            cv2.polylines(out, [pts.astype(np.int32)], False, ink, thick, cv2.LINE_AA)
    out += rng.normal(0, float(rng.uniform(0, 10)), (s, s))
    return cv2.GaussianBlur(out, (0, 0), 0.6).clip(0, 255).astype(np.uint8)


def _blobs(s: int, rng: np.random.Generator) -> np.ndarray:
    """Dots, cells or coins: many small bright/dark discs, optionally shaded, on a plain or noisy ground."""
    ground = float(rng.uniform(0, 255))
    out = np.full((s, s), ground, np.float32) + rng.normal(0, float(rng.uniform(0, 15)), (s, s))
    n = int(rng.integers(3, 80))
    rmax = max(1, int(s * rng.uniform(0.03, 0.25)))
    for _ in range(n):
        r = int(rng.integers(1, rmax + 1))
        c = (int(rng.integers(0, s)), int(rng.integers(0, s)))
        level = float(np.clip(ground + rng.choice([-1, 1]) * rng.uniform(40, 200), 0, 255))
        cv2.circle(out, c, r, level, -1, cv2.LINE_AA)
        if r > 3 and rng.random() < 0.5:
            cv2.circle(out, c, r, float(rng.uniform(0, 255)), 1, cv2.LINE_AA)
    return cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.3, 1.2))).clip(0, 255).astype(np.uint8)


def _procedural(s: int, rng: np.random.Generator) -> np.ndarray:
    kind = int(rng.integers(0, 9))
    if kind == 0:  # smooth noise texture
        sigma = float(rng.uniform(0.5, 6))
        noise = cv2.GaussianBlur(rng.normal(0, 1, (s, s)).astype(np.float32), (0, 0), sigma)
        noise = (noise - noise.min()) / (np.ptp(noise) + 1e-6)
        return (noise * rng.uniform(60, 255) + rng.uniform(0, 100)).clip(0, 255).astype(np.uint8)
    if kind == 1:  # gradient with stripes
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
        theta = rng.uniform(0, np.pi)
        t = np.cos(theta) * xx + np.sin(theta) * yy
        wave = np.sin(t / rng.uniform(1.5, 8)) * rng.uniform(0, 80)
        return (t / t.max() * rng.uniform(0, 200) + wave + rng.uniform(0, 80)).clip(0, 255).astype(np.uint8)
    if kind == 2:  # random shapes
        out = np.full((s, s), float(rng.uniform(0, 255)), np.float32)
        for _ in range(int(rng.integers(2, 9))):
            c = float(rng.uniform(0, 255))
            p = rng.integers(0, s, size=4)
            if rng.random() < 0.5:
                cv2.rectangle(out, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), c, int(rng.choice([-1, 1, 2])))
            else:
                cv2.circle(out, (int(p[0]), int(p[1])), int(rng.integers(2, s // 2)), c, int(rng.choice([-1, 1, 2])))
        return out.astype(np.uint8)
    if kind == 3:  # checker / grid
        cell = int(rng.integers(3, 12))
        yy, xx = np.mgrid[0:s, 0:s]
        a, b = rng.uniform(0, 255, size=2)
        return np.where(((yy // cell + xx // cell) % 2) == 0, a, b).astype(np.uint8)
    if kind == 4:  # block-scrambled noise with edges
        out = rng.integers(0, 256, (s // 4, s // 4)).astype(np.uint8)
        return cv2.resize(out, (s, s), interpolation=int(rng.choice([cv2.INTER_NEAREST, cv2.INTER_CUBIC])))
    if kind == 5:
        return _dead_leaves(s, rng)
    if kind == 6:
        return _spectral_noise(s, rng)
    if kind == 7:
        return _lines(s, rng)
    return _blobs(s, rng)


def non_face(img: np.ndarray, rng: np.random.Generator, pool: np.ndarray | None = None) -> np.ndarray:
    """A patch with no face: a 2.5-5x zoom into a random corner of a real crop, or a texture."""
    s = img.shape[0]
    if rng.random() < 0.35:
        src = pool[int(rng.integers(0, len(pool)))] if pool is not None and len(pool) else img
        side = int(s / rng.uniform(2.5, 5.0))
        x, y = int(rng.integers(0, s - side + 1)), int(rng.integers(0, s - side + 1))
        patch = cv2.resize(np.ascontiguousarray(src[y:y + side, x:x + side]), (s, s), interpolation=cv2.INTER_CUBIC)
        if rng.random() < 0.5:
            patch = np.ascontiguousarray(patch.T if rng.random() < 0.5 else patch[::-1])
        return patch
    t = int(rng.choice([8, 12, 16]))
    if rng.random() < 0.2 and s % t == 0:  # face shuffled into tiles: face-like statistics, no face layout
        tiles = [img[i:i + t, j:j + t] for i in range(0, s, t) for j in range(0, s, t)]
        order = rng.permutation(len(tiles))
        n = s // t
        rows = [np.hstack([tiles[order[r * n + c]] for c in range(n)]) for r in range(n)]
        return np.ascontiguousarray(np.vstack(rows))
    return _procedural(s, rng)


def cartoon(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cartoonised face (smoothed, posterised, inked edges), pencil sketch, or a drawn emoticon."""
    s = img.shape[0]
    kind = rng.random()
    if kind < 0.5:
        smooth = img
        for _ in range(int(rng.integers(1, 4))):
            smooth = cv2.bilateralFilter(smooth, 5, float(rng.uniform(30, 90)), 5)
        levels = int(rng.integers(3, 7))
        step = 256 // levels
        poster = (smooth // step) * step + step // 2
        if rng.random() < 0.7:
            edges = cv2.adaptiveThreshold(cv2.medianBlur(img, 3), 255, cv2.ADAPTIVE_THRESH_MEAN_C,
                                          cv2.THRESH_BINARY, 7, int(rng.integers(2, 7)))
            poster = np.minimum(poster, edges)
        return poster.astype(np.uint8)
    if kind < 0.8:  # pencil sketch (colour dodge of the inverted blur)
        inv = 255 - img
        blur = cv2.GaussianBlur(inv, (0, 0), float(rng.uniform(1.5, 5)))
        sketch = cv2.divide(img, 255 - blur, scale=256)
        return sketch
    out = np.full((s, s), float(rng.uniform(150, 255)), np.float32)  # emoticon / clip-art face
    ink = float(rng.uniform(0, 80))
    fill = float(rng.uniform(120, 240))
    c = (s // 2 + int(rng.integers(-4, 5)), s // 2 + int(rng.integers(-4, 5)))
    r = int(rng.integers(s // 3, s // 2))
    cv2.circle(out, c, r, fill, -1, cv2.LINE_AA)
    cv2.circle(out, c, r, ink, int(rng.integers(1, 3)), cv2.LINE_AA)
    ey = c[1] - r // 3
    for ex in (c[0] - r // 3, c[0] + r // 3):
        cv2.circle(out, (ex, ey), max(1, r // 7), ink, -1, cv2.LINE_AA)
    cv2.ellipse(out, (c[0], c[1] + r // 4), (r // 2, r // 4), 0, 0 if rng.random() < 0.6 else 180,
                180 if rng.random() < 0.6 else 360, ink, int(rng.integers(1, 3)), cv2.LINE_AA)
    return out.astype(np.uint8)


def occlusion(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A hand-like occluder (palm ellipse with finger bars, skin-toned, shaded) over the face."""
    s = img.shape[0]
    mask = np.zeros((s, s), np.float32)
    cx = int(rng.integers(s // 5, s * 4 // 5))
    cy = int(rng.integers(s // 3, s))
    palm = (int(rng.integers(s // 6, s // 3)), int(rng.integers(s // 6, s // 3)))
    angle = float(rng.uniform(-60, 60))
    cv2.ellipse(mask, (cx, cy), palm, angle, 0, 360, 1.0, -1, cv2.LINE_AA)
    fingers = int(rng.integers(2, 5))
    width = max(2, int(rng.integers(s // 16, s // 9)))
    length = int(rng.integers(s // 5, s // 2))
    direction = np.deg2rad(angle - 90 + float(rng.uniform(-20, 20)))
    for k in range(fingers):
        off = (k - (fingers - 1) / 2) * width * 1.1
        bx = cx + off * np.cos(direction + np.pi / 2)
        by = cy + off * np.sin(direction + np.pi / 2)
        tx, ty = bx + length * np.cos(direction), by + length * np.sin(direction)
        cv2.line(mask, (int(bx), int(by)), (int(tx), int(ty)), 1.0, width, cv2.LINE_AA)
    mask = cv2.GaussianBlur(mask, (0, 0), 0.7)
    tone = float(np.median(img[s // 3: 2 * s // 3, s // 3: 2 * s // 3])) + float(rng.uniform(-40, 40))
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    shade = (xx - cx) * float(rng.uniform(-1.5, 1.5)) + (yy - cy) * float(rng.uniform(-1.5, 1.5))
    layer = np.clip(tone + shade + rng.normal(0, 4, (s, s)), 0, 255)
    return _blend(img, layer, mask, float(rng.uniform(0.85, 1.0)))


GENERATORS: dict[str, Callable[..., np.ndarray]] = {
    "watermark": watermark, "misaligned": misaligned, "non_face": non_face,
    "cartoon": cartoon, "occlusion": occlusion,
}


def resize_to(images: np.ndarray, side: int) -> np.ndarray:
    """uint8 (N,S,S) resized to (N,side,side) (area interpolation) when S != side."""
    images = np.asarray(images)
    if images.shape[1:] == (side, side):
        return images
    out = np.empty((len(images), side, side), np.uint8)
    for k, im in enumerate(images):
        out[k] = cv2.resize(np.ascontiguousarray(im), (side, side), interpolation=cv2.INTER_AREA)
    return out


def make_training_set(images: np.ndarray, *, n_clean: int, n_per_defect: int, seed: int, size: int = 48,
                      exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Real crops (class 0) plus synthetic defects of every class; returns (x uint8, y int64).

    Clean examples avoid the rows marked in ``exclude`` (when enough others remain). Defects are
    made from the clean examples themselves, so every synthetic defect has its untouched twin in
    the clean class: the model learns the overlay or the misalignment, not the face underneath.
    Crops are resized to ``size`` first.
    """
    rng = np.random.default_rng(seed)
    n = len(images)
    pool = np.arange(n) if exclude is None or (~exclude).sum() < n_clean else np.flatnonzero(~exclude)
    clean_idx = np.sort(rng.choice(pool, size=min(n_clean, len(pool)), replace=False))
    xs = [resize_to(np.asarray(images[clean_idx], dtype=np.uint8), size)]
    ys = [np.zeros(len(clean_idx), np.int64)]
    # non-face patches zoom into any crop of the workspace (no twin needed: nothing of a face is left)
    zoom_pool = resize_to(np.asarray(images[np.sort(rng.choice(n, size=min(n, 4000), replace=False))], np.uint8), size)
    for cls, name in enumerate(DEFECT_CLASSES[1:], start=1):
        gen = GENERATORS[name]
        src = np.sort(rng.choice(clean_idx, size=n_per_defect, replace=n_per_defect > len(clean_idx)))
        bases = xs[0][np.searchsorted(clean_idx, src)]  # the clean twins, already resized
        out = np.empty((n_per_defect, size, size), np.uint8)
        for k, base in enumerate(bases):
            base = np.ascontiguousarray(base)
            out[k] = gen(base, rng, zoom_pool) if name == "non_face" else gen(base, rng)
        xs.append(out)
        ys.append(np.full(n_per_defect, cls, np.int64))
    return np.concatenate(xs), np.concatenate(ys)
