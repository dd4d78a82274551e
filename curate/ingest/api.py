"""``curate ingest``: read sources into a workspace atomically; rejects are recorded, not fatal."""
from __future__ import annotations

import csv
import re
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from curate.errors import CurateError
from curate.ingest.fer2013 import read_fer2013_csv, read_header
from curate.ingest.files import LABEL_COLUMNS, PATH_COLUMNS, read_folder, read_label_csv
from curate.ingest.records import SourceResult
from curate.ingest.remote import canonical_url, fetched, is_folder as remote_is_folder, is_url, name_of
from curate.labels import apply_label_map
from curate.faces.api import merge_photo_outputs, photo_counts
from curate.settings import IngestSettings, load_settings
from curate.workspace import REJECT_COLUMNS, Workspace, coerce_manifest, utc_now

FORMATS = ("auto", "fer2013-csv", "folder", "csv")
UNREADABLE = (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error)
"""What reading a source file can raise when the file itself is unreadable (I/O, broken gzip, not UTF-8 text)."""


def detect_format(path: Path | str) -> str:
    """fer2013-csv, folder or csv, from what the source is and its header (a URL: a prefix is a folder)."""
    if is_url(path):
        if remote_is_folder(str(path)):
            return "folder"
        with fetched(str(path)) as local:
            return detect_format(local)
    if path.is_dir():
        return "folder"
    if not path.is_file():
        raise CurateError(f"{path}: no such file or folder")
    try:
        header = read_header(path)
    except UNREADABLE as exc:
        raise CurateError(f"{path}: cannot read a CSV header: {exc}") from None
    if "pixels" in header and "emotion" in header:
        return "fer2013-csv"
    if any(c in header for c in PATH_COLUMNS) and any(c in header for c in LABEL_COLUMNS):
        return "csv"
    raise CurateError(f"{path}: cannot tell the format from header {header[:6]}; "
                      "expected emotion,pixels[,Usage] or path,label[,split] (or pass --format)")


def source_slug(path: Path | str, taken: dict[str, str]) -> str:
    """Short stable name for id prefixes: file/folder name without suffixes, unique in the workspace."""
    name = name_of(path) if is_url(path) else Path(path).name
    for suffix in (".gz", ".csv"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "source"
    candidate, k = slug, 2
    while candidate in taken and taken[candidate] != str(path):
        candidate, k = f"{slug}-{k}", k + 1
    return candidate


def _read_source(path: Path | str, fmt: str, size: int, cfg: IngestSettings, quiet: bool,
                 spill_dir: Path | None = None) -> SourceResult:
    """One source's rows, pixels and rejects; a FER2013 CSV's pixels spill to ``spill_dir`` (the
    workspace folder) as they are parsed, so a million rows never sit in memory."""
    if fmt == "fer2013-csv":
        if is_url(path):  # parsed in the driver: a local copy for the one CSV reader
            with fetched(str(path)) as local:
                return read_fer2013_csv(local, size, quiet=quiet, spill_dir=spill_dir)
        return read_fer2013_csv(path, size, quiet=quiet, spill_dir=spill_dir)
    reader = read_folder if fmt == "folder" else read_label_csv
    return reader(path, size, cfg, quiet=quiet)


def _rejects_frame(source: str, result: SourceResult) -> pd.DataFrame:
    return pd.DataFrame({
        "source": pd.array([source] * len(result.rejects), dtype="string"),
        "source_row": pd.array([r.source_row for r in result.rejects], dtype="Int64"),
        "source_path": pd.array([r.source_path for r in result.rejects], dtype="string"),
        "reason_code": pd.array([r.code for r in result.rejects], dtype="string"),
        "reason": pd.array([r.reason for r in result.rejects], dtype="string"),
    }, columns=list(REJECT_COLUMNS))


def _image_size(ws: Workspace, image_size: int | None, cfg: IngestSettings) -> int:
    """The workspace's stored side; at the first ingest ``image_size`` (else the settings')."""
    size = ws.image_size if ws.exists() else int(image_size or cfg.image_size)
    if ws.exists() and image_size and int(image_size) != size:
        raise CurateError(f"{ws.root}: workspace stores {size}x{size} images; --image-size {image_size} "
                          "can only be set at the first ingest", exit_code=2)
    return size


def _source_rows(result: SourceResult, source: str, slug: str, kind: str, image_kind: str,
                 label_map: Any) -> pd.DataFrame:
    """One source's manifest rows: labels mapped, ``slug:path`` (or ``slug:row``) ids, source, format, kind."""
    rows = result.rows.copy()
    rows["label"] = apply_label_map(rows["label"], rows["original_label"], label_map)
    keys = rows["source_path"].where(rows["source_path"].notna(),
                                     rows["source_row"].astype("string").str.zfill(6))
    rows.insert(0, "image_id", (slug + ":" + keys).astype("string"))
    rows.insert(1, "source", pd.array([source] * len(rows), dtype="string"))
    rows["source_format"] = pd.array([kind] * len(rows), dtype="string")
    rows["image_kind"] = pd.array([image_kind] * len(rows), dtype="string")
    return rows


def _commit_merged(ws: Workspace, manifest: pd.DataFrame, keep_mask: np.ndarray, new_rows: list[pd.DataFrame],
                   new_pixels: list[np.ndarray], photo_batches: list[tuple[list[str], list]], size: int,
                   cfg: IngestSettings) -> None:
    """Commit the kept old rows and pixels followed by the new sources' (and their photo outputs)."""
    merged = coerce_manifest(pd.concat([manifest[keep_mask], *new_rows], ignore_index=True))
    old_pixels = ws.pixels() if ws.exists() else np.zeros((0, size, size), np.uint8)

    def blocks():
        idx = np.flatnonzero(keep_mask)
        for start in range(0, len(idx), 8192):
            yield np.asarray(old_pixels[idx[start:start + 8192]])
        yield from new_pixels

    rgb = merge_photo_outputs(ws, merged, keep_mask, new_rows, new_pixels, photo_batches, cfg)
    ws.commit(merged, blocks(), image_size=size, rgb_rows=rgb, rgb_size=cfg.faces.rgb_size)


def ingest(ws: Workspace, sources: Iterable[str | Path], *, fmt: str = "auto", replace: bool = False,
           strict: bool = False, image_size: int | None = None, overrides: Any = None,
           config_file: str | Path | None = None, quiet: bool = False, seed: int | None = None) -> dict[str, Any]:
    """Ingest ``sources`` into ``ws``; returns counts that reconcile (read = kept + rejected).

    Nothing in the workspace changes until every source has been read: the manifest is
    replaced atomically at the end, so an interrupted ingest leaves the previous state.

    Parameters
    ----------
    ws : Workspace
        The workspace to fill (made at the first ingest).
    sources : iterable of str or Path
        Kaggle FER2013 CSVs (plain or gzip), image folders (``<split>/<class>/*``, ``<class>/*``) or
        ``path,label[,split]`` CSVs. A source already in the workspace is skipped unless ``replace``.
    fmt : {"auto", "fer2013-csv", "folder", "csv"}, default="auto"
        The sources' format; ``auto`` tells it from each source (a folder, else the CSV header).
    replace : bool, default=False
        Read a source already in the workspace again, replacing its rows.
    strict : bool, default=False
        Ingest nothing (CurateError) when any row or file is rejected; the rejects are still written.
    image_size : int, optional
        Side of the grey pixel store, fixed at the first ingest (a different one later: CurateError,
        exit 2); None = the workspace's, else the settings' ``image_size`` (48 as shipped). Default None.
    overrides : list of str or dict, optional
        ``KEY=VALUE`` strings (``--set``) or a nested dict merged last over the settings of
        configs/ingest.yaml; an unknown key is refused (ConfigError, exit 2). Default None.
    config_file : str or Path, optional
        A YAML file merged over those defaults before ``overrides`` (``--config``). Default None.
    quiet : bool, default=False
        No progress bars or messages on stderr.
    seed : int, optional
        Recorded in the workspace's run log (ingest samples nothing). Default None.

    Returns
    -------
    dict
        ``read``, ``kept``, ``rejected`` (read = kept + rejected), ``total_images``, ``sources`` (one
        entry per source read), ``skipped_sources``, ``warnings`` and ``seconds``.
    """
    if fmt not in FORMATS:
        raise CurateError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}", exit_code=2)
    cfg = load_settings("ingest", overrides, config_file)
    started = utc_now()
    t0 = time.perf_counter()
    with ws.lock():
        ws.refresh()
        manifest = ws.manifest()
        size = _image_size(ws, image_size, cfg)
        slugs: dict[str, str] = dict(ws.info().get("sources_slugs", {}))
        batch = _read_sources(sources, manifest, slugs, fmt=fmt, replace=replace, size=size, cfg=cfg, quiet=quiet,
                              spill_dir=ws.root)
        read, kept, rejected = (sum(s[k] for s in batch.per_source) for k in ("read", "kept", "rejected"))
        summary = {"workspace": str(ws.root), "sources": batch.per_source, "skipped_sources": batch.skipped,
                   "read": read, "kept": kept, "rejected": rejected, "warnings": batch.warnings,
                   "total_images": int(batch.keep_mask.sum()) + kept, "image_size": size}
        if batch.per_source:
            _write_rejects(ws, batch)
            if strict and rejected:
                raise CurateError(f"--strict: {rejected} rows/files rejected (see {ws.path('rejects.parquet')}); "
                                  "nothing was ingested")
        if not batch.per_source or (kept == 0 and not ws.exists()):
            summary["seconds"] = round(time.perf_counter() - t0, 2)
            return summary
        _commit_merged(ws, manifest, batch.keep_mask, batch.new_rows, batch.new_pixels, batch.photo_batches, size,
                       cfg)
        ws.set_info(image_size=size, sources_slugs=slugs)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    ws.record_run("ingest", seed=seed, started=started,
                  options={"format": fmt, "replace": replace, "strict": strict, "image_size": size},
                  counts={"read": read, "kept": kept, "rejected": rejected, "total_images": summary["total_images"]})
    return summary


@dataclass
class _Batch:
    """What one ingest read from its sources, before anything is committed."""

    keep_mask: np.ndarray  # old manifest rows that stay (not from a re-read source)
    new_rows: list[pd.DataFrame] = field(default_factory=list)
    new_pixels: list[np.ndarray] = field(default_factory=list)
    reject_frames: list[pd.DataFrame] = field(default_factory=list)
    per_source: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    photo_batches: list[tuple[list[str], list]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _read_sources(sources: Iterable[str | Path], manifest: pd.DataFrame, slugs: dict[str, str], *, fmt: str,
                  replace: bool, size: int, cfg: IngestSettings, quiet: bool, spill_dir: Path | None = None) -> _Batch:
    """Read every source not already in the workspace (or every one, with ``replace``); ``slugs`` is updated."""
    present = set(manifest["source"].dropna().unique())
    batch = _Batch(keep_mask=np.ones(len(manifest), dtype=bool))
    for raw in sources:
        remote = is_url(str(raw))
        path: Path | str = canonical_url(str(raw)) if remote else Path(raw).expanduser().resolve()
        source = str(path)
        if source in present and not replace:
            batch.skipped.append(source)
            continue
        kind = detect_format(path) if fmt == "auto" else fmt
        if kind == "folder" and not (remote_is_folder(source) if remote else Path(path).is_dir()):
            raise CurateError(f"{path}: --format folder needs a folder")
        slug = source_slug(path, slugs)
        slugs[slug] = source
        try:  # a source that is not what its format says raises InputError (exit 1) itself
            result = _read_source(path, kind, size, cfg, quiet, spill_dir)
        except UNREADABLE as exc:
            raise CurateError(str(exc)) from None
        image_kind = "photo" if result.photos is not None else "crop"
        rows = _source_rows(result, source, slug, kind, image_kind, cfg.label_map)
        if result.photos is not None:
            batch.photo_batches.append((rows["image_id"].tolist(), result.photos))
        if source in present:
            batch.keep_mask &= (manifest["source"] != source).to_numpy(dtype=bool, na_value=True)
        batch.new_rows.append(rows)
        batch.new_pixels.append(result.pixels)
        batch.reject_frames.append(_rejects_frame(source, result))
        batch.warnings.extend(result.warnings)
        batch.per_source.append(_source_summary(result, source, slug, kind, image_kind))
    return batch


def _write_rejects(ws: Workspace, batch: _Batch) -> None:
    """rejects.parquet: the earlier rejects of sources not read again, then this batch's."""
    replaced = {s["source"] for s in batch.per_source}
    old_rejects = ws.rejects()
    all_rejects = pd.concat([old_rejects[~old_rejects["source"].isin(replaced)], *batch.reject_frames],
                            ignore_index=True)
    ws.write_parquet("rejects.parquet", all_rejects)


def _source_summary(result: SourceResult, source: str, slug: str, kind: str, image_kind: str) -> dict[str, Any]:
    """One source's counts in the ingest summary (with the face stage's counts for photos)."""
    summary = {"source": source, "format": kind, "slug": slug, "read": result.read, "kept": result.kept,
               "rejected": len(result.rejects), "images": image_kind, "rejects_by_reason": _count_codes(result)}
    if result.photos is not None:
        summary["faces"] = photo_counts(result.photos)
    return summary


def _count_codes(result: SourceResult) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in result.rejects:
        counts[r.code] = counts.get(r.code, 0) + 1
    return counts


def ingest_step(ws: Workspace, options: dict[str, Any], *, seed: int, quiet: bool) -> dict[str, Any]:
    """Pipeline step: ``{sources: [...], format: auto, replace: false, strict: false, set: {...}}``."""
    opts = dict(options)
    sources = opts.pop("sources", None)
    if not sources:
        raise CurateError("ingest step needs 'sources: [path, ...]'", exit_code=2)
    return ingest(ws, sources, fmt=opts.pop("format", "auto"), replace=bool(opts.pop("replace", False)),
                  strict=bool(opts.pop("strict", False)), image_size=opts.pop("image_size", None),
                  overrides=opts or None, quiet=quiet, seed=seed)


def render_summary(s: dict[str, Any]) -> str:
    """Human-readable ingest summary."""
    lines = []
    for src in s["sources"]:
        lines.append(f"{src['source']} ({src['format']}): read {src['read']:,} = kept {src['kept']:,} "
                     f"+ rejected {src['rejected']:,}")
        for code, n in sorted(src["rejects_by_reason"].items(), key=lambda kv: -kv[1]):
            lines.append(f"    rejected {n:>6,}  {code}")
        if src.get("faces"):
            f = src["faces"]
            lines.append(f"    photos: a face found and aligned in {f['with_face']:,} of {f['photos']:,}; "
                         f"{f['several_faces']:,} with several faces; {f['errors']:,} face-stage errors")
    for src in s["skipped_sources"]:
        lines.append(f"{src}: already in the workspace, skipped (use --replace to re-ingest)")
    for w in s["warnings"]:
        lines.append(f"warning: {w}")
    lines.append(f"total: read {s['read']:,} = kept {s['kept']:,} + rejected {s['rejected']:,}; "
                 f"workspace {s['workspace']} now holds {s['total_images']:,} images")
    return "\n".join(lines)
