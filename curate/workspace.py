"""The workspace: one folder per dataset holding the manifest, pixel store and step outputs.

Layout::

    <ws>/workspace.json      curate version, sources, every command run (argv, seed, counts)
    <ws>/manifest.parquet    one row per image (contract columns, see MANIFEST_COLUMNS)
    <ws>/pixels-<id>.u8      uint8 (N, S, S) grey images, row i = manifest row i
    <ws>/rejects.parquet     every rejected row or file with its reason
    <ws>/...                 step outputs (duplicates.parquet, findings.parquet, ...)

``manifest.parquet`` is the commit point: its schema metadata names the pixel file it
belongs to, so replacing it atomically switches manifest and pixels together, and a
killed step leaves the previous state readable.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import secrets
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from curate import __version__
from curate import atomic
from curate.errors import WorkspaceError  # defined in the error tree; importable from here as before
from curate.invocation import current_argv, current_engine

MANIFEST_COLUMNS: tuple[str, ...] = (
    "image_id", "source", "source_row", "source_path", "split", "label", "original_label",
    "width", "height", "channels", "digest",
)
"""Contract columns of manifest.parquet, in order. ``source_format`` follows them."""

REJECT_COLUMNS: tuple[str, ...] = ("source", "source_row", "source_path", "reason_code", "reason")

DEFAULT_WORKSPACE = "./curate-ws"
STORE_CHUNK_BYTES = 32 << 20
"""Bytes of a store block written at a time (a million-row block is never copied whole)."""
DEFAULT_IMAGE_SIZE = 48


def utc_now() -> str:
    """Current UTC time as an ISO-8601 string (seconds)."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def empty_manifest() -> pd.DataFrame:
    """A manifest with no rows and the contract dtypes."""
    return coerce_manifest(pd.DataFrame({c: [] for c in MANIFEST_COLUMNS + ("source_format",)}))


def coerce_manifest(df: pd.DataFrame) -> pd.DataFrame:
    """Give manifest columns their contract dtypes (strings, nullable Int64)."""
    out = df.copy()
    for col in ("image_id", "source", "source_path", "split", "label", "original_label", "digest",
                "source_format", "image_kind"):
        if col in out:
            out[col] = out[col].astype("string")
    for col in ("source_row", "width", "height", "channels"):
        if col in out:
            out[col] = out[col].astype("Int64")
    ordered = [c for c in MANIFEST_COLUMNS + ("source_format", "image_kind") if c in out]
    extra = [c for c in out.columns if c not in ordered]
    return out[ordered + extra].reset_index(drop=True)


def _write_store(path: Path, blocks: Iterator[np.ndarray] | np.ndarray, shape: tuple[int, ...], rows: int) -> None:
    """Write uint8 blocks of ``(k, *shape)`` to ``path`` (fsynced); the row count must be ``rows``."""
    written = 0
    with open(path, "wb") as fh:
        for block in ([blocks] if isinstance(blocks, np.ndarray) else blocks):
            if tuple(block.shape[1:]) != shape:
                raise WorkspaceError(f"store block of shape {block.shape}, expected (k, {', '.join(map(str, shape))})")
            step = max(1, STORE_CHUNK_BYTES // max(1, int(np.prod(shape))))
            for start in range(0, len(block), step):  # a big block (a memory-mapped source) a slice at a time
                part = np.ascontiguousarray(block[start:start + step], dtype=np.uint8)
                fh.write(part.data)
                written += len(part)
                _release_mapped(block)
        fh.flush()
        os.fsync(fh.fileno())
    if written != rows:
        raise WorkspaceError(f"store rows ({written}) do not match manifest rows ({rows})")


def _release_mapped(block: np.ndarray) -> None:
    """Drop the pages of a memory-mapped ``block`` from this process (they stay in the page cache), so
    that copying a mapped file a slice at a time never holds the whole file as resident memory."""
    import mmap

    mapped = getattr(block, "_mmap", None)
    if mapped is not None and hasattr(mapped, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        try:
            mapped.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):
            pass


class Workspace:
    """A dataset workspace folder. Steps read and write here, never the user's files."""

    def __init__(self, root: str | os.PathLike = DEFAULT_WORKSPACE):
        self.root = Path(root).expanduser().resolve()
        self._manifest: pd.DataFrame | None = None
        self._pixels: np.ndarray | None = None
        self._meta: dict[str, str] | None = None

    # ------------------------------------------------------------------ paths
    def path(self, name: str) -> Path:
        """Path of a file inside the workspace."""
        return self.root / name

    @property
    def manifest_path(self) -> Path:
        return self.path("manifest.parquet")

    def exists(self) -> bool:
        """True when the workspace holds a manifest."""
        return self.manifest_path.exists()

    @classmethod
    def open(cls, root: str | os.PathLike = DEFAULT_WORKSPACE) -> "Workspace":
        """Open an existing workspace; a clear error when it has no manifest yet."""
        ws = cls(root)
        if not ws.exists():
            raise WorkspaceError(
                f"{ws.root}: no workspace here (manifest.parquet missing); run `curate ingest SOURCE -w {root}` first")
        return ws

    # ----------------------------------------------------------- state files
    def info(self) -> dict[str, Any]:
        """Contents of workspace.json (empty skeleton when absent)."""
        path = self.path("workspace.json")
        if path.exists():
            return json.loads(path.read_text(encoding="utf-8"))
        return {"curate_version": __version__, "created": utc_now(), "image_size": None, "runs": []}

    def _write_info(self, info: dict[str, Any]) -> None:
        info["curate_version"] = __version__
        atomic.write_json(self.path("workspace.json"), info)

    def record_run(self, command: str, *, argv: list[str] | None = None, seed: int | None = None,
                   counts: dict[str, Any] | None = None, started: str | None = None,
                   options: dict[str, Any] | None = None) -> None:
        """Append one command run (argv, seed, counts, options) to workspace.json."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self.lock():
            info = self.info()
            info.setdefault("runs", []).append({
                "command": command,
                "argv": list(argv if argv is not None else current_argv()),
                "seed": seed,
                "engine": current_engine(),
                "options": options or {},
                "counts": counts or {},
                "started": started,
                "finished": utc_now(),
                "curate_version": __version__,
            })
            self._write_info(info)

    def set_info(self, **fields: Any) -> None:
        """Update top-level fields of workspace.json."""
        self.root.mkdir(parents=True, exist_ok=True)
        info = self.info()
        info.update(fields)
        self._write_info(info)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive advisory lock on the workspace (waits for another writer)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.path(".lock"), "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # ------------------------------------------------------------- manifest
    def _read_meta(self) -> dict[str, str]:
        import pyarrow.parquet as pq

        raw = pq.read_schema(self.manifest_path).metadata or {}
        return {k.decode(): v.decode() for k, v in raw.items() if k.startswith(b"curate.")}

    def manifest(self) -> pd.DataFrame:
        """The manifest (cached; call :meth:`refresh` after another process changed it)."""
        if self._manifest is None:
            if not self.exists():
                return empty_manifest()
            self._manifest = coerce_manifest(pd.read_parquet(self.manifest_path))
            self._meta = self._read_meta()
        return self._manifest

    def refresh(self) -> None:
        """Forget cached manifest and pixels."""
        self._manifest = None
        self._pixels = None
        self._meta = None

    @property
    def image_size(self) -> int:
        """Side of the square grey pixel store (default 48)."""
        if self.exists():
            self.manifest()
            return int(self._meta.get("curate.image_size", DEFAULT_IMAGE_SIZE))
        size = self.info().get("image_size")
        return int(size) if size else DEFAULT_IMAGE_SIZE

    def pixels(self) -> np.ndarray:
        """Read-only uint8 array (N, S, S) of grey images; row i is manifest row i."""
        if self._pixels is None:
            manifest = self.manifest()
            n, size = len(manifest), self.image_size
            if n == 0:
                return np.zeros((0, size, size), np.uint8)
            name = self._meta.get("curate.pixels")
            path = self.path(name) if name else None
            if path is None or not path.exists():
                raise WorkspaceError(f"{self.root}: pixel store {name!r} named by manifest.parquet is missing")
            expected = n * size * size
            if path.stat().st_size != expected:
                raise WorkspaceError(f"{path}: holds {path.stat().st_size} bytes, expected {expected} "
                                     f"for {n} images of {size}x{size}")
            self._pixels = np.memmap(path, dtype=np.uint8, mode="r", shape=(n, size, size))
        return self._pixels

    def colour_crops(self) -> np.ndarray | None:
        """Read-only uint8 (N, R, R, 3) colour aligned face crops, or None.

        Written by the face stage when the workspace holds photos (row i = manifest row i;
        face-crop sources appear as their grey crop, upscaled). None for crop-only workspaces:
        callers then use :meth:`pixels`.
        """
        manifest = self.manifest()
        meta = self._meta or {}
        name, side = meta.get("curate.rgb"), int(meta.get("curate.rgb_size", 0) or 0)
        if not name or not side or len(manifest) == 0:
            return None
        path = self.path(name)
        expected = len(manifest) * side * side * 3
        if not path.exists() or path.stat().st_size != expected:
            raise WorkspaceError(f"{path}: colour crop store missing or of the wrong size (expected {expected} bytes)")
        return np.memmap(path, dtype=np.uint8, mode="r", shape=(len(manifest), side, side, 3))

    def image_kinds(self) -> pd.Series:
        """``crop`` or ``photo`` per manifest row (crop for workspaces made before the face stage)."""
        manifest = self.manifest()
        if "image_kind" not in manifest:
            return pd.Series(["crop"] * len(manifest), dtype="string")
        return manifest["image_kind"].fillna("crop").astype("string").reset_index(drop=True)

    def index_of(self, image_ids: Any) -> np.ndarray:
        """Row positions of ``image_ids`` in the manifest (KeyError naming a missing id)."""
        manifest = self.manifest()
        lookup = pd.Series(np.arange(len(manifest)), index=pd.Index(manifest["image_id"]))
        ids = pd.Index(pd.Series(image_ids, dtype="string"))
        missing = ids.difference(lookup.index)
        if len(missing):
            raise KeyError(f"image ids not in the manifest: {list(missing[:5])}")
        return lookup.loc[ids].to_numpy()

    def commit(self, manifest: pd.DataFrame, pixel_rows: Iterator[np.ndarray] | np.ndarray,
               *, image_size: int, rgb_rows: Iterator[np.ndarray] | None = None, rgb_size: int = 0) -> None:
        """Atomically replace manifest and pixel store (and the colour crop store).

        ``pixel_rows`` yields uint8 arrays (k, S, S) in manifest order; ``rgb_rows``, when
        given, uint8 (k, R, R, 3). The new arrays go to fresh files; the manifest rename is
        the commit point; old store files are removed after.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        manifest = coerce_manifest(manifest)
        if manifest["image_id"].duplicated().any():
            dup = manifest.loc[manifest["image_id"].duplicated(), "image_id"].iloc[0]
            raise WorkspaceError(f"duplicate image_id {dup!r} in manifest")
        token = secrets.token_hex(6)
        name = f"pixels-{token}.u8"
        rgb_name = f"crops-rgb-{token}.u8" if rgb_rows is not None else None
        written: list[Path] = []
        try:
            written.append(self.path(name))
            _write_store(self.path(name), pixel_rows, (image_size, image_size), len(manifest))
            meta = {"curate.pixels": name, "curate.image_size": str(image_size)}
            if rgb_name:
                written.append(self.path(rgb_name))
                _write_store(self.path(rgb_name), rgb_rows, (rgb_size, rgb_size, 3), len(manifest))
                meta.update({"curate.rgb": rgb_name, "curate.rgb_size": str(rgb_size)})
            atomic.write_parquet(self.manifest_path, manifest, metadata=meta)
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        for pattern in ("pixels-*.u8", "crops-rgb-*.u8"):
            for old in self.root.glob(pattern):
                if old.name not in (name, rgb_name):
                    old.unlink(missing_ok=True)
        self.refresh()

    def store_rows(self, rows: np.ndarray | None = None) -> Iterator[np.ndarray]:
        """The grey pixel store (or ``rows`` of it) in blocks, for re-committing."""
        pixels = self.pixels()
        idx = np.arange(len(pixels)) if rows is None else np.asarray(rows)
        for start in range(0, len(idx), 8192):
            yield np.asarray(pixels[idx[start:start + 8192]])

    def update_labels(self, labels: pd.Series) -> None:
        """Set ``label`` for the image ids in ``labels`` (index image_id); pixels untouched.

        ``original_label`` is never changed.
        """
        manifest = self.manifest().copy()
        pos = self.index_of(labels.index)
        manifest.loc[pos, "label"] = pd.Series(labels.to_numpy(), dtype="string").to_numpy()
        meta = dict(self._meta or {})
        atomic.write_parquet(self.manifest_path, coerce_manifest(manifest), metadata=meta)
        self.refresh()

    # ------------------------------------------------------------ originals
    def original_path(self, row: int) -> Path | None:
        """Absolute path of the original image file of manifest row ``row`` (None for CSV pixels)."""
        rec = self.manifest().iloc[int(row)]
        if pd.isna(rec["source_path"]):
            return None
        source = Path(rec["source"])
        base = source if rec["source_format"] == "folder" else source.parent
        return base / rec["source_path"]

    # --------------------------------------------------------- step outputs
    def read_parquet(self, name: str) -> pd.DataFrame | None:
        """A parquet output of the workspace, or None when it does not exist."""
        path = self.path(name)
        return pd.read_parquet(path) if path.exists() else None

    def write_parquet(self, name: str, df: pd.DataFrame) -> Path:
        """Atomically write a parquet output into the workspace."""
        path = self.path(name)
        atomic.write_parquet(path, df)
        return path

    def read_json(self, name: str) -> Any:
        """A JSON output of the workspace, or None when absent."""
        path = self.path(name)
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def write_json(self, name: str, obj: Any) -> Path:
        """Atomically write a JSON output into the workspace."""
        path = self.path(name)
        atomic.write_json(path, obj)
        return path

    def rejects(self) -> pd.DataFrame:
        """All rejected rows and files so far."""
        df = self.read_parquet("rejects.parquet")
        if df is None:
            df = pd.DataFrame({c: pd.Series([], dtype="string") for c in REJECT_COLUMNS})
            df["source_row"] = df["source_row"].astype("Int64")
        return df
