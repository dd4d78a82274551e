"""Run audit checks on a workspace and write their rows into findings.parquet.

``audit(ws, checks=...)`` is what both ``curate audit`` and the pipeline step "audit" call.
Arrays in, scores out: :func:`run_checks` works on a pixel array alone (used by the
benchmark); :func:`audit` adds the workspace I/O, the findings write and the run record.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from curate.audit.base import AuditContext
from curate.audit.engine_work import PhotoCheckChunks, score_chunk
from curate.audit.checks_photo import PhotoData
from curate.check_feedback import latest_feedback, read_feedback
from curate.audit.registry import ALL_CHECKS, CHECKS, PHOTO_CHECKS, WORKSPACE_CHECKS, resolve_checks
from curate.faces.tables import FACE_IMAGES_FILE, FACES_FILE, PHOTO_FEATURES_FILE
from curate.errors import CurateError
from curate.findings import make_findings, write_findings
from curate.ingest.originals import load_original
from curate.logs import get_logger
from curate.progress import chunks
from curate.settings import AuditSettings, as_settings, load_settings
from curate.workspace import Workspace, utc_now


def _score_rows(check, ctx: AuditContext, rows: np.ndarray, scores: np.ndarray, evidence: list[str]) -> None:
    """Score ``rows`` in chunks into ``scores``/``evidence``; a chunk that raises is retried image
    by image, and an image that still fails gets NaN and "error: ..." (:func:`score_chunk`).

    A photo check's chunks run on the engine's workers when it is remote (its scorers load once per
    worker); the check's state after scoring (e.g. its model threshold) comes back with them."""
    from curate.engine import get_engine

    parts = [rows[sl] for sl in chunks(len(rows), ctx.config.chunk_size)]
    engine = get_engine()
    if check.applies_to == "photo" and not engine.is_local and parts:
        work = PhotoCheckChunks(type(check), check.params, ctx.config, ctx.image_ids, ctx.photo, ctx.seed)
        for part, (s, ev, state) in zip(parts, engine.map_items(work, parts, batch_size=1, threads=1)):
            scores[part] = s
            for r, e in zip(part, ev):
                evidence[r] = e
            vars(check).update(state)
        return
    for part in parts:
        s, ev = score_chunk(check, ctx, part)
        scores[part] = s
        for r, e in zip(part, ev):
            evidence[r] = e


def run_check(name: str, ctx: AuditContext) -> pd.DataFrame:
    """Findings rows of one check for the images of ``ctx`` it applies to.

    Crop rows are judged by the crop variant; photo rows by the photo variant where there is
    one (``cartoon``, ``watermark``, ``no_face``, ``multiple_faces``), else by the crop variant
    on the aligned face crop, and "not judged" when the face stage found no face (image
    statistics such as ``blank`` are judged on the whole photo). A photo-only check writes no
    rows for crop rows.
    """
    n = len(ctx.image_ids)
    scores = np.full(n, np.nan)
    evidence: list[str] = [""] * n
    flagged = np.zeros(n, dtype=bool)
    covered = np.zeros(n, dtype=bool)
    photo_rows = ctx.photo.rows if ctx.photo is not None else np.zeros(0, np.int64)
    is_photo = np.zeros(n, dtype=bool)
    is_photo[photo_rows] = True
    crop_cls, photo_cls = CHECKS.get(name), PHOTO_CHECKS.get(name)
    if crop_cls is not None:
        check = crop_cls(ctx.params(name))
        judged = ~is_photo
        if photo_cls is None and len(photo_rows) and not check.judges_photos:
            for r in photo_rows:
                evidence[r] = (f"not judged: {name} judges face crops; photos are judged by no_face "
                               "(no usable face in the photo)")
            covered[photo_rows] = True
        elif photo_cls is None and len(photo_rows):
            faced = photo_rows[ctx.photo.status == "ok"]
            judged[photo_rows if check.judges_uncropped else faced] = True
            unjudged = np.setdiff1d(photo_rows, np.flatnonzero(judged))
            for r in unjudged:
                evidence[r] = "not judged: the face stage found no face in this photo (see no_face)"
            covered[unjudged] = True
        rows = np.flatnonzero(judged)
        _score_rows(check, ctx, rows, scores, evidence)
        flagged[rows] = check.flag(scores[rows])
        covered[rows] = True
    if photo_cls is not None and len(photo_rows):
        check = photo_cls(ctx.params(name))
        _score_rows(check, ctx, photo_rows, scores, evidence)
        scores[photo_rows] = check.finalize(ctx, photo_rows, scores[photo_rows], evidence)
        flagged[photo_rows] = check.flag(scores[photo_rows])
        covered[photo_rows] = True
    keep = np.flatnonzero(covered)
    return make_findings([ctx.image_ids[i] for i in keep], name, scores[keep], flagged[keep],
                         [evidence[i] for i in keep])


def run_checks(images: np.ndarray, image_ids: Iterable[str], names: list[str] | None,
               config: AuditSettings | Mapping[str, Any], *,
               seed: int = 0, quiet: bool = True, load_original=None, photo=None,
               notes: dict[str, Any] | None = None) -> tuple[pd.DataFrame, dict[str, float]]:
    """Run ``names`` on uint8 crops (and ``photo`` records); returns (findings rows, seconds per check).

    Parameters
    ----------
    images : np.ndarray
        uint8 face crops, (N, S, S) grey.
    image_ids : iterable of str
        One id per image, in the order of ``images`` (the ``image_id`` of the findings rows).
    names : list of str or None
        Image checks to run, any of ``blank, low_information, dark, light, low_contrast, blurry,
        non_face, misaligned, watermark, cartoon, occlusion`` (and the photo checks ``no_face,
        multiple_faces``); None, [] or ["all"] = every default-enabled check. Workspace checks
        (``mislabel``) are refused here (CurateError, exit 2): they run through :func:`run_audit`.
    config : AuditSettings or mapping
        The audit settings (``load_settings("audit")``); a whole mapping such as ``load_config("audit")``
        returns is validated like a loaded section (ConfigError naming the key).
    seed : int, default=0
        Seed of the checks that sample or train (same seed, same findings).
    quiet : bool, default=True
        No progress bars or messages on stderr.
    load_original : callable, optional
        ``load_original(row)`` -> the original image of row ``row`` (quality statistics then come from
        the original file); None = the crops only. Default None.
    photo : PhotoData, optional
        The face stage's records of a photo workspace (:func:`photo_records`); None = face crops only,
        photo checks judge nothing. Default None.
    notes : dict, optional
        Receives ``photo_adjustments``: per learned photo check, its fitted prior and what the
        workspace changed (estimated prior, refit or recalibration on the reviewer's verdicts). Default None.
    """
    names = resolve_checks(names)
    staged = [n for n in names if n in WORKSPACE_CHECKS]
    if staged:
        raise CurateError(f"workspace check(s) {', '.join(staged)} run on the whole workspace by their own stage, "
                          f"not on image arrays: use run_audit or `curate audit --checks {','.join(staged)}`",
                          exit_code=2)
    ctx = AuditContext(images=images, image_ids=[str(i) for i in image_ids], config=as_settings("audit", config),
                       seed=seed, quiet=quiet, load_original=load_original, photo=photo)
    frames, seconds = [], {}
    for name in names:
        t0 = time.perf_counter()
        frames.append(run_check(name, ctx))
        seconds[name] = round(time.perf_counter() - t0, 2)
    if "defect_model" in ctx.cache:
        seconds["defect_model_training"] = ctx.cache["defect_model"].info.get("train_seconds")
    if notes is not None and "photo_adjustments" in ctx.cache:
        notes["photo_adjustments"] = ctx.cache["photo_adjustments"]
    return pd.concat(frames, ignore_index=True), seconds


def photo_records(ws: Workspace) -> PhotoData | None:
    """The face stage's records for the workspace's photo rows, or None when it holds none.

    Refuses (rather than silently judging squashed photos as crops) when photos have not
    been through the face stage.
    """
    kinds = ws.image_kinds()
    rows = np.flatnonzero((kinds == "photo").to_numpy())
    if len(rows) == 0:
        return None
    face_images = ws.read_parquet(FACE_IMAGES_FILE)
    features = ws.read_parquet(PHOTO_FEATURES_FILE)
    manifest = ws.manifest()
    ids = manifest["image_id"].astype(str).tolist()
    if face_images is None or features is None or not set(ids[r] for r in rows) <= set(face_images["image_id"]):
        raise CurateError(f"{ws.root}: {len(rows):,} photos have not been through the face stage (faces.parquet / "
                          f"face_images.parquet missing or incomplete); run `curate faces -w {ws.root}` first. "
                          "Crop checks are never run on uncropped photos.")
    faces = ws.read_parquet(FACES_FILE)
    paths = manifest["source_path"].astype("object").where(manifest["source_path"].notna(), None).tolist()
    feedback = latest_feedback(read_feedback(ws))
    return PhotoData.build(ids, rows, face_images, features, faces, [paths[r] for r in rows], feedback=feedback)


class OriginalsLoader:
    """``load_original(row) -> uint8 array`` of a workspace (JPEGs decoded at a reduced scale keeping
    both sides >= ``draft_side``); picklable: :meth:`portable` is the copy that engine workers get,
    which reads the original files (a shared path or an object-storage URL), never the workspace."""

    def __init__(self, ws: Workspace, draft_side: int | None = None):
        self.ws = ws
        self.draft_side = draft_side
        self._locations: dict[int, Any] = {}

    def location(self, row: int):
        """Where the original file of ``row`` is (None: CSV pixels, read from the workspace)."""
        from curate.ingest.originals import original_location

        row = int(row)
        if row not in self._locations:
            self._locations[row] = original_location(self.ws, row)
        return self._locations[row]

    def __call__(self, row: int) -> np.ndarray:
        return np.asarray(load_original(self.ws, row, draft_side=self.draft_side))

    def portable(self) -> "_FileLoader":
        return _FileLoader(dict(self._locations), self.draft_side)


class _FileLoader:
    """The worker's half of :class:`OriginalsLoader`: decodes the original file of a row it knows."""

    def __init__(self, locations: dict[int, Any], draft_side: int | None):
        self.locations, self.draft_side = locations, draft_side

    def __call__(self, row: int) -> np.ndarray:
        from curate.ingest.originals import decode_original

        return np.asarray(decode_original(self.locations[int(row)], draft_side=self.draft_side).image)


def originals_loader(ws: Workspace, mode: str, draft_side: int | None = None) -> OriginalsLoader | None:
    """``load_original(row) -> uint8 array`` when originals are larger or colour (mode auto), else None."""
    if mode == "never":
        return None
    manifest = ws.manifest()
    size = ws.image_size
    if mode == "auto":
        has_files = manifest["source_path"].notna()
        bigger = (manifest["width"].fillna(0) > size) | (manifest["height"].fillna(0) > size)
        colour = manifest["channels"].fillna(1) > 1
        if not (has_files & (bigger | colour)).any():
            return None
    elif mode != "always":
        raise CurateError(f"use_originals must be auto, always or never, not {mode!r}", exit_code=2)
    return OriginalsLoader(ws, draft_side)


def audit(ws: Workspace, checks: list[str] | None = None, *, overrides: Any = None, config_file=None,
          seed: int = 0, quiet: bool = False) -> dict[str, Any]:
    """Run the audit checks on ``ws``, replace their rows in findings.parquet, record the run.

    Parameters
    ----------
    ws : Workspace
        An ingested workspace (CurateError when it holds no images).
    checks : list of str, optional
        Image checks to run (see :func:`run_checks` for the names; ``["all"]`` = every default-enabled
        one); None = the ``checks`` list of the settings (configs/audit.yaml). Photo checks are skipped,
        and named in ``not_applicable``, on a workspace without photos. Default None.
    overrides : list of str or dict, optional
        ``KEY=VALUE`` strings (``--set``) or a nested dict merged last over the settings of
        configs/audit.yaml; an unknown key is refused (ConfigError, exit 2). Default None.
    config_file : str or Path, optional
        A YAML file merged over those defaults before ``overrides`` (``--config``). Default None.
    seed : int, default=0
        Seed of the checks that sample or train (same seed, same findings).
    quiet : bool, default=False
        No progress bars or messages on stderr.

    Returns
    -------
    dict
        ``checks``, ``flagged`` and ``errors`` per check, ``flagged_any``, ``seconds_per_check``,
        ``findings_file`` and the other summary keys (printed by :func:`render_summary`).
    """
    started = utc_now()
    t0 = time.perf_counter()
    cfg = load_settings("audit", overrides, config_file)
    names = resolve_checks(checks if checks is not None else list(cfg.checks))
    ws = Workspace.open(ws.root) if not ws.exists() else ws
    manifest = ws.manifest()
    if len(manifest) == 0:
        raise CurateError(f"{ws.root}: the workspace holds no images; ingest some first")
    images = ws.pixels()
    loader = originals_loader(ws, cfg.use_originals, 2 * cfg.quality_max_side)
    photo = photo_records(ws)
    skipped = [n for n in names if photo is None and n in PHOTO_CHECKS and n not in CHECKS]
    names = [n for n in names if n not in skipped]
    notes: dict[str, Any] = {}
    rows, seconds = run_checks(images, manifest["image_id"].tolist(), names, cfg, seed=seed, quiet=quiet,
                               load_original=loader, photo=photo, notes=notes)
    write_findings(ws, rows, checks=names)
    flagged = rows.groupby("check", sort=False)["flagged"].sum().astype(int).to_dict()
    errors = rows[rows["evidence"].str.startswith("error:").fillna(False)].groupby("check", sort=False).size()
    summary = {
        "workspace": str(ws.root), "images": int(len(manifest)), "checks": names,
        "flagged": {n: int(flagged.get(n, 0)) for n in names},
        "errors": {n: int(errors.get(n, 0)) for n in names},
        "flagged_any": int(rows.loc[rows["flagged"], "image_id"].nunique()),
        "used_originals": loader is not None, "seed": seed,
        "photos": int(len(photo.rows)) if photo is not None else 0,
        "not_applicable": {n: "no photos in this workspace (face crops only)" for n in skipped},
        "seconds": round(time.perf_counter() - t0, 2), "seconds_per_check": seconds,
        "findings_file": str(ws.path("findings.parquet")),
        **notes,
    }
    ws.record_run("audit", seed=seed, started=started, options={"checks": names, "overrides": overrides or {}},
                  counts={"images": summary["images"], "flagged": summary["flagged"], "errors": summary["errors"]})
    return summary


def split_overrides(overrides: list[str] | None) -> tuple[list[str] | None, dict[str, list[str]]]:
    """``KEY=VALUE`` overrides -> (those of the image checks, ``{name: [KEY=VALUE]}`` of each workspace check,
    from its ``NAME.KEY=VALUE`` ones)."""
    own = {n: [s.removeprefix(f"{n}.") for s in overrides or [] if s.startswith(f"{n}.")] for n in WORKSPACE_CHECKS}
    if overrides is None:
        return None, own
    return [s for s in overrides if not any(s.startswith(f"{n}.") for n in WORKSPACE_CHECKS)], own


def run_audit(ws: Workspace, checks: list[str] | None = None, *, overrides: list[str] | None = None,
              config_file=None, seed: int = 0, quiet: bool = False,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """What ``curate audit`` and the pipeline step run: the named image checks through :func:`audit`
    (every default-enabled one when none are named), then each named workspace check (opt-in, e.g.
    ``mislabel``) by its own stage, with the ``NAME.KEY=VALUE`` overrides as its options.

    Returns the audit summary (when image checks ran) plus one key per workspace check run.

    Parameters
    ----------
    ws : Workspace
        An ingested workspace.
    checks : list of str, optional
        Image checks (see :func:`run_checks`) and workspace checks (``mislabel``) to run; None or [] =
        the default image checks only (workspace checks are opt-in). Default None.
    overrides : list of str, optional
        ``KEY=VALUE`` strings; those starting ``NAME.`` for a workspace check ``NAME`` (e.g.
        ``mislabel.folds=3``) go to that check without the prefix, the rest to the image checks.
        Default None.
    config_file : str or Path, optional
        A YAML file merged over configs/audit.yaml for the image checks. Default None.
    seed : int, default=0
        Seed of every check run.
    quiet : bool, default=False
        No progress bars or messages on stderr.
    log : callable, optional
        Receives the workspace checks' progress lines. Default None: the ``curate`` logger.
    """
    log = log or get_logger(__name__).info
    image_set, own = split_overrides(overrides)
    staged = [n for n in checks or [] if n in WORKSPACE_CHECKS]
    image = [n for n in checks if n not in WORKSPACE_CHECKS] if checks else checks
    summary = (audit(ws, image, overrides=image_set, config_file=config_file, seed=seed, quiet=quiet)
               if image or not staged else {})
    for name in staged:
        summary[name] = WORKSPACE_CHECKS[name].run(ws, own[name], seed=seed, quiet=quiet, log=log)
    return summary


def audit_step(ws: Workspace, options: dict[str, Any], *, seed: int, quiet: bool) -> dict[str, Any]:
    """Pipeline step: ``{checks: [blank, non_face], set: {watermark.threshold: 0.9}}``."""
    opts = dict(options)
    checks = opts.pop("checks", None)
    if isinstance(checks, str):
        checks = [c.strip() for c in checks.split(",") if c.strip()]
    overrides = opts.pop("set", None) or {}
    if isinstance(overrides, dict):
        overrides = [f"{k}={v}" for k, v in overrides.items()]
    if opts:
        raise CurateError(f"audit step: unknown option(s) {', '.join(opts)}; use checks and set", exit_code=2)
    return run_audit(ws, checks, overrides=overrides or None, seed=seed, quiet=quiet)


def render_summary(s: dict[str, Any]) -> str:
    """Human-readable audit summary."""
    lines = [f"audit of {s['images']:,} images in {s['workspace']} ({s['seconds']:.1f}s)"]
    for name in s["checks"]:
        err = f", {s['errors'][name]} errors" if s["errors"].get(name) else ""
        note = (s.get("photo_adjustments") or {}).get(name, {})
        taught = (f"  (refitted on {note['refitted_on']} reviewed photos)" if "refitted_on" in note else
                  f"  (recalibrated on {note['recalibrated_on']} reviewed photos)" if "recalibrated_on" in note else "")
        prior = f"  (prior {note['prior_fitted']:.3f} -> {note['prior_workspace']:.3f})" if "prior_workspace" in note else ""
        lines.append(f"  {name:<16} flagged {s['flagged'][name]:>6,}{err}{taught}{prior}")
    lines.append(f"images flagged by any check: {s['flagged_any']:,}; findings in {s['findings_file']}")
    return "\n".join(lines)


def list_checks(config: AuditSettings | None = None,
                own_overrides: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """Every registered check with its description and default options (a workspace check's
    from its own config file, with ``own_overrides[name]`` applied)."""
    cfg = config if config is not None else load_settings("audit")
    out = []
    for name in ALL_CHECKS:
        if name in WORKSPACE_CHECKS:
            entry = WORKSPACE_CHECKS[name]
            out.append({"name": name, "description": entry.description,
                        "defaults": entry.defaults((own_overrides or {}).get(name))})
            continue
        variants = [c for c in (CHECKS.get(name), PHOTO_CHECKS.get(name)) if c is not None]
        out.append({"name": name, "description": " | photos: ".join(c.description for c in variants),
                    "judged_on": "+".join(c.applies_to for c in variants),
                    "defaults": cfg[name].to_dict() if name in cfg else {}})
    return out

