"""Markdown report of ``curate photos-bench`` (reports/photos.md)."""
from __future__ import annotations

from typing import Any

from curate.faces.bench import TARGETS
from curate.invocation import current_command


def _row(name: str, m: dict[str, Any], target: tuple[float, float] | None, extra: str = "") -> str:
    goal = f"R >= {target[0]:.2f}, P >= {target[1]:.2f}" if target else ""
    met = ""
    if target:
        met = "yes" if m["recall"] >= target[0] and m["precision"] >= target[1] else "no"
    return (f"| {name} | {m['positives']} | {m['flagged']} | {m['precision']:.3f} | {m['recall']:.3f} | "
            f"{goal} | {met} | {extra} |")


def render_report(r: dict[str, Any]) -> str:
    """The benchmark result as Markdown."""
    lines = [
        "# Photo checks on reviewed scraped photos",
        "",
        f"Command: `{current_command()}`",
        "",
        f"{r['reviewed']} photos reviewed by eye (`reports/review/scraped-reviewed.csv`, how it was made: "
        "`reports/review/README.md`). Learned checks: 5-fold cross-validation grouped by duplicate cluster, "
        "threshold chosen on the out-of-fold scores (the figures below are out-of-fold, not training fit). "
        "multiple_faces is not learned: it flags a second MTCNN face of probability >= "
        "`multiple_faces.threshold` (configs/audit.yaml); its row is at the defaults, and the "
        "row below it chooses the three settings on 4 folds and counts the fifth.",
        "",
        "| check | reviewed positives | flagged | precision | recall | target | reached | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for check in ("no_face", "multiple_faces", "cartoon", "watermark"):
        m = r["checks"][check]
        lines.append(_row(check, m, TARGETS[check], f"threshold {m['threshold']:.3f}, AUROC {m['auroc']:.3f}"))
        if "cross_validated" in m:
            cv = m["cross_validated"]
            picks = sorted({tuple(c.values()) for c in cv["chosen"]})
            lines.append(_row(f"{check} (settings chosen per fold)", cv, TARGETS[check],
                              "chosen (second, main, relative width): " + ", ".join(str(p) for p in picks)))
    lines += ["", "Simplest baselines on the same photos:", "",
              "| baseline | positives | flagged | precision | recall |", "|---|---|---|---|---|"]
    for name, m in r["baselines"].items():
        lines.append(f"| {name} | {m['positives']} | {m['flagged']} | {m['precision']:.3f} | {m['recall']:.3f} |")
    lines += ["", "HOG baselines: dlib's HOG face detector alone on the originals (480 px, upsample 1, margin >= 0), "
                  "run by the bench on the same photos."]
    fd = r["face_detection_rate"]
    lines += ["", f"Face found and aligned in {fd['aligned']} of {fd['usable_face_photos']} usable face photos "
                  f"({100 * fd['rate']:.1f}%; target 97%).", ""]
    if r.get("model_written"):
        lines.append(f"Scorers fitted on all reviewed photos written to `{r['model_written']}`.")
    t = r.get("timing_run")
    if t:
        lines += ["", f"## Time and memory: ingest + dedupe + audit of {t['photos']:,} photos (defaults)", "",
                  "Made by `python tools/make_photo_set.py ../shared/data/scraped/angry-happy-sad /tmp/photos3500 "
                  "--count 3500` (the 968 originals plus rescaled/mirrored/re-encoded variants, up to 8,000 px) and "
                  "`python tools/time_photo_pipeline.py /tmp/photos3500 --workspace WS --out FILE`.", "",
                  "| step | wall s | peak RSS MB | load average before |", "|---|---|---|---|"]
        for step in t["steps"]:
            name = step["command"].split()[1]
            lines.append(f"| {name} | {step['wall_s']} | {step['peak_rss_mb']} | {step['load_before']:.1f} |")
        lines.append(f"| total | {t['total_wall_s']} | {t['peak_rss_mb']} | |")
        lines += ["", f"Targets: <= 600 s in all and <= 4,096 MB peak on 2 cores ({t['cores']} cores here). The load "
                      "average is the 1-minute figure when the step started; it includes the previous step's own "
                      "threads as they decay."]
    return "\n".join(lines) + "\n"
