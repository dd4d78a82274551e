"""Photo checks: judged on the original photo, not on a face crop.

They run on the rows of photo sources only (``applies_to = "photo"``), from what the face
stage recorded (``faces.parquet``, ``face_images.parquet``, ``photo_features.parquet``):

- ``no_face``: no usable human face (none found, too small, turned away, or a drawn face);
- ``multiple_faces``: two or more faces (MTCNN's, confident enough);
- ``cartoon``: drawings, clip art, emoji, renders, anime (colour/texture statistics of the original);
- ``watermark``: stock-photo marks, overlaid logos and URLs (boxes of a learned text detector,
  text strokes at up to 1,280 px, bottom banners, and file names naming a stock site).

The learned ones (no_face, cartoon, watermark) read tree-ensemble scorers fitted on reviewed
photos (:mod:`curate.audit.photo_model`); multiple_faces reads MTCNN's face probabilities.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from curate.audit.base import AuditContext, Check
from curate.audit.photo_model import load_scorers
from curate.faces.features import name_features, stock_site


@dataclass
class PhotoData:
    """The face stage's records for the photo rows of an audit run (row-aligned)."""

    rows: np.ndarray             # positions of the photo rows in the run
    status: np.ndarray           # ok | no_face | error per photo row
    detail: list[str]
    features: pd.DataFrame       # photo_features columns (+ stock_name), one row per photo row
    faces: pd.DataFrame          # faces.parquet rows of these photos
    paths: list[str | None]      # source_path per photo row (file names carry stock-site hints)
    image_ids: list[str]         # image_id per photo row

    @classmethod
    def build(cls, image_ids: list[str], rows: np.ndarray, face_images: pd.DataFrame, features: pd.DataFrame,
              faces: pd.DataFrame, paths: list[str | None]) -> "PhotoData":
        ids = pd.Index([image_ids[r] for r in rows])
        fi = face_images.drop_duplicates("image_id", keep="last").set_index("image_id").reindex(ids)
        feats = features.drop_duplicates("image_id", keep="last").set_index("image_id").reindex(ids)
        names = pd.DataFrame([name_features(p) for p in paths], index=ids)
        feats = pd.concat([feats, names], axis=1).reset_index(drop=True)
        status = fi["status"].fillna("error").astype(str).to_numpy()
        detail = fi["detail"].fillna("error: the face stage has no record of this image").astype(str).tolist()
        return cls(rows=np.asarray(rows), status=status, detail=detail, features=feats,
                   faces=faces[faces["image_id"].isin(set(ids))], paths=list(paths), image_ids=list(ids))


def photo(ctx: AuditContext) -> PhotoData:
    if ctx.photo is None:
        raise RuntimeError("photo checks need the face stage's records (run `curate faces`)")
    return ctx.photo


class _PhotoCheck(Check):
    applies_to = "photo"

    def positions(self, ctx: AuditContext, rows: np.ndarray) -> np.ndarray:
        """Positions within the photo records of run rows ``rows``."""
        data = photo(ctx)
        lookup = {int(r): i for i, r in enumerate(data.rows)}
        return np.array([lookup[int(r)] for r in rows], dtype=np.int64)

    def failed(self, data: PhotoData, pos: np.ndarray) -> np.ndarray:
        return data.status[pos] == "error"

    def mark_failed(self, data: PhotoData, pos: np.ndarray, scores: np.ndarray, evidence: list[str]) -> None:
        """Photos whose face stage failed: no score, and the stage's error as the evidence."""
        bad = self.failed(data, pos)
        scores[bad] = np.nan
        for i in np.flatnonzero(bad):
            evidence[i] = data.detail[pos[i]]


class _LearnedPhotoCheck(_PhotoCheck):
    def scorer(self, ctx: AuditContext):
        scorers, _ = ctx.shared("photo_scorers", lambda: load_scorers(ctx.config.photo_model))
        return scorers[self.name]

    @property
    def threshold(self) -> float:
        value = self.params.photo_threshold
        return float(self._model_threshold) if value == "model" else value

    def score(self, ctx: AuditContext, rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
        data, pos = photo(ctx), self.positions(ctx, rows)
        scorer = self.scorer(ctx)
        self._model_threshold = scorer.threshold
        frame = data.features.iloc[pos].reset_index(drop=True)
        scores = scorer.predict(frame)
        reasons = scorer.top_reasons(frame)
        evidence = [self.describe(data, int(p), float(s), r) for p, s, r in zip(pos, scores, reasons)]
        self.mark_failed(data, pos, scores, evidence)
        return scores, evidence

    def flag(self, scores: np.ndarray) -> np.ndarray:
        return np.nan_to_num(np.asarray(scores, float), nan=-np.inf) >= self.threshold

    def describe(self, data: PhotoData, pos: int, score: float, reasons: str) -> str:
        return f"p={score:.2f}; {reasons}" if reasons else f"p={score:.2f}"


class NoFace(_LearnedPhotoCheck):
    name = "no_face"
    description = ("No usable human face in the photo: none found by the face detector, too small, turned "
                   "away, or a drawn face (scored on the detector's findings and the photo's colour/texture).")

    def describe(self, data: PhotoData, pos: int, score: float, reasons: str) -> str:
        f = data.features.iloc[pos]
        if f.get("n_faces", 0) == 0:
            what = "no face found"
        else:
            what = (f"main face {f['main_px_width']:.0f} px wide ({100 * f['main_rel_width']:.0f}% of the short side), "
                    f"detector score {f['main_score']:.2f}, nose offset {f['main_yaw']:.2f} eye-widths")
        return f"p={score:.2f}; {what}" + (f"; {reasons}" if reasons else "")


class Cartoon(_LearnedPhotoCheck):
    name = "cartoon"
    description = ("Drawing, clip art, emoji, 3D render or anime rather than a photo: flat colour areas without "
                   "sensor noise, few distinct colours, saturated palettes, hard edges (on the colour original).")


class Watermark(_LearnedPhotoCheck):
    name = "watermark"
    description = ("Stock-photo watermark, overlaid logo or URL: text boxes of a learned text detector (PP-OCRv4), "
                   "text-like strokes across the photo (at up to 1,280 px), a uniform bottom banner, or a file name "
                   "naming a stock site.")

    def describe(self, data: PhotoData, pos: int, score: float, reasons: str) -> str:
        site = stock_site(data.paths[pos])
        f = data.features.iloc[pos]
        parts = [f"p={score:.2f}"]
        if site:
            parts.append(f"file name names {site}")
        boxes = f.get("text_det_boxes", float("nan"))
        if not np.isnan(boxes):  # NaN: the text detector was off or failed
            parts.append(f"text detector: {boxes:.0f} text box(es) covering {100 * f['text_det_area']:.1f}% "
                         f"({f['text_det_centre']:.0f} in the centre, {f['text_det_edge']:.0f} at the edges), "
                         f"max score {f['text_det_max_score']:.2f}")
        parts.append(f"{f['faint_glyphs']:.0f} faint / {f['strong_glyphs']:.0f} strong glyph-like strokes per 100k px, "
                     f"longest text line {f['faint_glyph_rows']:.0f}")
        if f["bottom_band_uniform"] > 0.8 and f["bottom_band_strokes"] > 0.01:
            parts.append("uniform bottom banner with text")
        return "; ".join(parts)


def second_face_scores(faces: pd.DataFrame, image_ids: list[str], *, main_face_score: float = 0.9,
                       min_relative_width: float = 0.0) -> np.ndarray:
    """Per photo of ``image_ids``: the MTCNN probability of its second surest face among those at
    least ``min_relative_width`` times as wide as its surest face; 0 when it has fewer than two
    MTCNN faces or its surest face is below ``main_face_score``. Boxes of the HOG fallback (used
    when MTCNN found nothing) never count: HOG's second boxes are mostly false (precision 0.36)."""
    out = np.zeros(len(image_ids))
    if faces is None or faces.empty or "detector" not in faces:
        return out
    mt = faces[faces["detector"].astype(str) == "mtcnn"]
    at = {image_id: k for k, image_id in enumerate(image_ids)}
    for image_id, g in mt.groupby(mt["image_id"].astype(str), sort=False):
        k = at.get(image_id)
        if k is None or len(g) < 2:
            continue
        g = g.sort_values("score", ascending=False, kind="stable")
        best = g.iloc[0]
        if best["score"] < main_face_score:
            continue
        others = g.iloc[1:]
        others = others[others["w"] >= min_relative_width * best["w"]]
        if len(others):
            out[k] = float(others["score"].iloc[0])
    return out


class MultipleFaces(_PhotoCheck):
    name = "multiple_faces"
    description = ("Two or more people's faces: the MTCNN probability of the photo's second face (flagged at "
                   "multiple_faces.threshold when its surest face reaches main_face_score); evidence "
                   "lists the boxes.")

    def score(self, ctx: AuditContext, rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
        data, pos = photo(ctx), self.positions(ctx, rows)
        ids = [data.image_ids[int(p)] for p in pos]
        scores = second_face_scores(data.faces, ids, main_face_score=self.params.main_face_score,
                                    min_relative_width=self.params.min_relative_width)
        evidence = [self.describe(data, int(p), float(sc)) for p, sc in zip(pos, scores)]
        self.mark_failed(data, pos, scores, evidence)
        return scores, evidence

    def describe(self, data: PhotoData, pos: int, score: float) -> str:
        image_id = data.image_ids[pos]
        g = data.faces[data.faces["image_id"] == image_id]
        if g.empty:
            return f"second face p={score:.2f}; no face found"
        kind = g["detector"].astype(str).iloc[0] if "detector" in g else "hog"
        if kind != "mtcnn":
            return (f"second face p={score:.2f}; MTCNN found no face (the HOG fallback's {len(g)} box(es) are not "
                    "counted)" if "detector" in g else
                    f"second face p={score:.2f}; faces.parquet is from before MTCNN: run `curate faces`")
        top = g.sort_values("score", ascending=False).head(6)
        boxes = "; ".join(f"{w:.0f} px at ({x:.0f},{y:.0f}) p={sc:.2f}" for x, y, w, sc in
                          top[["x", "y", "w", "score"]].itertuples(index=False))
        return f"second face p={score:.2f}; {len(g)} MTCNN face(s): {boxes}"[:300]


PHOTO_CHECKS: list[type[Check]] = [NoFace, MultipleFaces, Cartoon, Watermark]
