"""Photo checks: judged on the original photo, not on a face crop.

They run on the rows of photo sources only (``applies_to = "photo"``), from what the face
stage recorded (``faces.parquet``, ``face_images.parquet``, ``photo_features.parquet``), with
the definitions of the by-eye reviews (README "Photo checks: definitions"):

- ``no_face``: no *usable face*: a photographed (not drawn or rendered) human face at least
  40 px wide in the original, both eyes visible, eyes and mouth not hidden;
- ``multiple_faces``: a second usable face at least half as wide as the main face (tiny
  background faces are not that);
- ``cartoon``: drawings, clip art, emoji, renders, anime;
- ``watermark``: stock-photo marks, overlaid logos and URLs.

The learned ones (no_face, cartoon, watermark) read calibrated tree-ensemble scorers fitted on
reviewed photos (:mod:`curate.audit.photo_model`); their score is P(issue | photo), adjusted to
the workspace when asked (``photo_prior: workspace``) and recalibrated by the reviewer's verdicts
of this workspace (``check_feedback.parquet``, :mod:`curate.audit.label_shift`). multiple_faces
reads MTCNN's faces. For every photo check a reviewer's verdict on a photo is final for it.
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
    feedback: pd.DataFrame | None = None   # reviewers' latest verdicts: image_id, check, verdict

    @classmethod
    def build(cls, image_ids: list[str], rows: np.ndarray, face_images: pd.DataFrame, features: pd.DataFrame,
              faces: pd.DataFrame, paths: list[str | None], feedback: pd.DataFrame | None = None) -> "PhotoData":
        ids = pd.Index([image_ids[r] for r in rows])
        fi = face_images.drop_duplicates("image_id", keep="last").set_index("image_id").reindex(ids)
        feats = features.drop_duplicates("image_id", keep="last").set_index("image_id").reindex(ids)
        names = pd.DataFrame([name_features(p) for p in paths], index=ids)
        feats = pd.concat([feats, names], axis=1).reset_index(drop=True)
        status = fi["status"].fillna("error").astype(str).to_numpy()
        detail = fi["detail"].fillna("error: the face stage has no record of this image").astype(str).tolist()
        return cls(rows=np.asarray(rows), status=status, detail=detail, features=feats,
                   faces=faces[faces["image_id"].isin(set(ids))], paths=list(paths), image_ids=list(ids),
                   feedback=feedback)

    def verdicts(self, check: str, image_ids: list[str]) -> np.ndarray:
        """Per image of ``image_ids``: 1.0 / 0.0 where a reviewer said the ``check`` issue is / is not
        there, NaN where nobody did."""
        out = np.full(len(image_ids), np.nan)
        if self.feedback is None or len(self.feedback) == 0:
            return out
        f = self.feedback[self.feedback["check"].astype(str) == check]
        said = dict(zip(f["image_id"].astype(str), f["verdict"].astype(bool)))
        for k, image_id in enumerate(image_ids):
            if image_id in said:
                out[k] = float(said[image_id])
        return out


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


    def finalize(self, ctx: AuditContext, rows: np.ndarray, scores: np.ndarray, evidence: list[str]) -> np.ndarray:
        """After every photo row is scored: a reviewer's verdict on a photo is final for it
        (score 1 or 0, the evidence says so)."""
        data = photo(ctx)
        ids = [data.image_ids[int(p)] for p in self.positions(ctx, rows)]
        said = data.verdicts(self.name, ids)
        out = np.asarray(scores, np.float64).copy()
        for k in np.flatnonzero(np.isfinite(said)):
            out[k] = said[k]
            evidence[rows[k]] = f"reviewer: {'yes' if said[k] else 'no'}; {evidence[rows[k]]}"[:300]
        return out


class _LearnedPhotoCheck(_PhotoCheck):
    def scorer(self, ctx: AuditContext):
        scorers, _ = ctx.shared("photo_scorers", lambda: load_scorers(ctx.config.photo_model))
        self._model_path = ctx.config.photo_model
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
        evidence = [self.describe(data, int(p), r) for p, r in zip(pos, reasons)]
        self.mark_failed(data, pos, scores, evidence)
        return scores, evidence

    def finalize(self, ctx: AuditContext, rows: np.ndarray, scores: np.ndarray, evidence: list[str]) -> np.ndarray:
        """The probabilities of all photo rows made to fit this workspace: re-weighted to its own
        estimated share of positives (``photo_prior: workspace``), then recalibrated by the reviewer's
        verdicts on its photos (``learn_from_review``, from ``review_min`` verdicts on), and finally
        the reviewer's verdict taking the place of the score of each reviewed photo."""
        from curate.audit.label_shift import em_prior, fit_recalibration

        scorer, p = self.scorer(ctx), np.asarray(scores, np.float64).copy()
        ok = np.isfinite(p)
        note: dict = {"prior_fitted": round(scorer.prior, 4)}
        data = photo(ctx)
        pos = self.positions(ctx, rows)
        said = data.verdicts(self.name, [data.image_ids[int(q)] for q in pos])
        known = np.isfinite(said) & ok
        how = self.params.learn_from_review
        if how == "refit" and known.sum() >= self.params.review_min:
            scorer = self._refitted(scorer, data.features.iloc[pos[known]], said[known].astype(int), ctx.seed)
            frame = data.features.iloc[pos[ok]].reset_index(drop=True)
            p[ok] = scorer.predict(frame)
            self._model_threshold = scorer.threshold
            note.update(refitted_on=int(known.sum()), threshold=round(scorer.threshold, 4))
        if self.params.photo_prior == "workspace" and ok.any():
            est, p[ok] = em_prior(p[ok], scorer.prior)
            note["prior_workspace"] = round(est.prior, 4)
        if how == "recalibrate" and known.sum() >= self.params.review_min:
            rec = fit_recalibration(p[known], said[known], strength=self.params.review_strength)
            p[ok] = rec.apply(p[ok])
            note["recalibrated_on"] = rec.n
        ctx.cache.setdefault("photo_adjustments", {})[self.name] = note
        return super().finalize(ctx, rows, p, evidence)

    def _refitted(self, scorer, reviewed: pd.DataFrame, verdicts: np.ndarray, seed: int):
        """The scorer's trees fitted again on the reviewed photos it shipped with plus this workspace's
        reviewed ones (:func:`curate.audit.photo_fit.refit_with_review`)."""
        from curate.audit.photo_fit import refit_with_review
        from curate.audit.photo_model import load_training_data

        frame, labels, groups = load_training_data(self._model_path)
        if self.name not in labels:
            return scorer
        return refit_with_review(self.name, frame, labels[self.name], groups, reviewed.reset_index(drop=True),
                                 verdicts, scorer.features, weight=self.params.review_weight, seed=seed)

    def flag(self, scores: np.ndarray) -> np.ndarray:
        return np.nan_to_num(np.asarray(scores, float), nan=-np.inf) >= self.threshold

    def describe(self, data: PhotoData, pos: int, reasons: str) -> str:
        return reasons


class NoFace(_LearnedPhotoCheck):
    name = "no_face"
    description = ("Photos: no usable face, i.e. no photographed human face at least 40 px wide with both eyes "
                   "visible and eyes and mouth not hidden (none found, too small, in profile, covered, or only "
                   "drawn/rendered faces). Scored on what the face detector found and on the main face's own "
                   "pixels. Face-crop datasets are judged by non_face instead.")

    def describe(self, data: PhotoData, pos: int, reasons: str) -> str:
        f = data.features.iloc[pos]
        if f.get("n_faces", 0) == 0:
            what = "no face found"
        else:
            what = (f"main face {f['main_px_width']:.0f} px wide ({100 * f['main_rel_width']:.0f}% of the short side), "
                    f"detector score {f['main_score']:.2f}, nose offset {f['main_yaw']:.2f} eye-widths")
        return what + (f"; {reasons}" if reasons else "")


class Cartoon(_LearnedPhotoCheck):
    name = "cartoon"
    description = ("Drawing, clip art, emoji, 3D render or anime rather than a photo: flat colour areas without "
                   "sensor noise, few distinct colours, saturated palettes, hard edges (on the main face's own "
                   "pixels where a face is found, and on the whole colour original).")


class Watermark(_LearnedPhotoCheck):
    name = "watermark"
    description = ("Stock-photo watermark, overlaid logo or URL: text boxes of a learned text detector (PP-OCRv4), "
                   "text-like strokes across the photo (at up to 1,280 px), a uniform bottom banner, or a file name "
                   "naming a stock site.")

    def describe(self, data: PhotoData, pos: int, reasons: str) -> str:
        site = stock_site(data.paths[pos])
        f = data.features.iloc[pos]
        parts = []
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
                       min_relative_width: float = 0.5, min_width_px: float = 40.0,
                       max_yaw: float | None = None) -> np.ndarray:
    """Per photo of ``image_ids``: the MTCNN probability of its surest *other usable face*, 0 when
    it has none. The main face is the widest MTCNN face of probability >= ``main_face_score`` and at
    least ``min_width_px`` wide; another face counts when it is at least ``min_width_px`` wide and
    ``min_relative_width`` times as wide as the main face (and, with ``max_yaw``, its nose is at most
    that many eye-widths off the eyes' midpoint: turned-away faces are not usable). Boxes of the
    HOG fallback (used when MTCNN found nothing) never count: HOG's second boxes are mostly false."""
    out = np.zeros(len(image_ids))
    if faces is None or faces.empty or "detector" not in faces:
        return out
    mt = faces[faces["detector"].astype(str) == "mtcnn"]
    at = {image_id: k for k, image_id in enumerate(image_ids)}
    for image_id, g in mt.groupby(mt["image_id"].astype(str), sort=False):
        k = at.get(image_id)
        if k is None or len(g) < 2:
            continue
        mains = g[(g["score"] >= main_face_score) & (g["w"] >= min_width_px)]
        if mains.empty:
            continue
        main = mains.sort_values("w", ascending=False, kind="stable").iloc[0]
        others = g.drop(index=main.name)
        others = others[(others["w"] >= max(min_width_px, min_relative_width * main["w"]))]
        if max_yaw is not None and len(others):
            others = others[[_yaw(lm) <= max_yaw for lm in others["landmarks"]]]
        if len(others):
            out[k] = float(others["score"].max())
    return out


def _yaw(landmarks) -> float:
    """Nose offset from the eyes' midpoint in eye-widths (dlib's 5 points: eye corners, then nose)."""
    pts = np.asarray([list(p) for p in landmarks], np.float64)
    a, b = pts[0:2].mean(0), pts[2:4].mean(0)
    return float(abs(pts[4][0] - (a[0] + b[0]) / 2) / (np.hypot(*(b - a)) or 1.0))


class MultipleFaces(_PhotoCheck):
    name = "multiple_faces"
    description = ("A second usable face the label could be about: another MTCNN face at least 40 px wide and at "
                   "least half as wide as the main face (tiny background faces do not count); the score is its "
                   "MTCNN probability, flagged at multiple_faces.threshold; evidence lists the boxes.")

    def score(self, ctx: AuditContext, rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
        data, pos = photo(ctx), self.positions(ctx, rows)
        ids = [data.image_ids[int(p)] for p in pos]
        p = self.params
        scores = second_face_scores(data.faces, ids, main_face_score=p.main_face_score,
                                    min_relative_width=p.min_relative_width, min_width_px=p.min_width_px,
                                    max_yaw=p.max_yaw if p.max_yaw > 0 else None)
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
