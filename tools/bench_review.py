"""Benchmark review + report on a full workspace and write reports/review.md.

    python tools/bench_review.py /tmp/fer-full-ws --scratch /tmp/review-bench [--fixtures]

Copies the workspace into ``--scratch`` (the source is never written), adds the upstream outputs
that are missing when ``--fixtures`` is given (duplicates/findings/OOF/runs built from the real
pixels by tests/review_fixtures.py), then times, each as a separate ``curate`` process with a
fresh FiftyOne database: ``review open --no-launch`` (first build), the same again (update),
``report``, and a round trip at scale (tag N samples in the dataset, ``review pull``, check
that decisions.parquet and the manifest hold every decision).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def timed(argv: list[str], env: dict) -> tuple[float, dict, str]:
    """Run a curate command; (wall seconds, JSON summary, load average before)."""
    before = load()
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "curate.cli", *argv], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return seconds, json.loads(out.stdout), before


def round_trip(ws_root: Path, n: int, env: dict) -> dict:
    """Tag ``n`` samples (relabel/exclude/keep) in the dataset, pull, check nothing was lost."""
    code = f"""
import json, sys
sys.path.insert(0, {str(REPO)!r})
import pandas as pd
from curate.workspace import Workspace
from curate.labels import CLASSES
from curate.review.dataset import fiftyone, dataset_name
fo = fiftyone()
ws = Workspace({str(ws_root)!r})
ds = fo.load_dataset(dataset_name(ws))
ids = ds.values("image_id")[:{n}]
labels = dict(zip(ws.manifest()["image_id"], ws.manifest()["label"]))
wanted = {{}}
tags = []
for k, i in enumerate(ids):
    if k % 3 == 0:
        target = next(c for c in CLASSES[k % 7:] + CLASSES if c != labels[i]); wanted[i] = ["relabel", target]
        tags.append(["relabel:" + target])
    elif k % 3 == 1:
        wanted[i] = ["exclude", None]; tags.append(["exclude"])
    else:
        wanted[i] = ["keep", None]; tags.append(["keep"])
view = ds.select_by("image_id", ids, ordered=True)
view.set_values("tags", [old + t for old, t in zip(view.values("tags"), tags)])
json.dump(wanted, open({str(ws_root / "bench_wanted.json")!r}, "w"))
"""
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
    seconds, summary, before = timed(["review", "pull", "-w", str(ws_root), "--reviewer", "bench", "--json"], env)
    import pandas as pd

    wanted = json.loads((ws_root / "bench_wanted.json").read_text())
    decisions = pd.read_parquet(ws_root / "decisions.parquet")
    got = {r.image_id: [r.decision, None if pd.isna(r.new_label) else r.new_label] for r in decisions.itertuples()}
    manifest = pd.read_parquet(ws_root / "manifest.parquet").set_index("image_id")
    relabels_ok = all(manifest.loc[i, "label"] == v[1] for i, v in wanted.items() if v[0] == "relabel")
    return {"tagged": len(wanted), "appended": summary["appended"], "lost": sum(got.get(i) != v for i, v in wanted.items()),
            "relabels_in_manifest": relabels_ok, "seconds": seconds, "load_before": before}


PROBE = ("<script>window.addEventListener('load', () => {const imgs=[...document.images];"
         "const bad=imgs.filter(i=>!(i.complete&&i.naturalWidth>0));const pre=document.createElement('pre');"
         "pre.id='imgcheck';pre.textContent=JSON.stringify({total:imgs.length,bad:bad.length,"
         "ms:Math.round(performance.now())});document.body.appendChild(pre);});</script>")


def browser_render(report: Path, scratch: Path) -> dict | None:
    """Load the report in headless Chromium: images decoded, time to the load event."""
    import re

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        return None
    probe = scratch / "probe.html"
    probe.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    t0 = time.perf_counter()
    out = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={scratch / 'chromium-profile'}", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - t0
    found = re.search(r'<pre id="imgcheck">(.*?)</pre>', out.stdout)
    if not found:
        return {"error": out.stderr[-500:], "seconds": seconds}
    return {**json.loads(found.group(1).replace("&quot;", '"')), "seconds": seconds}


def run_all(ws_root: Path, tag: int, env: dict) -> tuple:
    first = timed(["review", "open", "--no-launch", "-w", str(ws_root), "--json", "--quiet"], env)
    again = timed(["review", "open", "--no-launch", "-w", str(ws_root), "--json", "--quiet"], env)
    report = timed(["report", "-w", str(ws_root), "--json", "--quiet"], env)
    return first, again, report, round_trip(ws_root, tag, env)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workspace", type=Path)
    ap.add_argument("--scratch", type=Path, default=Path("/tmp/review-bench"))
    ap.add_argument("--fixtures", action="store_true", help="Add missing upstream outputs from review_fixtures.")
    ap.add_argument("--tag", type=int, default=3000, help="Samples tagged in the round trip.")
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "review.md")
    args = ap.parse_args()
    ws_root = args.scratch / "ws"
    if args.scratch.exists():
        shutil.rmtree(args.scratch)
    shutil.copytree(args.workspace, ws_root)
    sys.path.insert(0, str(REPO / "tests"))
    sys.path.insert(0, str(REPO))
    from curate.workspace import Workspace

    ws = Workspace(ws_root)
    made = []
    if args.fixtures:
        import review_fixtures as fx

        if not ws.path("duplicates.parquet").exists():
            fx.write_duplicates(ws); made.append("duplicates.parquet (exact digests)")
        probs = None
        if not ws.path("oof_probs.npy").exists():
            probs = fx.write_oof(ws); made.append("oof_probs.npy/oof_index.parquet/oof_meta.json (synthetic)")
        if not ws.path("findings.parquet").exists():
            import numpy as np

            probs = probs if probs is not None else np.load(ws.path("oof_probs.npy"))
            fx.write_all_findings(ws, probs); made.append("findings.parquet (12 checks, pixel statistics)")
        if not list(ws.path("runs").glob("*/metrics.json")):
            fx.write_runs(ws); made.append("runs/*/metrics.json (2 runs)")
    env = {**os.environ, "FIFTYONE_DATABASE_DIR": str(args.scratch / "fodb"), "FIFTYONE_DO_NOT_TRACK": "true",
           "CURATE_QUIET": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    n = len(ws.manifest())
    # one process holds the database service for the whole run, so every command below talks to
    # the same MongoDB (FiftyOne attaches to a running service rather than starting another)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, fiftyone as fo; fo.list_datasets(); "
                               "print('ready', flush=True); sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    for line in holder.stdout:  # FiftyOne may log to stdout first
        if line.strip() == "ready":
            break
    try:
        first, again, report, trip = run_all(ws_root, args.tag, env)
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    cmd = f"python tools/bench_review.py {args.workspace} --scratch {args.scratch}" + (" --fixtures" if args.fixtures else "")
    lines = [
        "# Review and report benchmark", "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node()} "
        f"({os.cpu_count()} cores, shared with other jobs: load average shown per step).", "",
        "Command (one re-runnable command; it copies the workspace first):", "", f"    {cmd}", "",
        f"Workspace: {args.workspace} ({n:,} images).",
        ("Upstream outputs added for the run: " + "; ".join(made) + ".") if made else "All upstream outputs were real.", "",
        "| step | wall seconds (whole process) | load average before (1/5/15 min) | result |", "|---|---|---|---|",
        f"| `curate review open --no-launch` (first build, fresh database, {first[1]['pngs_written']:,} PNGs written) "
        f"| {first[0]:.1f} | {first[2]} | {first[1]['samples']:,} samples, {len(first[1]['views'])} saved views, "
        f"{first[1]['flagged']:,} flagged |",
        f"| same again (update in place) | {again[0]:.1f} | {again[2]} | {again[1]['updated']:,} samples updated |",
        f"| `curate report` | {report[0]:.1f} | {report[2]} | {report[1]['bytes'] / 1e6:.1f} MB, "
        f"{report[1]['thumbnails']} thumbnails, sections {', '.join(report[1]['sections'])} |",
        f"| round trip: tag {trip['tagged']:,} samples, `curate review pull` | {trip['seconds']:.1f} | "
        f"{trip['load_before']} | {trip['appended']:,} decisions appended, {trip['lost']} lost, relabels in manifest: "
        f"{trip['relabels_in_manifest']} |", "",
        f"Targets: dataset for all images <= 120 s on 2 cores; report <= 30 s; a round trip loses no decision.",
    ]
    shown = browser_render(Path(report[1]["report"]), args.scratch)
    if shown and "error" not in shown:
        lines += ["", f"The report in headless Chromium: load event after {shown['ms']} ms, {shown['total']} images, "
                      f"{shown['bad']} not decoded (whole browser process {shown['seconds']:.1f} s)."]
    elif shown:
        lines += ["", f"Chromium could not load the report: {shown['error']}"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    block = "\n".join(lines) + "\n"
    text = args.out.read_text() if args.out.exists() else ""
    start, end = "<!-- bench:start -->\n", "<!-- bench:end -->"
    if start in text and end in text:  # keep the hand-written parts of the report around the figures
        block = text[:text.index(start) + len(start)] + block + text[text.index(end):]
    args.out.write_text(block)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
