"""Time `curate ingest`, `curate dedupe` and `curate audit` (defaults) on one source; time and peak memory per step.

    python tools/time_scale.py /tmp/scale/fer-1m.csv.gz --workspace /tmp/scale/ws-1m --out /tmp/scale/time-1m.json

Each step runs as its own fresh `curate ... --json` process under ``/usr/bin/time -v``: wall seconds,
CPU seconds (user + system), peak resident memory (the largest of the process and its children), the
1-minute load average at the step's start and end (the machine is shared: read the times with it),
and the step's own summary (dedupe's stage timings, the audit's seconds per check). The workspace is
removed first (``--keep`` reuses an ingested one and times dedupe and audit only). With
``--truth`` (the ``.truth.parquet`` written by tools/make_large_set.py) the JSON also gets the share of
near copies that dedupe put in one cluster with their source, and of injected defects that the audit
flagged. ``--steps`` picks steps (default ingest,dedupe,audit); ``--set STEP:KEY=VALUE`` passes an
override to one step (e.g. ``--set dedupe:knn.index=hnsw``).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def timed(cmd: list[str], log: Path | None = None) -> dict:
    """Run ``cmd`` under /usr/bin/time -v; wall, CPU, peak RSS, load averages (at the start, the end, and
    the mean and highest of samples every 15 s while it runs) and its JSON summary."""
    import threading

    load = _load()
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(15.0):
            samples.append(_load())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    done.set()
    if log is not None:
        with open(log, "a") as fh:
            fh.write(f"$ {' '.join(cmd)}\n{proc.stdout[-20000:]}\n{proc.stderr[-20000:]}\n")
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}")
    err = proc.stderr

    def field(pattern: str) -> float:
        return float(re.search(pattern, err).group(1))

    summary = None
    try:
        summary = json.loads(proc.stdout)
    except ValueError:
        pass
    return {"command": " ".join(cmd), "wall_s": round(wall, 1),
            "cpu_s": round(field(r"User time \(seconds\): ([\d.]+)") + field(r"System time \(seconds\): ([\d.]+)"), 1),
            "peak_rss_mb": round(field(r"Maximum resident set size \(kbytes\): (\d+)") / 1024),
            "load_start": load, "load_end": _load(),
            "load_mean": round(sum(samples) / len(samples), 2) if samples else load,
            "load_max": max(samples, default=load), "summary": summary}


def truth_checks(ws: Path, truth_path: Path) -> dict:
    """Near copies clustered with their source; injected defects flagged by any check, per defect kind."""
    import numpy as np
    import pandas as pd

    truth = pd.read_parquet(truth_path)
    manifest = pd.read_parquet(ws / "manifest.parquet", columns=["image_id", "source_row"])
    pos = np.full(len(truth), -1, np.int64)
    pos[manifest["source_row"].to_numpy(np.int64)] = np.arange(len(manifest))
    out: dict = {}
    dup_path = ws / "duplicates.parquet"
    if dup_path.exists():
        dup = pd.read_parquet(dup_path, columns=["image_id", "cluster_id"])
        cluster = np.full(len(manifest), -1, np.int64)
        cluster[pd.Index(manifest["image_id"]).get_indexer(dup["image_id"])] = dup["cluster_id"].to_numpy()
        copies = truth[truth["kind"] == "near_copy"]
        a = cluster[pos[copies["row"].to_numpy()]]
        b = cluster[pos[copies["source_row"].to_numpy()]]
        found = (a >= 0) & (a == b)
        per = pd.Series(found).groupby(copies["transform"].to_numpy()).mean().round(4).to_dict()
        out["near_copy_recall"] = {"all": round(float(found.mean()), 4), "by_transform": per,
                                   "copies": int(len(copies))}
    findings_path = ws / "findings.parquet"
    if findings_path.exists():
        f = pd.read_parquet(findings_path, columns=["image_id", "flagged"])
        flagged_ids = pd.Index(f.loc[f["flagged"], "image_id"].unique())
        flagged = np.zeros(len(manifest), bool)
        flagged[pd.Index(manifest["image_id"]).get_indexer(flagged_ids)] = True
        defects = truth[truth["kind"] == "defect"]
        hit = flagged[pos[defects["row"].to_numpy()]]
        out["defects_flagged"] = {"all": round(float(hit.mean()), 4),
                                  "by_defect": pd.Series(hit).groupby(defects["transform"].to_numpy()).mean()
                                  .round(4).to_dict()}
        clean = truth["kind"].isin(["original", "filler"]).to_numpy()
        out["flagged_share"] = {k: round(float(flagged[pos[truth.loc[truth["kind"] == k, "row"].to_numpy()]].mean()), 4)
                                for k in ("original", "filler", "near_copy", "defect")}
        del clean
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path, help="what to ingest (e.g. a CSV made by tools/make_large_set.py)")
    ap.add_argument("--workspace", type=Path, required=True)
    ap.add_argument("--out", type=Path, help="JSON file to write (also printed)")
    ap.add_argument("--steps", default="ingest,dedupe,audit")
    ap.add_argument("--keep", action="store_true", help="keep the workspace (do not remove it first)")
    ap.add_argument("--truth", type=Path, help="<set>.truth.parquet of tools/make_large_set.py")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="STEP:KEY=VALUE")
    ap.add_argument("--log", type=Path, help="append each step's stdout/stderr here")
    args = ap.parse_args()
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    if not args.keep and "ingest" in steps:
        shutil.rmtree(args.workspace, ignore_errors=True)
    curate = str(Path(sys.executable).with_name("curate"))
    extra: dict[str, list[str]] = {}
    for item in args.overrides:
        step, _, kv = item.partition(":")
        extra.setdefault(step, []).extend(["--set", kv])
    env_quiet = os.environ.get("CURATE_QUIET")
    os.environ["CURATE_QUIET"] = "1"
    results = {}
    for step in steps:
        cmd = [curate, step]
        if step == "ingest":
            cmd.append(str(args.source))
        cmd += ["-w", str(args.workspace), "-q", "--json", *extra.get(step, [])]
        results[step] = timed(cmd, args.log)
        print(f"{step}: {results[step]['wall_s']} s, {results[step]['peak_rss_mb']} MB, "
              f"load {results[step]['load_start']}", file=sys.stderr)
    if env_quiet is None:
        os.environ.pop("CURATE_QUIET")
    result = {"source": str(args.source), "source_bytes": args.source.stat().st_size if args.source.exists() else None,
              "workspace": str(args.workspace), "cores": os.cpu_count(), "steps": results,
              "total_wall_s": round(sum(s["wall_s"] for s in results.values()), 1),
              "peak_rss_mb": max(s["peak_rss_mb"] for s in results.values()),
              "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    if args.truth:
        result["truth"] = truth_checks(args.workspace, args.truth)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
