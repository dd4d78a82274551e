"""Reader for the Kaggle FER2013 CSV (``emotion,pixels,Usage``; plain or gzip)."""
from __future__ import annotations

import csv
import gzip
import io
import math
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from curate.errors import InputError
from curate.ingest.decode import pixel_digest, to_store
from curate.ingest.records import Reject, SourceResult
from curate.labels import CLASSES, FER2013_USAGE, canonical_split
from curate.perf import keep_freed_memory
from curate.progress import progress

csv.field_size_limit(1 << 28)
BLOCK = 4096       # rows per block of the streaming reader
PARSE_ROWS = 128    # rows per call of the Arrow-path parser: its temporaries stay in cache (measured: ingest 2.7 s vs 3.7 s at 4096)


def open_text(path: Path) -> io.TextIOBase:
    """Open a CSV (gzip by magic bytes) as text; BOM stripped, newlines left to csv."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    raw = gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="strict", newline="")


def read_header(path: Path) -> list[str]:
    """Lower-cased, stripped header fields of a CSV (plain or gzip)."""
    with open_text(path) as fh:
        first = next(csv.reader(fh), [])
    return [f.strip().lower() for f in first]


CHUNK = 8 << 20


def iter_lines(path: Path, rejects: list[Reject]) -> Iterator[bytes]:
    """Yield the raw lines of a plain or gzip CSV (header included), CR/BOM stripped.

    Streams in chunks; a truncated or corrupt gzip ends with a reject naming the row.
    """
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
        fh.seek(0)
        inflater = zlib.decompressobj(wbits=31) if gz else None
        rest = b""
        first = True
        lines_out = 0
        while True:
            raw = fh.read(CHUNK)
            if inflater is not None:
                try:
                    data = inflater.decompress(raw) if raw else inflater.flush()
                    while inflater.eof and inflater.unused_data:  # multi-member gzip
                        tail = inflater.unused_data
                        inflater = zlib.decompressobj(wbits=31)
                        data += inflater.decompress(tail)
                except zlib.error as exc:
                    rejects.append(Reject("truncated_gzip", f"corrupt gzip after data row {lines_out - 2}: {exc}; "
                                                            "rows after this point are lost",
                                          source_row=max(lines_out - 1, 0)))
                    return
            else:
                data = raw
            if first:
                data = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
                first = False
            data = rest + data
            parts = data.split(b"\n")
            rest = parts.pop()
            for line in parts:
                lines_out += 1
                yield line[:-1] if line.endswith(b"\r") else line
            if not raw:
                break
        if inflater is not None and not inflater.eof:
            rejects.append(Reject("truncated_gzip", "truncated gzip: the file ends before its end-of-stream "
                                                    f"marker; data row {max(lines_out - 1, 0)} is incomplete "
                                                    "and rows after it are lost", source_row=max(lines_out - 1, 0)))
            return
        if rest.strip():
            yield rest[:-1] if rest.endswith(b"\r") else rest


def _split_fields(line: bytes) -> list[bytes]:
    if b'"' not in line:
        return line.split(b",")
    text = line.decode("utf-8", errors="replace")
    return [f.encode() for f in next(csv.reader([text]), [])]


def _diagnose_pixels(text: str, expected: int) -> tuple[str, str] | None:
    """Reason a pixel string is bad (slow path), or None when it is fine despite odd spacing."""
    tokens = text.split()
    if not tokens:
        return "wrong_pixel_count", f"no pixel values (expected {expected})"
    for tok in tokens:
        if not (tok.isascii() and tok.isdigit()):
            try:
                value = float(tok)
            except ValueError:
                return "non_numeric_pixel", f"non-numeric pixel value {tok[:20]!r}"
            return "pixel_out_of_range", f"pixel value {tok[:20]!r} is not an integer in 0-255 (value {value:g})"
        if int(tok) > 255:
            return "pixel_out_of_range", f"pixel value {int(tok)} out of range 0-255"
    if len(tokens) != expected:
        return "wrong_pixel_count", f"{len(tokens)} pixel values, expected {expected}"
    return None


def parse_pixel_block(texts: list[bytes], expected: int) -> np.ndarray | None:
    """Parse rows of ``expected`` space-separated 0-255 integers at once (vectorised).

    Returns uint8 (rows, expected), or None when any row is irregular (caller diagnoses rows).
    """
    if any(t.count(b" ") != expected - 1 for t in texts):
        return None
    buf = np.frombuffer(b" ".join(texts), dtype=np.uint8)
    is_sep = buf == 32
    digit = buf - np.uint8(48)
    if not np.all(is_sep | (digit <= 9)):
        return None
    sep = np.flatnonzero(is_sep)
    starts = np.empty(len(sep) + 1, dtype=np.int64)
    starts[0], starts[1:] = 0, sep + 1
    lengths = np.empty_like(starts)
    lengths[:-1], lengths[-1] = sep - starts[:-1], len(buf) - starts[-1]
    if lengths.min() < 1 or lengths.max() > 3:
        return None
    last = len(buf) - 1
    value = digit[starts].astype(np.uint16)
    two = lengths >= 2
    value[two] = value[two] * 10 + digit[np.minimum(starts[two] + 1, last)]
    three = lengths == 3
    value[three] = value[three] * 10 + digit[np.minimum(starts[three] + 2, last)]
    if value.max(initial=0) > 255:
        return None
    return value.astype(np.uint8).reshape(len(texts), expected)


def _read_streaming(path: Path, image_size: int, quiet: bool = False,
                    expected_pixels: int | None = None, spill_dir: Path | None = None) -> SourceResult:
    """Robust line-by-line reader (truncated gzip, bad encodings); slower than the Arrow path.
    ``spill_dir``: as :func:`read_fer2013_csv`."""
    rejects: list[Reject] = []
    lines = iter_lines(path, rejects)
    header_line = next(lines, b"")
    header = [f.decode("utf-8", errors="replace").strip().lower() for f in _split_fields(header_line)]
    if "emotion" not in header or "pixels" not in header:
        raise InputError(f"{path}: header {header[:6]} lacks 'emotion' and 'pixels' (not a fer2013 CSV)")
    i_emotion, i_pixels = header.index("emotion"), header.index("pixels")
    i_usage = header.index("usage") if "usage" in header else None
    meta: list[tuple[int, str, str, str | None]] = []
    blocks = PixelSink(None, spill_dir)
    pending: list[bytes] = []
    pending_meta: list[tuple[int, str, str, str | None]] = []
    side = int(math.isqrt(expected_pixels)) if expected_pixels else None
    read = 0
    bar = progress(desc=f"ingest {path.name}", quiet=quiet, unit="rows")
    for row, line in enumerate(lines):
        read += 1
        if row % 1024 == 0:
            bar.update(1024 if row else 1)
        fields = _split_fields(line)
        checked = _check_fields(fields, row, header, i_emotion, i_usage, rejects)
        if checked is None:
            continue
        code, split = checked
        text = fields[i_pixels].strip()
        if side is None:
            count = len(text.split())
            root = math.isqrt(count)
            if root * root != count or count == 0:
                rejects.append(Reject("wrong_pixel_count", f"{count} pixel values is not a square image "
                                                           "(expected 2304 = 48x48)", source_row=row))
                continue
            side, expected_pixels = root, count
        pending.append(text)
        pending_meta.append((row, CLASSES[int(code)], code, split))
        if len(pending) >= BLOCK:
            _flush(pending, pending_meta, expected_pixels, side, blocks, meta, rejects)
    _flush(pending, pending_meta, expected_pixels, side, blocks, meta, rejects)
    bar.close()

    return _finish(meta, blocks, rejects, read, side, image_size)


def _usage_split(usage: str | None) -> str | None:
    """The split a Usage value names (FER2013's Training/PublicTest/PrivateTest or a split name), else None."""
    return FER2013_USAGE.get(usage) or canonical_split(usage) if usage else None


def _usage_reject(usage: str | None, row: int) -> Reject:
    """The reject of a row whose Usage is missing or names no split."""
    if not usage:
        return Reject("missing_usage", "missing Usage", source_row=row)
    return Reject("unknown_usage", f"unknown Usage {usage[:30]!r} (expected Training, PublicTest or PrivateTest)",
                  source_row=row)


def _emotion_reject(code: str, row: int) -> Reject:
    return Reject("unknown_emotion", f"unknown emotion code {code[:20]!r} (expected 0-6)", source_row=row)


def _field_count_reject(header: list[str], found: int, row: int) -> Reject:
    return Reject("wrong_field_count", f"expected {len(header)} fields ({','.join(header)}), found {found}",
                  source_row=row)


def _check_fields(fields: list[bytes], row: int, header: list[str], i_emotion: int, i_usage: int | None,
                  rejects: list[Reject]) -> tuple[str, str | None] | None:
    """A streamed row's emotion code and split; None (and its reject in ``rejects``) for an empty line,
    a wrong field count, an unknown emotion code or a missing/unknown Usage."""
    if all(not f.strip() for f in fields):
        rejects.append(Reject("empty_line", "empty line", source_row=row))
        return None
    if len(fields) != len(header):
        rejects.append(_field_count_reject(header, len(fields), row))
        return None
    code = fields[i_emotion].strip().decode("utf-8", errors="replace")
    if not (code.isascii() and code.isdigit() and int(code) < len(CLASSES)):
        rejects.append(_emotion_reject(code, row))
        return None
    if i_usage is None:
        return code, None
    usage = fields[i_usage].strip().decode("utf-8", errors="replace")
    split = _usage_split(usage)
    if split is None:
        rejects.append(_usage_reject(usage, row))
        return None
    return code, split


def _flush(pending: list[bytes], pending_meta: list[tuple[int, str, str, str | None]], expected_pixels: int,
           side: int, blocks: "PixelSink", meta: list[tuple[int, str, str, str | None]],
           rejects: list[Reject]) -> None:
    """Parse the pending rows' pixels into ``blocks`` (their rows into ``meta``; bad rows into ``rejects``)."""
    if not pending:
        return
    values = parse_pixel_block(pending, expected_pixels)
    if values is not None:
        blocks.append(values.reshape(-1, side, side))
        meta.extend(pending_meta)
    else:
        good_rows = []
        for text, m in zip(pending, pending_meta):
            problem = _diagnose_pixels(text.decode("ascii", errors="replace"), expected_pixels)
            if problem is None:
                good_rows.append(np.asarray(text.split(), dtype=np.uint8))
                meta.append(m)
            else:
                rejects.append(Reject(problem[0], problem[1], source_row=m[0]))
        if good_rows:
            blocks.append(np.stack(good_rows).reshape(-1, side, side))
    pending.clear()
    pending_meta.clear()


class PixelSink:
    """The parsed uint8 pixel blocks of one source, in order: kept in memory, or (with ``spill_dir``)
    written as they come to an unnamed temporary file there (``O_TMPFILE``: it never shows in the
    folder and vanishes with the process), read back as a read-only memory map."""

    def __init__(self, side: int | None, spill_dir: Path | None = None):
        import tempfile

        self.side = side
        self.rows = 0
        self.blocks: list[np.ndarray] = []
        self.digests: list[str] = []
        self.file = tempfile.TemporaryFile(dir=spill_dir) if spill_dir is not None else None

    def append(self, block: np.ndarray) -> None:
        """Add uint8 images (k, side, side) after those already held (their digests computed now, while
        they are in memory)."""
        block = np.ascontiguousarray(block, dtype=np.uint8)
        self.side = self.side or block.shape[1]
        if block.shape[1:] != (self.side, self.side):
            raise ValueError(f"pixel block of shape {block.shape}, expected (k, {self.side}, {self.side})")
        self.digests.extend(pixel_digest(a) for a in block)
        if self.file is not None:
            self.file.write(block.data)
        else:
            self.blocks.append(block)
        self.rows += len(block)

    def array(self, side: int) -> np.ndarray:
        """Every image held, uint8 (rows, side, side) (``side`` when none was added)."""
        side = self.side or side
        if self.rows == 0:
            return np.zeros((0, side, side), np.uint8)
        if self.file is None:
            return np.concatenate(self.blocks)
        self.file.flush()
        return np.memmap(self.file, dtype=np.uint8, mode="r", shape=(self.rows, side, side))


def _finish(meta: list[tuple[int, str, str, str | None]], blocks: PixelSink, rejects: list[Reject],
            read: int, side: int | None, image_size: int) -> SourceResult:
    """Assemble the line reader's kept rows (``meta``: source row, label, original label, split)."""
    return _assemble(np.array([m[0] for m in meta], np.int64), np.array([m[1] for m in meta], dtype=object),
                     None, [m[3] for m in meta], blocks, rejects, read, side, image_size,
                     original=[m[2] for m in meta])


def _assemble(source_rows: np.ndarray, codes: np.ndarray, code_names: list[str] | None, splits: list[str | None],
              sink: PixelSink, rejects: list[Reject], read: int, side: int | None, image_size: int, *,
              original: list[str] | None = None) -> SourceResult:
    """Kept rows, store-size pixels and sorted rejects. ``codes``: emotion code per row (ints with
    ``code_names`` their text), or the labels themselves with ``original`` the texts as found."""
    native = sink.array(side or image_size)
    digests = sink.digests
    if native.shape[1:] == (image_size, image_size):
        store = native
    else:
        from PIL import Image

        store = np.stack([to_store(Image.fromarray(a, mode="L"), image_size) for a in native]) if len(native) \
            else np.zeros((0, image_size, image_size), np.uint8)
    n = len(source_rows)
    if code_names is not None:
        labels = np.array(CLASSES, dtype=object)[codes] if n else np.zeros(0, object)
        original = np.array(code_names, dtype=object)[codes] if n else np.zeros(0, object)
    else:
        labels = codes
    rows = pd.DataFrame({
        "source_row": pd.array(source_rows, dtype="Int64"),
        "source_path": pd.array([None] * n, dtype="string"),
        "split": pd.array(splits, dtype="string"),
        "label": pd.array(labels, dtype="string"),
        "original_label": pd.array(original, dtype="string"),
        "width": pd.array(np.full(n, native.shape[2]), dtype="Int64"),
        "height": pd.array(np.full(n, native.shape[1]), dtype="Int64"),
        "channels": pd.array(np.ones(n, np.int64), dtype="Int64"),
        "digest": pd.array(digests, dtype="string"),
    })
    rejects.sort(key=lambda r: (r.source_row if r.source_row is not None else -1))
    return SourceResult(rows=rows, pixels=store, rejects=rejects, read=read + sum(
        1 for r in rejects if r.code == "truncated_gzip"))


_VALID = np.zeros(256, dtype=bool)
_VALID[[32, *range(48, 58)]] = True


def parse_pixel_array(chunk, expected: int) -> np.ndarray | None:
    """Parse an Arrow string array of pixel rows straight from its buffers (vectorised).

    Each row must hold ``expected`` single-space-separated integers 0-255; returns uint8
    (rows, expected), or None when any row is irregular (the caller then diagnoses rows).
    """
    n = len(chunk)
    if n == 0 or chunk.null_count:
        return None
    offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int32)[chunk.offset: chunk.offset + n + 1]
    buf = np.frombuffer(chunk.buffers()[2], dtype=np.uint8)[offsets[0]: offsets[-1]]
    offsets = offsets - offsets[0]
    if np.any(np.diff(offsets) == 0) or not _VALID[buf].all():
        return None
    sep = np.flatnonzero(buf == 32).astype(np.int32)
    if len(sep) != n * (expected - 1) or np.any(np.diff(np.searchsorted(sep, offsets)) != expected - 1):
        return None
    sep = sep.reshape(n, expected - 1)
    last = np.empty((n, expected), dtype=np.int32)      # index of each token's last digit
    last[:, :-1], last[:, -1] = sep - 1, offsets[1:] - 1
    lengths = np.empty((n, expected), dtype=np.int32)
    lengths[:, 0] = sep[:, 0] - offsets[:-1]
    lengths[:, 1:-1] = np.diff(sep, axis=1) - 1
    lengths[:, -1] = offsets[1:] - sep[:, -1] - 1
    if lengths.min() < 1 or lengths.max() > 3:
        return None
    digit = (buf - np.uint8(48)).astype(np.uint16)
    value = np.take(digit, last)
    value += np.take(digit, last - 1) * np.uint16(10) * (lengths >= 2)
    value += np.take(digit, last - 2) * np.uint16(100) * (lengths >= 3)
    if value.max(initial=0) > 255:
        return None
    return value.astype(np.uint8)


def _arrow_labels(table, names: list[str], header: list[str], rows: np.ndarray,
                  rejects: list[Reject]) -> tuple[np.ndarray, list[str], list[str | None]]:
    """The Arrow table's emotion codes and splits: which rows are valid so far, each row's code and split;
    an unknown emotion code or a missing/unknown Usage adds its reject to ``rejects``."""
    codes = pd.Series(table.column(names[header.index("emotion")]).to_pylist(), dtype="string").str.strip()
    valid = codes.str.fullmatch(r"[0-6]").fillna(False).to_numpy(dtype=bool)
    for j in np.flatnonzero(~valid):
        rejects.append(_emotion_reject(str(codes.iloc[j]), int(rows[j])))
    splits = pd.Series([None] * table.num_rows, dtype="string")
    if "usage" in header:
        usage = pd.Series(table.column(names[header.index("usage")]).to_pylist(), dtype="string").str.strip()
        splits = usage.map(_usage_split).astype("string")
        for j in np.flatnonzero(valid & splits.isna().to_numpy()):
            rejects.append(_usage_reject(usage.iloc[j], int(rows[j])))
        valid &= splits.notna().to_numpy()
    return valid, codes.fillna("").tolist(), [None if pd.isna(s) else s for s in splits.tolist()]


def _read_arrow(path: Path, image_size: int, quiet: bool, spill_dir: Path | None = None) -> SourceResult | None:
    """Fast path: Arrow's streaming CSV reader plus buffer-level pixel parsing, one record batch at a time.

    Memory stays flat whatever the file's size: each batch of rows (16 MB of text) is parsed and
    its pixels go to a :class:`PixelSink` (with ``spill_dir``, an unnamed temporary file there,
    memory-mapped at the end) before the next batch is read; the whole table is never held.
    Returns None when Arrow cannot read the file (truncated gzip, bad encoding, ...) or meets a row
    it cannot parse (its streaming reader cannot number it), so the caller falls back to the
    line reader, which reports those rows precisely.
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv

    raw_header = next(iter_lines(path, []), b"")
    names = [f.decode("utf-8", errors="replace").strip() for f in _split_fields(raw_header)]
    header = [n.lower() for n in names]
    if "emotion" not in header or "pixels" not in header or len(set(header)) != len(header):
        return None
    invalid: list[int | None] = []

    def on_invalid(row) -> str:
        invalid.append(row.number)
        return "skip"

    arrow_errors = (pa.ArrowInvalid, OSError, EOFError, UnicodeDecodeError)
    try:
        reader = pcsv.open_csv(
            path,
            read_options=pcsv.ReadOptions(column_names=names, skip_rows=1, block_size=16 << 20),
            parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid, ignore_empty_lines=False),
            convert_options=pcsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                strings_can_be_null=False, quoted_strings_can_be_null=False))
    except arrow_errors:
        return None
    expected, side = 48 * 48, 48
    rejects: list[Reject] = []
    sink = PixelSink(side, spill_dir)
    kept_rows: list[np.ndarray] = []
    kept_codes: list[np.ndarray] = []
    kept_splits: list[str | None] = []
    start = 0
    bar = progress(desc=f"ingest {path.name}", quiet=quiet, unit="rows")
    keep_freed_memory()
    with ThreadPoolExecutor(max_workers=2) as pool:  # numpy releases the GIL while parsing
        batches = iter(reader)
        while True:
            try:
                batch = next(batches, None)
            except arrow_errors:
                return None
            if invalid:  # a row of the wrong shape: Arrow's streaming reader cannot number it
                return None
            if batch is None:
                break
            n = batch.num_rows
            rows = np.arange(start, start + n, dtype=np.int64)
            valid, code_list, split_list = _arrow_labels(batch, names, header, rows, rejects)
            pixels = batch.column(names[header.index("pixels")])
            firsts = list(range(0, n, PARSE_ROWS))
            parts = [pixels.slice(s, PARSE_ROWS) for s in firsts]
            for part, first, values in zip(parts, firsts, pool.map(lambda p: parse_pixel_array(p, expected), parts)):
                idx = np.arange(first, first + len(part))
                keep = valid[idx].copy()
                if values is None:
                    values = _diagnose_part(part, keep, rows[idx], expected, rejects)
                sink.append(values[keep].reshape(-1, side, side))
                kept = idx[keep]
                kept_rows.append(rows[kept])
                kept_codes.append(np.array([int(code_list[j]) for j in kept], np.int64))
                kept_splits.extend(split_list[j] for j in kept)
            bar.update(n)
            start += n
    bar.close()
    source_rows = np.concatenate(kept_rows) if kept_rows else np.zeros(0, np.int64)
    codes = np.concatenate(kept_codes) if kept_codes else np.zeros(0, np.int64)
    return _assemble(source_rows, codes, [str(c) for c in range(len(CLASSES))], kept_splits, sink, rejects, start,
                     side, image_size)


def _diagnose_part(part, keep: np.ndarray, rows: np.ndarray, expected: int, rejects: list[Reject]) -> np.ndarray:
    """Pixels of an irregular part row by row; a row whose pixels are bad gets its reject and leaves ``keep``."""
    texts = part.to_pylist()
    values = np.zeros((len(part), expected), np.uint8)
    for j, text in enumerate(texts):
        if not keep[j]:
            continue
        problem = _diagnose_pixels(text or "", expected)
        if problem is None:
            values[j] = np.asarray(text.split(), dtype=np.uint8)
        else:
            keep[j] = False
            rejects.append(Reject(problem[0], problem[1], source_row=int(rows[j])))
    return values


def read_fer2013_csv(path: Path, image_size: int, quiet: bool = False, spill_dir: Path | None = None) -> SourceResult:
    """Parse a Kaggle FER2013 CSV; every bad row becomes a :class:`Reject`, the rest is kept.

    Uses the Arrow fast path for 48x48 rows and falls back to the line reader for files
    Arrow cannot read (truncated gzip, invalid UTF-8, rows of the wrong shape) or other image sizes.
    With ``spill_dir`` the parsed pixels go to an unnamed temporary file there and ``pixels`` is a
    read-only memory map of it (a million rows: 2.3 GB on disk, not in memory); without, an array.
    """
    result = _read_arrow(path, image_size, quiet, spill_dir)
    return result if result is not None else _read_streaming(path, image_size, quiet, spill_dir=spill_dir)


def read_pixel_row(path: Path, source_row: int, side: int) -> np.ndarray:
    """The original pixels of one data row (used for originals of a resized workspace)."""
    header = read_header(path)
    i_pixels = header.index("pixels")
    lines = iter_lines(path, [])
    next(lines, None)
    for row, line in enumerate(lines):
        if row == source_row:
            return np.asarray(_split_fields(line)[i_pixels].split(), dtype=np.uint8).reshape(side, side)
    raise KeyError(f"{path}: no data row {source_row}")
