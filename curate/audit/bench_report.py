"""Markdown report of ``curate bench-audit`` (figures come only from the measured result)."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from curate import atomic


def _pct(v: float | None) -> str:
    return "n/a" if v is None or v != v else f"{v:.1%}"


def write_report(result: dict[str, Any], out: Path, thresholds: dict[str, float]) -> Path:
    """Write the benchmark report to ``out`` and return its path."""
    rep, tune = result["halves"]["report"], result["halves"]["tune"]
    cmd = " ".join(shlex.quote(a) for a in ["curate"] + sys.argv[1:]) if sys.argv else "curate bench-audit"
    lines = [
        "# Audit checks benchmark",
        "",
        f"Command: `{cmd}`",
        "",
        f"Data: {result['data']} ({result['images']:,} images), {result['per_type']} injected images per defect "
        f"type and half, seed {result['seed']}. Overrides: {result['overrides'] or 'none'}.",
        "",
        "## Results on the reporting half",
        "",
        f"{rep['untouched']:,} untouched images + injected defects ({rep['images']:,} images in the workspace). "
        "Recall counts only injections whose source image the check did not already flag.",
        "",
        "| defect | check | n | recall at config threshold | recall at FPR 2% | recall at FPR 5% |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for kind, per_check in rep["recall"].items():
        for check, r in per_check.items():
            lines.append(f"| {kind} | {check} | {r['n']} | {_pct(r['at_threshold'])} | {_pct(r.get('at_fpr_2'))} | "
                         f"{_pct(r.get('at_fpr_5'))} |")
    lines += ["", "| check | threshold | FPR on untouched images |", "|---|---:|---:|"]
    for check, f in rep["fpr"].items():
        lines.append(f"| {check} | {f['threshold']} | {_pct(f['at_threshold'])} |")
    lines += ["", "## Tuning half", "",
              "Thresholds at the target FPR on the tuning half's untouched images (these, not the reporting "
              "half, set configs/audit.yaml):", "",
              "| check | suggested threshold |", "|---|---:|"]
    for check, t in tune["suggested_thresholds"].items():
        lines.append(f"| {check} | {t} |")
    t = result["timing"]
    lines += ["", "## Timing", "",
              f"All checks over {t['images']:,} images: {t['seconds']:.1f} s on {t['cpus']} CPUs "
              f"(load average before {t['load_before']}, after {t['load_after']}).", "",
              "| step | seconds |", "|---|---:|"]
    for step, sec in t["seconds_per_check"].items():
        lines.append(f"| {step} | {sec} |")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out, "\n".join(lines) + "\n")
    return out
