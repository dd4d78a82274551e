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
import shutil
import sys
from pathlib import Path


def timed(cmd: list[str]) -> dict:
    """``cmd`` timed by tools/time_scale.py's :func:`timed`, in this report's fields (the load before the step)."""
    from time_scale import timed as timed_step  # tools/ is on sys.path when this runs as a script

    step = timed_step(cmd)
    return {"command": step["command"], "wall_s": step["wall_s"], "peak_rss_mb": step["peak_rss_mb"],
            "load_before": step["load_start"]}


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
