"""Readers for image folders and ``path,label[,split]`` CSVs (shared parallel decoding).

Decoding (and, for photos, the face stage) is per file and runs on the engine
(:mod:`curate.engine`: this process's threads, or Ray workers); the results come back in
file order and the readers build the rows from them here, in the driver. Folders and CSVs
may also be object-storage URLs (:mod:`curate.ingest.remote`).
"""
from __future__ import annotations

import contextlib
import csv
import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

from curate.errors import InputError
from curate.ingest.decode import DecodeError, decode_image, pixel_digest, to_store
from curate.ingest.fer2013 import open_text
from curate.ingest.records import Reject, SourceResult, unknown_label_warnings
from curate.ingest.remote import RemoteFile, local_copy
from curate.labels import FER2013_USAGE, canonical_label, canonical_split
from curate.progress import progress
from curate.threads import resolve_threads, torch_single_threaded

if TYPE_CHECKING:
    from curate.settings import FacesSettings, IngestSettings

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".pgm", ".ppm", ".pbm"}
PATH_COLUMNS = ("path", "filepath", "file", "filename", "image", "image_path")
LABEL_COLUMNS = ("label", "emotion", "class", "expression", "category")
SPLIT_COLUMNS = ("split", "usage", "subset", "set")


@dataclass
class Candidate:
    """A file to decode, with what its location or CSV row says about it."""

    source_path: str
    file: Path | RemoteFile
    original_label: str | None
    split: str | None
    source_row: int | None = None


def _decode_one(cand: Candidate, image_size: int, max_pixels: int, photo_params: FacesSettings | None):
    try:
        try:
            with local_copy(cand.file) as file:  # a remote object: fetched to a temporary file first
                decoded = decode_image(file, max_pixels=max_pixels)
        except OSError as exc:
            raise DecodeError("unreadable", f"cannot read file: {exc}") from None
        arr = decoded.array()
        if photo_params is not None:  # a photo: the store gets the aligned main face, not the squashed photo
            from curate.faces.stage import process_photo

            found = process_photo(arr, size=image_size, params=photo_params)
            return (found.grey, pixel_digest(arr), decoded.width, decoded.height, decoded.channels, found)
        return (to_store(decoded.image, image_size), pixel_digest(arr), decoded.width, decoded.height,
                decoded.channels)
    except DecodeError as exc:
        return exc
    except Exception as exc:  # one bad file never sinks the run
        return DecodeError("corrupt", f"cannot decode: {type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class DecodeWork:
    """Engine factory of the per-file work: decode (and the face stage for photos); picklable."""

    image_size: int
    max_pixels: int
    photo_params: FacesSettings | None

    def __call__(self) -> Callable[[Candidate], tuple | DecodeError]:
        return functools.partial(_decode_one, image_size=self.image_size, max_pixels=self.max_pixels,
                                 photo_params=self.photo_params)


def decode_candidates(cands: list[Candidate], image_size: int, *, max_pixels: int, workers: int,
                      photo_params: FacesSettings | None, quiet: bool = False, desc: str = "decode",
                      rejects: list[Reject] | None = None, read: int = 0) -> SourceResult:
    """Decode candidates on the engine (``workers`` threads locally, 0 = one per usable core); failures become
    rejects, order is kept.

    With ``photo_params`` the files are photos: each goes through the face stage
    (:func:`curate.faces.stage.process_photo`) and ``SourceResult.photos`` holds the results.
    """
    from curate.engine import get_engine

    rejects = list(rejects or [])
    kept: list[Candidate] = []
    pixels: list[np.ndarray] = []
    facts: list[tuple] = []
    photos: list = []
    chunk = 64 if photo_params is None else 4
    engine = get_engine()
    with (torch_single_threaded() if photo_params is not None and engine.is_local else contextlib.nullcontext()):
        results = engine.map_items(DecodeWork(image_size, max_pixels, photo_params), cands, batch_size=chunk,
                                   workers=workers or resolve_threads(), threads=1)
        for cand, res in zip(cands, progress(results, total=len(cands), desc=desc, quiet=quiet, unit="img")):
            if isinstance(res, DecodeError):
                rejects.append(Reject(res.code, str(res), source_row=cand.source_row, source_path=cand.source_path))
                continue
            kept.append(cand)
            pixels.append(res[0])
            facts.append(res[1:5])
            if photo_params is not None:
                photos.append(res[5])
    labels = pd.Series([canonical_label(c.original_label) for c in kept], dtype="string")
    originals = pd.Series([c.original_label for c in kept], dtype="string")
    rows = pd.DataFrame({
        "source_row": pd.array([c.source_row for c in kept], dtype="Int64"),
        "source_path": pd.array([c.source_path for c in kept], dtype="string"),
        "split": pd.array([c.split for c in kept], dtype="string"),
        "label": labels.fillna(originals.str.strip().str.lower()).array,
        "original_label": originals.array,
        "width": pd.array([f[1] for f in facts], dtype="Int64"),
        "height": pd.array([f[2] for f in facts], dtype="Int64"),
        "channels": pd.array([f[3] for f in facts], dtype="Int64"),
        "digest": pd.array([f[0] for f in facts], dtype="string"),
    })
    stack = np.stack(pixels) if pixels else np.zeros((0, image_size, image_size), np.uint8)
    warnings = unknown_label_warnings(labels, originals, desc)
    return SourceResult(rows=rows, pixels=stack, rejects=rejects, read=read + len(cands), warnings=warnings,
                        photos=photos if photo_params is not None else None)


def _label_and_split(parts: tuple[str, ...]) -> tuple[str | None, str | None]:
    """Split = first folder that names a split; label = deepest folder naming a class,
    else the file's parent folder (kept as an unknown label)."""
    split = next((canonical_split(p) for p in parts if canonical_split(p)), None)
    known = [p for p in parts if canonical_label(p) is not None and not p.isdigit()]
    if known:
        return known[-1], split
    rest = [p for p in parts if canonical_split(p) is None]
    return (rest[-1] if rest else None), split


FER_USAGE_PREFIX = re.compile(r"^(Training|PublicTest|PrivateTest)_\d+")


def split_from_filename(name: str) -> str | None:
    """FER2013 folder releases name files ``Training_<n>``, ``PublicTest_<n>``, ``PrivateTest_<n>``:
    the prefix is the original Usage (train / val / test)."""
    match = FER_USAGE_PREFIX.match(name)
    return FER2013_USAGE[match.group(1)] if match else None


def scan_folder(root: Path, usage_from_filename: bool = True) -> tuple[list[Candidate], list[Reject], int]:
    """Walk ``root`` (sorted, any depth). Symlinks leaving ``root`` and non-image files are rejected.

    With ``usage_from_filename``, FER2013-style names (``PublicTest_123.jpg``) set the split.
    """
    root = root.resolve()
    cands: list[Candidate] = []
    rejects: list[Reject] = []
    read = 0
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            rel = folder.relative_to(root).as_posix()
            rejects.append(Reject("unreadable", f"cannot list folder: {exc.strerror}", source_path=rel))
            read += 1
            continue
        subdirs = []
        for entry in entries:
            rel = Path(entry.path).relative_to(root).as_posix()
            if entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
                continue
            if entry.is_symlink():
                target = Path(entry.path).resolve()
                if not target.is_relative_to(root):
                    read += 1
                    rejects.append(Reject("symlink_outside", f"symlink points outside the ingested folder "
                                                             f"(to {target}); refused", source_path=rel))
                    continue
                if target.is_dir():
                    read += 1
                    rejects.append(Reject("symlinked_folder", "symlinked folder not followed (its files are "
                                                              "ingested through their real path)", source_path=rel))
                    continue
            if entry.is_dir():
                subdirs.append(Path(entry.path))
                continue
            read += 1
            if Path(entry.name).suffix.lower() not in IMAGE_SUFFIXES:
                rejects.append(Reject("not_an_image", f"not an image file (suffix {Path(entry.name).suffix or 'none'!r})",
                                      source_path=rel))
                continue
            label, split = _label_and_split(Path(rel).parts[:-1])
            if usage_from_filename:
                split = split_from_filename(entry.name) or split
            cands.append(Candidate(rel, Path(entry.path), label, split))
        stack.extend(reversed(subdirs))
    cands.sort(key=lambda c: c.source_path)
    return cands, rejects, read - len(cands)


def scan_remote_folder(url: str, usage_from_filename: bool = True) -> tuple[list[Candidate], list[Reject], int]:
    """:func:`scan_folder` for an object-storage prefix: every object under it (hidden folders left
    out), labels and splits from the key's folders as for a local folder; non-image objects rejected."""
    from curate.ingest.remote import list_files

    cands: list[Candidate] = []
    rejects: list[Reject] = []
    for rel, file in list_files(url):
        name = rel.rsplit("/", 1)[-1]
        if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
            rejects.append(Reject("not_an_image", f"not an image file (suffix {Path(name).suffix or 'none'!r})",
                                  source_path=rel))
            continue
        label, split = _label_and_split(tuple(rel.split("/")[:-1]))
        if usage_from_filename:
            split = split_from_filename(name) or split
        cands.append(Candidate(rel, file, label, split))
    return cands, rejects, len(rejects)


def read_folder(root: Path | str, image_size: int, cfg: IngestSettings, *, quiet: bool = False) -> SourceResult:
    """Ingest an image folder: ``<split>/<class>/*``, ``<class>/*`` or any depth (a local folder, or an
    object-storage prefix such as ``s3://bucket/prefix``).

    ``cfg``: the ingest settings; their ``images`` is crops | photos | auto (decided from the image
    sizes, see :func:`looks_like_photos`).
    """
    from curate.ingest.remote import is_url, name_of

    if is_url(root):
        cands, rejects, read = scan_remote_folder(str(root), cfg.usage_from_filename)
        name = name_of(str(root))
    else:
        cands, rejects, read = scan_folder(Path(root), cfg.usage_from_filename)
        name = Path(root).name
    return decode_candidates(cands, image_size, max_pixels=cfg.max_pixels, workers=cfg.workers,
                             quiet=quiet, desc=f"ingest {name}", rejects=rejects, read=read,
                             photo_params=_photo_params(cands, cfg))


def looks_like_photos(files: list[Path | RemoteFile], sample: int = 64, crop_side: int = 128) -> bool:
    """True unless the files look like face crops: at least 90% of a sample of them (read from
    their headers, no decoding) are at most ``crop_side`` px on each side and nearly square."""
    from PIL import Image

    if not files:
        return False
    step = max(1, len(files) // sample)
    small = total = 0
    for file in files[::step][:sample]:
        try:
            with (file.open() if isinstance(file, RemoteFile) else contextlib.nullcontext(file)) as fh, \
                    Image.open(fh) as img:
                w, h = img.size
        except Exception:  # noqa: BLE001 - unreadable files are judged at decode time
            continue
        total += 1
        small += max(w, h) <= crop_side and abs(w - h) <= 0.1 * max(w, h)
    return total > 0 and small < 0.9 * total


def _photo_params(cands: list[Candidate], cfg: IngestSettings) -> FacesSettings | None:
    """The face stage's settings when the candidates are photos (``images``: photos, or auto and they look so)."""
    photos = cfg.images == "photos" or (cfg.images == "auto" and looks_like_photos([c.file for c in cands]))
    return cfg.faces if photos else None


def _pick(header: list[str], names: tuple[str, ...]) -> int | None:
    return next((header.index(n) for n in names if n in header), None)


def read_label_csv(path: Path | str, image_size: int, cfg: IngestSettings, *, quiet: bool = False) -> SourceResult:
    """Ingest a ``path,label[,split]`` CSV; paths are relative to the CSV's folder (``cfg``: the ingest settings).

    ``path`` may be an object-storage URL: its relative paths are then keys under the CSV's prefix.
    """
    from curate.ingest.remote import fetched, is_url

    if is_url(path):
        with fetched(str(path)) as local:
            return _read_label_csv(local, str(path), _remote_resolver(str(path)), image_size, cfg, quiet=quiet)
    base = Path(path).resolve().parent

    def resolve(rel: str) -> tuple[Path | RemoteFile, bool]:
        file = (base / rel) if not os.path.isabs(rel) else Path(rel)
        return file, file.exists()

    return _read_label_csv(Path(path), Path(path).name, resolve, image_size, cfg, quiet=quiet)


def _remote_resolver(url: str) -> Callable[[str], tuple[Path | RemoteFile, bool]]:
    """``resolve(rel)`` for a CSV at ``url``: keys under its prefix (listed once), absolute local paths as files."""
    from curate.ingest.remote import RemoteFile, is_url, join, list_files, parent, storage_options

    base = parent(url)
    listed: dict[str, RemoteFile] | None = None

    def resolve(rel: str) -> tuple[Path | RemoteFile, bool]:
        nonlocal listed
        if is_url(rel):
            from curate.ingest.remote import exists

            return RemoteFile(rel, storage_options(rel)), exists(rel)
        if os.path.isabs(rel):
            return Path(rel), Path(rel).exists()
        if listed is None:
            listed = {f.url: f for _, f in list_files(base)}
        target = join(base, rel)
        return listed.get(target, RemoteFile(target, storage_options(target))), target in listed

    return resolve


def _read_label_csv(path: Path, name: str, resolve: Callable[[str], tuple[Path | RemoteFile, bool]],
                    image_size: int, cfg: IngestSettings, *, quiet: bool = False) -> SourceResult:
    """Read the CSV at local ``path``; ``resolve(rel)`` -> (the file a row names, whether it exists)."""
    with open_text(path) as fh:
        reader = csv.reader(fh)
        header = [h.strip().lower() for h in next(reader, [])]
        i_path, i_label, i_split = _pick(header, PATH_COLUMNS), _pick(header, LABEL_COLUMNS), _pick(header, SPLIT_COLUMNS)
        if i_path is None or i_label is None:
            raise InputError(f"{path}: header {header[:6]} needs a path column ({'/'.join(PATH_COLUMNS[:3])}) "
                             f"and a label column ({'/'.join(LABEL_COLUMNS[:3])})")
        cands: list[Candidate] = []
        rejects: list[Reject] = []
        seen: dict[str, int] = {}
        read = 0
        for row, fields in enumerate(reader):
            read += 1
            if not fields or all(not f.strip() for f in fields):
                rejects.append(Reject("empty_line", "empty line", source_row=row))
                continue
            if len(fields) <= max(i_path, i_label, i_split or 0):
                rejects.append(Reject("wrong_field_count", f"expected {len(header)} fields, found {len(fields)}",
                                      source_row=row))
                continue
            rel = fields[i_path].strip()
            label = fields[i_label].strip()
            if not rel:
                rejects.append(Reject("missing_path", "missing path", source_row=row))
                continue
            if not label:
                rejects.append(Reject("missing_label", "missing label", source_row=row, source_path=rel))
                continue
            split = None
            if i_split is not None and fields[i_split].strip():
                split = canonical_split(fields[i_split])
                if split is None:
                    rejects.append(Reject("unknown_split", f"unknown split {fields[i_split].strip()[:30]!r}",
                                          source_row=row, source_path=rel))
                    continue
            key = os.path.normpath(rel)
            if key in seen:
                rejects.append(Reject("duplicate_path", f"duplicate path: already listed at row {seen[key]}",
                                      source_row=row, source_path=rel))
                continue
            seen[key] = row
            file, found = resolve(rel)
            if not found:
                rejects.append(Reject("file_not_found", f"file not found: {file}", source_row=row, source_path=rel))
                continue
            cands.append(Candidate(rel, file, label, split, source_row=row))
    return decode_candidates(cands, image_size, max_pixels=cfg.max_pixels, workers=cfg.workers, quiet=quiet,
                             desc=f"ingest {name}", rejects=rejects, read=read - len(cands),
                             photo_params=_photo_params(cands, cfg))
