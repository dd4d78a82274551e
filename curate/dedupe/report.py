"""Markdown report of the duplicate benchmark (reports/dedupe.md)."""
from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curate import atomic
from curate.dedupe.transforms import TRANSFORMS
from curate.invocation import current_command

if TYPE_CHECKING:
    from curate.settings import DedupeSettings


def _load() -> str:
    try:
        one, five, _ = os.getloadavg()
        return f"{one:.2f} / {five:.2f} (1 / 5 min)"
    except OSError:
        return "n/a"


def write_report(result: dict[str, Any], path: str | os.PathLike, cfg: DedupeSettings) -> Path:
    """Write the benchmark figures, the settings and the exact command as Markdown."""
    r = result
    lines = _head(r) + _method_rows(r) + _default_config(cfg)
    t = r.get("timing")
    if t:
        lines += _speed(r, t)
    lines += ["", f"Benchmark wall time {r['seconds']:.0f} s.", ""]
    path = Path(path)
    atomic.write_text(path, "\n".join(lines))
    return path


def _head(r: dict[str, Any]) -> list[str]:
    """The command, the machine, the exact duplicates and the injected near copies' methods table."""
    ex = r["exact"]
    bs = r["benchmark_set"]
    cmd = r["options"].get("command") or current_command()
    return [
        "# Duplicate detection benchmark (`curate dedupe`)",
        "",
        f"Command: `{cmd}` (workspace `{r['workspace']}`, {r['images']:,} images, seed {r['seed']}).",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; load average at the end {_load()} "
        "(the machine is shared: timings are upper bounds).",
        "",
        "## Exact duplicates (whole workspace)",
        "",
        f"Images having at least one byte-identical copy: {ex['images_with_exact_copy']:,} in {ex['groups']:,} groups "
        f"(independent sha1 of the pixel bytes). Found by `curate dedupe` (manifest digest): {ex['found']:,} "
        f"(recall {ex['recall']:.4f}), missed {ex['missed']}, edges joining non-identical images: {ex['false_edges']}.",
        "",
        "## Injected near copies",
        "",
        f"Base: {bs['base_images']:,} real images sampled from the workspace (whole exact-duplicate groups kept; "
        f"{bs['dropped_pre_existing_near']:,} sampled images dropped because they already have a non-identical "
        "near copy in the source (pHash <= 10 with mirror, or registration NCC >= 0.9): such pairs have no ground "
        "truth, and counting them either way would measure the labelling, not the method). "
        f"Copies: {bs['copies']:,} = {bs['per_transform']} per transform x {len(TRANSFORMS)} transforms, each of a "
        "distinct source. A predicted pair that touches a copy is correct when both images come from the same "
        "source digest group; recall = copies with a direct pair to their source group.",
        "",
        "Transforms: JPEG q30-90; rescale 50-85 % and back; crop 3-8 % and resize back, or shift 3-8 % with edge "
        "padding; brightness and contrast x0.75-1.25; gamma 0.6-1.6; rotation 3-10 degrees; horizontal flip; "
        "semi-transparent (alpha 0.35-0.65) text overlay.",
        "",
        "| method | recall | precision | TP pairs | FP pairs | base-base false pairs | seconds |",
        "|---|---|---|---|---|---|---|",
    ]


def _method_rows(r: dict[str, Any]) -> list[str]:
    """Each method's recall, precision and time; its recall per transform."""
    lines: list[str] = []
    for name, m in r["methods"].items():
        lines.append(f"| {name} | {m['recall']:.3f} | {m['precision']:.3f} | {m['tp_pairs']} | {m['fp_pairs']} | "
                     f"{m['base_false_pairs']} | {m['seconds']:.1f} |")
    lines += ["", "Recall per transform:", "",
              "| method | " + " | ".join(TRANSFORMS) + " |", "|---|" + "---|" * len(TRANSFORMS)]
    for name, m in r["methods"].items():
        lines.append(f"| {name} | " + " | ".join(f"{m['recall_by_transform'][t]:.2f}" for t in TRANSFORMS) + " |")
    lines += ["", "Base-base false pairs: pairs between two base images of different digest groups (after the "
              "cleaning above these are false positives of the method on untouched real images).", ""]
    return lines


def _default_config(cfg: DedupeSettings) -> list[str]:
    """The default configuration every row and timing refers to."""
    hc, pc, kc = cfg.hash, cfg.pixel, cfg.knn
    return ["Default configuration (every row named `default` and every timing below unless it names "
            "another setting): exact digest groups + " + ", ".join(hc.methods) +
            f" Hamming radius <= {hc.radius} (mirror {'on' if hc.mirror else 'off'}) + embedder "
            f"`{cfg.embedder}` (k={kc.k} neighbours per image and per mirrored image with cosine >= "
            f"{kc.min_similarity}, pairs verified by registration: aligned NCC >= {pc.min_aligned_ncc}; "
            "pairs already joined by an exact or hash edge and copies of an image are not registered again; "
            f"registration stops a pair early when its coarse-level NCC is below {pc.coarse_reject}, when its "
            f"fine-level NCC after k steps is more than {_seq(pc.fine_reject_margin)}[k] below "
            f"{pc.min_aligned_ncc}, or when a step moves its "
            f"warp by less than {_seq(pc.converge_px)} pixels (coarse, fine level)). The `seconds` column "
            "above is the in-process edge search on the benchmark set (no process start, no I/O).", ""]


def _speed(r: dict[str, Any], t: dict[str, Any]) -> list[str]:
    """The Speed section: the default command, `--embedder none`, the pHash and core throughput, growth."""
    h = t["hash_throughput"]
    f = t["full_no_embeddings"]
    lines = ["## Speed", ""]
    c, c0 = t.get("cli_default"), t.get("cli_embedder_none")
    if c:
        lines += [f"**Default `curate dedupe` on the whole workspace** ({r['images']:,} images; the command "
                  "with configs/dedupe.yaml as shipped, embedder included: a fresh process per run, so process "
                  "start, imports, loading, every stage and writing the outputs count; on a copy of the "
                  f"workspace): **{c['seconds']:.1f} s** (shortest of {len(c['runs_seconds'])}: "
                  f"{_list(c['runs_seconds'])} s; 1-minute load average at their starts "
                  f"{_list(c['loads'])} on {os.cpu_count()} cores; CPU time, user + system, "
                  f"{_list(c['runs_cpu_seconds'])} s: the shared machine changes the wall time, much less "
                  f"the CPU time). Stages of that run: {_fmt(c['timings'])} (pixel_verify includes "
                  "importing torch); the rest is process start and imports. Pairs: "
                  f"{c['pairs']:,} (" + ", ".join(f"{k} {v:,}" for k, v in c["pairs_by_method"].items())
                  + f"), {c['clusters']:,} clusters."]
    if c0:
        lines += ["", f"The same command with `--embedder none` (exact + pHash only): **{c0['seconds']:.1f} s** "
                  f"(shortest of {len(c0['runs_seconds'])}: {_list(c0['runs_seconds'])} s; load "
                  f"{_list(c0['loads'])}; CPU {_list(c0['runs_cpu_seconds'])} s; {_fmt(c0['timings'])}); "
                  f"pairs {c0['pairs']:,}."]
    if c or c0:
        lines += [""]
    lines += [f"pHash on {h['images']:,} images: per-image `imagehash.phash` loop {h['imagehash_loop_per_s']:,.0f} "
              f"images/s (one pass), batched `curate.dedupe.hashing.hash_images` {h['batched_per_s']:,.0f} images/s "
              f"(best of three passes, 2 threads): **{h['speedup']:.1f}x** (same run, same images; values "
              "equal bit for bit, see tests/test_dedupe_hashing.py).", "",
              "In-process core with `--embedder none` (exact + hashes + search + clusters on images already in "
              f"memory; no process start, no I/O, no embedder): {f['images']:,} images in **{f['seconds']:.2f} s** "
              f"(shortest of five runs: {_runs(f['timings'])}; {_fmt(f['timings'])})."]
    g = t.get("growth_4x")
    if g:
        lines += ["", "Growth of that core (`--embedder none`): with 3 transformed copies of every image "
                  f"appended ({g['images']:,} images): "
                  f"{g['seconds']:.2f} s (shortest of five: {_runs(g['timings'])}), **{g['ratio']:.2f}x** the time for 4x the images "
                  f"({_fmt(g['timings'])})."]
        if "pairs" in g and "pairs" in f:
            ft, gt = f["timings"], g["timings"]
            lines[-1] += (
                f" The appended copies are near duplicates of every image: the duplicate pairs grow from "
                f"{f['pairs']:,} to {g['pairs']:,} ({g['pairs'] / max(f['pairs'], 1):.0f}x) and the images "
                f"that have a pair from {f['images_with_pairs']:,} to {g['images_with_pairs']:,} "
                f"({g['images_with_pairs'] / max(f['images_with_pairs'], 1):.0f}x). Growth per step: "
                + ", ".join(f"{k.removesuffix('_s')} {gt[k] / max(ft[k], 1e-9):.1f}x" for k in gt
                            if k in ft and k.endswith("_s") and k != "exact_s")
                + " (search and clusters grow with the pairs, hashing with the images). The hash pass also "
                "computes every image's quality score (contrast + Laplacian sharpness, which picks a "
                "cluster's representative) while the image is in memory, so that cost grows with the images, "
                "not with the duplicated ones.")
    return lines


def _fmt(timings: dict[str, Any]) -> str:
    return ", ".join(f"{k.removesuffix('_s')} {v:.2f}s" for k, v in timings.items() if k.endswith("_s"))


def _list(values) -> str:
    return ", ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in values)


def _seq(value) -> str:
    """A config value that may be a list, as text: [0.8, 0.9] or 0.8."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def _runs(timings: dict[str, Any]) -> str:
    return ", ".join(f"{v:.2f}" for v in timings.get("runs_seconds", [])) + " s"
