"""Image-level features of a photo, computed once on the decoded original (pure functions).

They feed the photo checks (``no_face``, ``multiple_faces``, ``cartoon``, ``watermark``):
colour and texture statistics that tell drawings from photos, text-stroke and banner
statistics for overlaid marks (measured at up to ``TEXT_SIDE`` px, where stock marks are
legible), and the face detector's view of the image.
"""
from __future__ import annotations

import re

import cv2
import numpy as np

from curate.faces.detect import Face

ART_SIDE = 384
TEXT_SIDE = 1280

STOCK_NAME = re.compile(
    r"(istock|shutterstock|depositphotos|dreamstime|123rf|alamy|gettyimages|getty-images|fotolia|bigstock|"
    r"canstock|can-stock|stock-photo|stockphoto|adobestock|adobe-stock|vectorstock|colourbox|pond5|"
    r"^360_f_\d+|^\d+_f_\d+|depositphoto|freepik|vecteezy|masterfile|agefotostock|pixta|photodune)", re.I)


def resize_max(arr: np.ndarray, side: int) -> np.ndarray:
    """``arr`` shrunk (area averaging) so that its longer side is at most ``side``; never enlarged."""
    h, w = arr.shape[:2]
    scale = min(1.0, side / max(h, w))
    if scale >= 1.0:
        return np.ascontiguousarray(arr)
    return cv2.resize(arr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def art_features(rgb: np.ndarray) -> dict[str, float]:
    """Colour and texture statistics separating drawings, clip art and renders from photos."""
    small = resize_max(rgb, ART_SIDE)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    n = grey.size
    q = (small >> 3).astype(np.int32)
    codes = (q[..., 0] << 10) | (q[..., 1] << 5) | q[..., 2]
    counts = np.bincount(codes.ravel(), minlength=1 << 15)
    top = np.sort(counts)[::-1]
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.hypot(gx, gy)
    lap = np.abs(cv2.Laplacian(grey.astype(np.float32), cv2.CV_32F, ksize=1))
    calm = mag < 12
    sat = hsv[..., 1].astype(np.float32) / 255
    ycc = cv2.cvtColor(small, cv2.COLOR_RGB2YCrCb)
    skin = (ycc[..., 1] >= 135) & (ycc[..., 1] <= 175) & (ycc[..., 2] >= 85) & (ycc[..., 2] <= 130)
    border = np.concatenate([small[0], small[-1], small[:, 0], small[:, -1]]).astype(np.int32)
    edges = cv2.Canny(grey, 80, 160) > 0
    return {
        "colours_per_kpx": float((counts > 0).sum() / (n / 1000)),
        "top8_colour_share": float(top[:8].sum() / n),
        "top64_colour_share": float(top[:64].sum() / n),
        "flat_share": float((mag < 1.0).mean()),
        "calm_share": float(calm.mean()),
        "calm_noise": float(np.median(lap[calm])) if calm.any() else 0.0,
        "calm_noise_mean": float(lap[calm].mean()) if calm.any() else 0.0,
        "edge_share": float(edges.mean()),
        "strong_edge_share": float((mag > 200).mean()),
        "sat_mean": float(sat.mean()),
        "sat_high_share": float((sat > 0.6).mean()),
        "sat_std": float(sat.std()),
        "value_std": float(hsv[..., 2].std() / 255),
        "skin_share": float(skin.mean()),
        "border_white_share": float((border.min(1) > 235).mean()),
        "border_uniform": float(np.mean(np.abs(border - np.median(border, 0)).max(1) < 10)),
        "grey_image": float(np.abs(small.astype(np.int16)[..., 0] - small[..., 2]).mean() < 2.0),
    }


FACE_REGION_FEATURES: tuple[str, ...] = (
    "face_colours_per_kpx", "face_top8_colour_share", "face_flat_share", "face_calm_share", "face_calm_noise",
    "face_calm_noise_mean", "face_edge_share", "face_strong_edge_share", "face_sat_mean", "face_sat_high_share",
    "face_sat_std", "face_value_std", "face_skin_share", "face_grey_image")
"""Colour and texture statistics of the main face's own pixels (prefixed ``face_``; 0 without a face).
Unlike the whole photo's, they do not see the background (studio black, cut-outs on white,
checkerboards), so they tell a drawn face from a photographed one the same way on any scrape."""


def face_region_features(rgb: np.ndarray, face: Face | None) -> dict[str, float]:
    """:data:`FACE_REGION_FEATURES` of the main face's box (grown by 10% per side, clipped to the
    photo, at most :data:`ART_SIDE` px); all 0 when there is no face or the box is under 8 px."""
    out = {name: 0.0 for name in FACE_REGION_FEATURES}
    if face is None:
        return out
    h, w = rgb.shape[:2]
    pad = 0.1 * max(face.w, face.h)
    x0, y0 = int(max(0, np.floor(face.x - pad))), int(max(0, np.floor(face.y - pad)))
    x1, y1 = int(min(w, np.ceil(face.x + face.w + pad))), int(min(h, np.ceil(face.y + face.h + pad)))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return out
    stats = art_features(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
    return {name: stats[name[len("face_"):]] for name in FACE_REGION_FEATURES}


def _stroke_mask(grey: np.ndarray, k: int, min_contrast: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    strokes = np.maximum(cv2.morphologyEx(grey, cv2.MORPH_TOPHAT, kernel),
                         cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT, kernel))
    return (strokes >= min_contrast).astype(np.uint8)


def text_features(rgb: np.ndarray) -> dict[str, float]:
    """Text-like strokes (small, thin, aligned components) overall, in the centre band and in
    the bottom strip, and whether the bottom rows form a uniform banner (stock-site strips)."""
    big = resize_max(rgb, TEXT_SIDE)
    grey = cv2.cvtColor(big, cv2.COLOR_RGB2GRAY) if big.ndim == 3 else big
    h, w = grey.shape
    unit = max(h, w) / 640.0
    k = max(3, int(round(5 * unit)) | 1)
    feats: dict[str, float] = {}
    for name, contrast in (("strong", 40), ("faint", 14)):
        mask = _stroke_mask(grey, k, contrast)
        n, _, stats, cents = cv2.connectedComponentsWithStats(mask, connectivity=8)
        st = stats[1:]
        cw, ch, area = st[:, 2], st[:, 3], st[:, 4]
        fill = area / np.maximum(cw * ch, 1)
        glyph = (ch >= 4 * unit) & (ch <= 60 * unit) & (cw <= 80 * unit) & (fill > 0.15) & (fill < 0.9) & (cw >= 1.5 * unit)
        gy = cents[1:, 1][glyph] / h if n > 1 else np.zeros(0)
        feats[f"{name}_glyphs"] = float(glyph.sum() / (w * h / 1e5))
        feats[f"{name}_glyphs_centre"] = float(((gy > 0.3) & (gy < 0.7)).sum() / (w * h / 1e5))
        feats[f"{name}_glyphs_bottom"] = float((gy > 0.85).sum() / (w * h / 1e5))
        feats[f"{name}_glyph_rows"] = _aligned_rows(cents[1:][glyph], st[glyph], h) if n > 1 else 0.0
        gx = cents[1:, 0][glyph] / w if n > 1 else np.zeros(0)
        corner = [((gx < 0.3) == left) & ((gy < 0.2) if top else (gy > 0.8))
                  for left in (True, False) for top in (True, False)]
        feats[f"{name}_glyphs_corner"] = float(max((c.sum() for c in corner), default=0) / (w * h / 1e5))
    feats["tile_peak"] = _tile_peak(grey)
    rows = grey.astype(np.float32)
    band = max(4, h // 14)
    bottom, above = rows[-band:], rows[-3 * band:-band]
    feats["bottom_band_uniform"] = float((np.abs(bottom - np.median(bottom)) < 12).mean())
    feats["bottom_band_contrast"] = float(abs(np.median(bottom) - np.median(above)) / 255)
    feats["bottom_band_strokes"] = float(_stroke_mask(grey[-band:], k, 40).mean())
    return feats


def _tile_peak(grey: np.ndarray, side: int = 384, min_lag: int = 24) -> float:
    """Strongest off-centre peak of the autocorrelation of fine detail: tiled watermarks
    (a mark repeated on a grid) make one; natural photos decay smoothly."""
    g = resize_max(grey, side).astype(np.float32)
    detail = g - cv2.GaussianBlur(g, (0, 0), 2.0)
    detail -= detail.mean()
    spec = np.fft.rfft2(detail)
    ac = np.fft.irfft2(spec * np.conj(spec), s=detail.shape)
    zero = float(ac[0, 0]) or 1.0
    ac = np.fft.fftshift(ac) / zero
    cy, cx = ac.shape[0] // 2, ac.shape[1] // 2
    yy, xx = np.ogrid[:ac.shape[0], :ac.shape[1]]
    ac[(np.abs(yy - cy) < min_lag) & (np.abs(xx - cx) < min_lag)] = 0
    ac[:, :max(0, cx - ac.shape[1] // 3)] = 0
    ac[:, cx + ac.shape[1] // 3:] = 0
    return float(ac.max())


def _aligned_rows(cents: np.ndarray, stats: np.ndarray, h: int) -> float:
    """Largest number of glyph-like components sharing one text line (similar y and height)."""
    if len(cents) < 3:
        return float(len(cents))
    order = np.argsort(cents[:, 1])
    ys, hs = cents[order, 1], stats[order, 3]
    best, start = 1, 0
    for end in range(len(ys)):
        while ys[end] - ys[start] > 0.5 * max(hs[end], 1):
            start += 1
        best = max(best, end - start + 1)
    return float(best)


def face_features(faces: list[Face], main: int | None, width: int, height: int) -> dict[str, float]:
    """The face detector's view: how many faces, how large, how frontal the main one is."""
    short = float(min(width, height)) or 1.0
    feats = {"n_faces": float(len(faces)), "main_score": -2.0, "main_rel_width": 0.0, "main_px_width": 0.0,
             "main_yaw": 1.0, "main_roll": 0.0, "second_rel_size": 0.0, "n_faces_half_main": 0.0,
             "second_score": -2.0, "main_by_mtcnn": 0.0}
    if main is None:
        return feats
    f = faces[main]
    left, right = f.eyes
    eye_mid = (left + right) / 2
    eye_dist = float(np.hypot(*(right - left))) or 1.0
    nose = f.nose
    feats.update(main_score=f.score, main_by_mtcnn=float(f.detector == "mtcnn"), main_rel_width=f.w / short, main_px_width=f.w,
                 main_yaw=float(abs(nose[0] - eye_mid[0]) / eye_dist),
                 main_roll=float(abs(np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0])))))
    others = [g for i, g in enumerate(faces) if i != main]
    if others:
        second = max(others, key=lambda g: g.w)
        feats["second_rel_size"] = second.w / f.w
        feats["second_score"] = second.score
        feats["n_faces_half_main"] = float(sum(g.w >= 0.5 * f.w and g.score > 0 for g in others))
    return feats


def name_features(path: str | None) -> dict[str, float]:
    """1.0 when the file name names a stock-photo site (their previews carry watermarks)."""
    name = (path or "").rsplit("/", 1)[-1]
    return {"stock_name": float(bool(STOCK_NAME.search(name)))}


def stock_site(path: str | None) -> str | None:
    """The stock site named in the file name, if any."""
    match = STOCK_NAME.search((path or "").rsplit("/", 1)[-1])
    return match.group(1).lower() if match else None
