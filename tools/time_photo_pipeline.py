"""Time ingest + dedupe + audit (defaults) on a folder of photos; peak memory per step.

    python tools/time_photo_pipeline.py /tmp/photos3500 --workspace /tmp/w/p3500 --out /tmp/p3500.json
    python tools/time_photo_pipeline.py /tmp/photos3500 --workspace /tmp/w/p3500r --out /tmp/p3500r.json \
        --global=--ray-address=127.0.0.1:6379     # the same on a Ray cluster (global curate options)

Each step runs as its own `curate` process under /usr/bin/time -v (wall seconds, peak RSS);
the load average before each step is recorded, since timings on a shared machine need it.
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


def timed(cmd: list[str]) -> dict:
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"failed: {' '.join(cmd)}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return {"command": " ".join(cmd), "wall_s": round(wall, 1), "peak_rss_mb": round(rss / 1024), "load_before": load}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("photos", type=Path)
    ap.add_argument("--workspace", type=Path, required=True)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--global", dest="global_", action="append", default=[],
                    help="a global curate option for every step, e.g. --global=--engine=ray (repeatable)")
    args = ap.parse_args()
    shutil.rmtree(args.workspace, ignore_errors=True)
    curate = [str(Path(sys.executable).with_name("curate")), *args.global_]
    steps = [timed([*curate, "ingest", str(args.photos), "-w", str(args.workspace), "-q"]),
             timed([*curate, "dedupe", "-w", str(args.workspace), "-q"]),
             timed([*curate, "audit", "-w", str(args.workspace), "-q"])]
    result = {"photos": sum(1 for p in args.photos.rglob("*") if p.is_file()), "steps": steps,
              "total_wall_s": round(sum(s["wall_s"] for s in steps), 1),
              "peak_rss_mb": max(s["peak_rss_mb"] for s in steps), "cores": os.cpu_count(),
              "global_options": args.global_}
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
