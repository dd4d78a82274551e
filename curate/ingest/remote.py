"""Sources the whole cluster can read: object-storage URLs (``s3://bucket/prefix/``) through fsspec.

A local path is read as before (on a cluster it must be a shared filesystem path that every
node mounts at the same place). A URL (``s3://``, or any other fsspec protocol whose package is
installed: ``s3fs`` is the ``curate[s3]`` extra) is listed and read through fsspec:

- a prefix (``s3://bucket/data/``) is an image folder: every object under it, sorted,
  ``source_path`` = the key relative to the prefix;
- an object ending ``.csv`` / ``.csv.gz`` is a FER2013 CSV or a ``path,label[,split]`` CSV whose
  relative paths are keys relative to the CSV's own prefix.

The manifest records the URL as ``source``. Image files are fetched where they are decoded
(the worker, on a cluster), each into a temporary file that the unchanged decoder reads.
S3-compatible servers (MinIO, Ceph, moto in the tests): the endpoint comes from
``CURATE_S3_ENDPOINT_URL``, else ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``; credentials
the usual AWS way (environment, profile, instance role).
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from curate.errors import CurateError

ENDPOINT_VARS = ("CURATE_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(source: Any) -> bool:
    """True for ``scheme://...`` strings other than ``file://`` (those are local paths)."""
    return isinstance(source, str) and bool(_URL.match(source)) and not source.lower().startswith("file://")


def canonical_url(url: str) -> str:
    """The URL without trailing slashes (``s3://bucket/prefix/`` -> ``s3://bucket/prefix``)."""
    return url.rstrip("/") if not url.endswith("://") else url


def storage_options(url: str) -> dict[str, Any]:
    """fsspec options for ``url``: the S3 endpoint override from the environment, when set."""
    if url.lower().startswith(("s3://", "s3a://")):
        endpoint = next((os.environ[v].strip() for v in ENDPOINT_VARS if os.environ.get(v, "").strip()), None)
        if endpoint:
            return {"client_kwargs": {"endpoint_url": endpoint}}
    return {}


def filesystem(url: str, options: dict[str, Any] | None = None):
    """``(fsspec filesystem, path inside it)`` of ``url``; a CurateError when its package is missing."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(url, **(storage_options(url) if options is None else options))
    except ImportError as exc:
        raise CurateError(f"{url}: reading this URL needs an fsspec backend that is not installed ({exc}); "
                          "for s3:// install 'curate[s3]' (s3fs)", exit_code=2) from None


@dataclass
class RemoteFile:
    """One object of a URL source: where it is and how to reach it (picklable: workers fetch it)."""

    url: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return PurePosixPath(self.url).name

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.url).suffix

    def open(self):
        fs, path = filesystem(self.url, self.options)
        return fs.open(path, "rb")

    def read_bytes(self) -> bytes:
        fs, path = filesystem(self.url, self.options)
        return fs.cat_file(path)

    def __str__(self) -> str:
        return self.url


@contextlib.contextmanager
def local_copy(file: Path | RemoteFile | str) -> Iterator[Path]:
    """A local path holding ``file``: the path itself, or a temporary copy of a remote object
    (removed on exit). A remote object that cannot be read raises OSError."""
    if not isinstance(file, RemoteFile):
        yield Path(file)
        return
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - network, permissions, a missing bucket
        raise OSError(f"cannot read {file.url}: {type(exc).__name__}: {exc}") from None
    fd, name = tempfile.mkstemp(prefix="curate-", suffix=file.suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def is_folder(url: str) -> bool:
    """True when ``url`` is a prefix holding objects (an image folder)."""
    fs, path = filesystem(url)
    try:
        return bool(fs.isdir(path))
    except FileNotFoundError:
        return False


def exists(url: str) -> bool:
    fs, path = filesystem(url)
    return bool(fs.exists(path))


def list_files(url: str) -> list[tuple[str, RemoteFile]]:
    """Every object under the prefix ``url`` as ``(key relative to the prefix, RemoteFile)``, sorted;
    objects inside hidden folders (a part starting with ".") are left out, as for local folders."""
    options = storage_options(url)
    fs, root = filesystem(url, options)
    root = root.rstrip("/")
    protocol = url.split("://", 1)[0]
    out = []
    for key in fs.find(root, withdirs=False, detail=False):
        rel = key[len(root):].lstrip("/") if key.startswith(root) else key
        parts = rel.split("/")
        if not rel or any(p.startswith(".") for p in parts[:-1]):
            continue
        out.append((rel, RemoteFile(f"{protocol}://{key}", options)))
    return sorted(out, key=lambda t: t[0])


def join(base: str, rel: str) -> str:
    """``base`` URL (a prefix) joined with a relative key (``..`` and ``.`` resolved)."""
    parts: list[str] = []
    for part in rel.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return canonical_url(base) + "/" + "/".join(parts)


def parent(url: str) -> str:
    """The prefix holding the object ``url``."""
    return canonical_url(url).rsplit("/", 1)[0]


def name_of(url: str) -> str:
    """The last part of ``url`` (the folder or file name)."""
    return canonical_url(url).rsplit("/", 1)[-1]


@contextlib.contextmanager
def fetched(url: str) -> Iterator[Path]:
    """A local copy of the object ``url`` (a CSV source) under its own name in a temporary folder,
    removed on exit (messages that name the file name the same file as the URL)."""
    url = canonical_url(url)
    try:
        data = RemoteFile(url, storage_options(url)).read_bytes()
    except FileNotFoundError:
        raise CurateError(f"{url}: no such object or prefix") from None
    with tempfile.TemporaryDirectory(prefix="curate-src-") as folder:
        path = Path(folder) / (name_of(url) or "source")
        path.write_bytes(data)
        yield path
