"""Ingest benchmark: FER2013 CSV vs a bare ``pandas.read_csv`` in the same run, plus folder layout."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from curate.atomic import write_text
from curate.workspace import Workspace

PUBLISHED = {"angry": 4953, "disgust": 547, "fear": 5121, "happy": 8989, "sad": 6077, "surprise": 4002, "neutral": 6198}

_CHILD = """
import json, resource, sys, time
t = time.perf_counter()
{body}
print(json.dumps({{"seconds": time.perf_counter() - t,
                   "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def _child(body: str) -> dict[str, Any]:
    """Run ``body`` in a fresh interpreter; its wall time and own peak RSS."""
    env = dict(os.environ, CURATE_QUIET="1")
    out = subprocess.run([sys.executable, "-c", _CHILD.format(body=body)], capture_output=True, text=True,
                         env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _load() -> str:
    return os.popen("cat /proc/loadavg").read().split()[0] if os.path.exists("/proc/loadavg") else "?"


def run_ingest_benchmark(csv_path: Path, folders_tar: Path | None, report: Path, repeats: int = 3) -> dict[str, Any]:
    """Time pandas.read_csv and curate's ingest alternately ``repeats`` times; check counts."""
    work = Path(tempfile.mkdtemp(prefix="curate-bench-ingest-"))
    try:
        rows = []
        for i in range(repeats):
            pandas = _child(f"import pandas as pd; pd.read_csv({str(csv_path)!r})")
            ws_dir = work / f"ws{i}"
            ours = _child("from curate.ingest.api import ingest\nfrom curate.workspace import Workspace\n"
                          f"s = ingest(Workspace({str(ws_dir)!r}), [{str(csv_path)!r}], quiet=True)")
            rows.append({"pandas_s": pandas["seconds"], "curate_s": ours["seconds"], "pandas_peak_mb": pandas["peak_mb"],
                         "curate_peak_mb": ours["peak_mb"], "load": _load()})
            if i < repeats - 1:
                shutil.rmtree(ws_dir)
        ws = Workspace.open(work / f"ws{repeats - 1}")
        m = ws.manifest()
        counts = m["label"].value_counts().to_dict()
        result: dict[str, Any] = {"csv": str(csv_path), "runs": rows, "images": len(m), "rejects": len(ws.rejects()),
                                  "counts": {k: int(counts.get(k, 0)) for k in PUBLISHED},
                                  "counts_match": all(int(counts.get(k, 0)) == v for k, v in PUBLISHED.items()),
                                  "splits": {k: int(v) for k, v in m["split"].value_counts().items()}}
        best = min(rows, key=lambda r: r["curate_s"] / r["pandas_s"])
        result["ratio_median"] = sorted(r["curate_s"] / r["pandas_s"] for r in rows)[len(rows) // 2]
        result["ratio_best"] = best["curate_s"] / best["pandas_s"]
        result["peak_mb_max"] = max(r["curate_peak_mb"] for r in rows)
        if folders_tar is not None and folders_tar.exists():
            with tarfile.open(folders_tar) as tar:
                tar.extractall(work / "folders", filter="data")
            folder = _child("from curate.ingest.api import ingest\nfrom curate.workspace import Workspace\n"
                            f"s = ingest(Workspace({str(work / 'fws')!r}), [{str(work / 'folders')!r}], quiet=True)")
            fws = Workspace.open(work / "fws")
            fc = fws.manifest()["label"].value_counts().to_dict()
            result["folder"] = {"seconds": folder["seconds"], "peak_mb": folder["peak_mb"], "images": len(fws.manifest()),
                                "rejects": len(fws.rejects()), "counts": {k: int(fc.get(k, 0)) for k in PUBLISHED},
                                "counts_match": all(int(fc.get(k, 0)) == v for k, v in PUBLISHED.items()),
                                "splits": {k: int(v) for k, v in fws.manifest()["split"].value_counts().items()}}
        write_text(report, render_report(result))
        result["report"] = str(report)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def render_report(r: dict[str, Any]) -> str:
    """Markdown report of the ingest benchmark."""
    lines = ["# Ingest benchmark (FER2013)", "",
             "Produced by `curate run pipelines/bench_ingest.yaml` (the `ingest-bench` step), which runs",
             "`pandas.read_csv` and `curate ingest` alternately in fresh interpreters on the same file and",
             "measures each one's wall time and peak resident memory.", "",
             f"Source: `{r['csv']}`", "",
             "| run | pandas.read_csv (s) | curate ingest (s) | ratio | curate peak RSS (MB) | load avg |",
             "|---|---|---|---|---|---|"]
    for i, row in enumerate(r["runs"], 1):
        lines.append(f"| {i} | {row['pandas_s']:.2f} | {row['curate_s']:.2f} | {row['curate_s'] / row['pandas_s']:.2f} | "
                     f"{row['curate_peak_mb']:.0f} | {row['load']} |")
    lines += ["", f"- median ratio curate/pandas: **{r['ratio_median']:.2f}x** (target <= 2x); peak memory "
                  f"**{r['peak_mb_max']:.0f} MB** (target < 2 GB)",
              f"- images: {r['images']:,}, rejects: {r['rejects']}, splits: {r['splits']}",
              f"- class counts match the published ones: **{r['counts_match']}**", "",
              "| class | published | ingested (CSV) |" + (" ingested (folders) |" if "folder" in r else ""),
              "|---|---|---|" + ("---|" if "folder" in r else "")]
    for k, v in PUBLISHED.items():
        lines.append(f"| {k} | {v:,} | {r['counts'][k]:,} |" + (f" {r['folder']['counts'][k]:,} |" if "folder" in r else ""))
    if "folder" in r:
        f = r["folder"]
        lines += ["", f"Folder layout (`fer2013-folders.tar.gz` extracted): {f['images']:,} images, {f['rejects']} rejects, "
                      f"{f['seconds']:.1f} s, peak {f['peak_mb']:.0f} MB, splits {f['splits']}, counts match: "
                      f"**{f['counts_match']}**.",
                  "The folder release has only train/ and test/ folders; the file-name prefixes (Training_, PublicTest_,"
                  " PrivateTest_) give back the CSV's three Usages (ingest option `usage_from_filename`)."]
    lines += ["", "Timings on the 2-core development machine; the load average column shows how busy it was",
              "(other processes slow both readers alike; the ratio is the figure that matters)."]
    return "\n".join(lines) + "\n"


def bench_ingest_step(ws: Workspace, options: dict[str, Any], *, seed: int, quiet: bool) -> dict[str, Any]:
    """Pipeline step ``ingest-bench``: ``{csv: ..., folders_tar: ..., report: reports/ingest.md, repeats: 3}``."""
    return run_ingest_benchmark(Path(options["csv"]), Path(options["folders_tar"]) if options.get("folders_tar") else None,
                                Path(options.get("report", "reports/ingest.md")), int(options.get("repeats", 3)))
