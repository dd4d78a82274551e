"""Helpers of the engine tests: a workspace's outputs as comparable digests, photo subsets, free ports."""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import socket
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SHARED_SCRAPED = Path(__file__).resolve().parents[2] / "shared" / "data" / "scraped" / "angry-happy-sad"

VOLATILE_COLUMNS = {"face_images.parquet": ["seconds"]}
"""Columns that record how long something took (they differ between any two runs)."""
VOLATILE_KEYS = {"dedupe_summary.json": ["timings"]}
OUTPUT_TABLES = ("manifest.parquet", "rejects.parquet", "faces.parquet", "face_images.parquet",
                 "photo_features.parquet", "text_boxes.parquet", "duplicates.parquet", "duplicate_pairs.parquet",
                 "findings.parquet")


def table_digest(path: Path, drop: list[str] | None = None) -> str:
    """sha256 of a parquet table's data (Arrow IPC bytes of its columns; the schema metadata, which names
    a commit's random pixel-file token, is left out)."""
    table = pq.read_table(path)
    table = table.drop_columns([c for c in drop or [] if c in table.column_names]).replace_schema_metadata(None)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table.combine_chunks())
    return hashlib.sha256(sink.getvalue()).hexdigest()


def workspace_digests(root: Path) -> dict[str, str]:
    """Every output of ingest / dedupe / audit as a digest: tables (less timing columns), the pixel and
    colour-crop stores (bytes), JSON summaries (less timings)."""
    root = Path(root)
    out: dict[str, str] = {}
    for name in OUTPUT_TABLES:
        if (root / name).exists():
            out[name] = table_digest(root / name, VOLATILE_COLUMNS.get(name))
    for pattern in ("pixels-*.u8", "crops-rgb-*.u8"):
        for path in root.glob(pattern):
            out[pattern] = hashlib.sha256(path.read_bytes()).hexdigest()
    for name, keys in VOLATILE_KEYS.items():
        if (root / name).exists():
            data = json.loads((root / name).read_text())
            for key in keys:
                data.pop(key, None)
            out[name] = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    return out


def differences(a: Path, b: Path) -> list[str]:
    """Outputs that differ between workspaces ``a`` and ``b`` (with the first differing rows of a table)."""
    da, db = workspace_digests(a), workspace_digests(b)
    problems = [f"{k}: only in {'first' if k in da else 'second'}" for k in sorted(set(da) ^ set(db))]
    for key in sorted(set(da) & set(db)):
        if da[key] != db[key]:
            detail = ""
            if key.endswith(".parquet"):
                ta, tb = pd.read_parquet(Path(a) / key), pd.read_parquet(Path(b) / key)
                if ta.shape != tb.shape:
                    detail = f" shapes {ta.shape} vs {tb.shape}"
                else:
                    cols = [c for c in ta.columns if not ta[c].astype(str).equals(tb[c].astype(str))]
                    detail = f" columns {cols}"
            problems.append(f"{key} differs{detail}")
    return problems


def photo_subset(dest: Path, n: int = 50, src: Path = SHARED_SCRAPED) -> Path:
    """``n`` photos of ``src`` spread over its sorted files, copied under ``dest`` with their folders."""
    files = sorted(p for p in src.rglob("*") if p.is_file())
    step = len(files) / n
    for i in range(n):
        f = files[int(i * step)]
        target = dest / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

