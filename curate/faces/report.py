"""Markdown report of ``curate photos-bench`` (reports/photos.md): across scrapes first."""
from __future__ import annotations

from typing import Any

from curate.audit.photo_fit import TARGETS
from curate.invocation import current_command


def _goal(check: str) -> str:
    r, p = TARGETS[check]
    return f"P >= {p:.2f}, R >= {r:.2f}"


def _met(check: str, m: dict[str, Any]) -> str:
    r, p = TARGETS[check]
    if m.get("positives", 0) == 0:
        return "n/a (no positives)"
    return "yes" if m["recall"] >= r and m["precision"] >= p else "no"


def _pr(m: dict[str, Any]) -> str:
    return f"{m['precision']:.3f} / {m['recall']:.3f} ({m['tp']}/{m['flagged']} flagged, {m['positives']} positives)"


def _rank(m: dict[str, Any]) -> str:
    return f"{m.get('auroc', float('nan')):.3f} / {m.get('ap', float('nan')):.3f}"


def render_report(r: dict[str, Any]) -> str:
    """The benchmark result as Markdown."""
    names = list(r["scrapes"])
    lines = ["# Photo checks on reviewed scraped photos", "", f"Command: `{current_command()}`", ""]
    lines += ["Reviewed scrapes (how they were reviewed, and the definitions: `reports/review/README.md`):", "",
              "| scrape | reviewed photos | photos in workspace | no usable face | multiple faces | cartoon | watermark |",
              "|---|---|---|---|---|---|---|"]
    for name, s in r["scrapes"].items():
        pos = s["positives"]
        lines.append(f"| {name} | {s['reviewed']} | {s['photos']} | {pos['no_face']} | {pos['multiple_faces']} | "
                     f"{pos['cartoon']} | {pos['watermark']} |")
    if r["across"]:
        lines += ["", "## Across scrapes (the headline): fitted on one scrape, measured on the other", "",
                  "Each learned check fitted on one scrape alone (threshold chosen on its own out-of-fold scores) and "
                  "measured on the other scrape's reviewed photos at that threshold. `fitted prior`: as shipped "
                  "(`photo_prior: fitted`); `workspace prior`: the share of positives re-estimated by EM on all of "
                  "the other scrape's photos (`photo_prior: workspace`). Precision / recall (flagged photos).", "",
                  "| check | fitted on -> measured on | precision / recall, fitted prior | AUROC / AP | "
                  "precision / recall, workspace prior (prior: fitted -> estimated, reviewed) | target | reached |",
                  "|---|---|---|---|---|---|---|"]
        for check, pairs in r["across"].items():
            for key, m in pairs.items():
                f, w = m["fitted_prior"], m.get("workspace_prior")
                ws = (f"{_pr(w)} ({w['prior_fitted']:.3f} -> {w['prior_estimated']:.3f}, {w['prior_reviewed']:.3f})"
                      if w else "")
                lines.append(f"| {check} | {key} | {_pr(f)} | {_rank(f)} | {ws} | {_goal(check)} | {_met(check, f)} |")
        mf = r.get("multiple_faces", {})
        for key, m in mf.get("across", {}).items():
            chosen = ", ".join(f"{k} {v}" for k, v in m["chosen"].items())
            lines.append(f"| multiple_faces (settings chosen on the first) | {key} | {_pr(m)} | | | "
                         f"{_goal('multiple_faces')} | {_met('multiple_faces', m)} |")
            lines.append(f"|  | chosen: {chosen} | | | | | |")
    mf = r.get("multiple_faces")
    if mf:
        lines += ["", "multiple_faces is a rule, not learned (a second MTCNN face at least `min_width_px` wide and "
                      "`min_relative_width` of the main face's width, of probability >= `threshold`); at the audit "
                      f"defaults ({', '.join(f'{k} {v}' for k, v in mf['settings'].items())}):", "",
                  "| scrape | precision / recall | AUROC / AP | target | reached |", "|---|---|---|---|---|"]
        for name, m in mf["defaults"].items():
            lines.append(f"| {name} | {_pr(m)} | {_rank(m)} | {_goal('multiple_faces')} | {_met('multiple_faces', m)} |")
    lines += ["", "## The shipped scorers: fitted on every reviewed scrape", "",
              "Out-of-fold figures of grouped cross-validation over all reviewed photos (copies never straddle "
              "folds); one threshold per check, chosen so that the scrape it suits worst does best.", "",
              "| check | threshold | fitted prior | " + " | ".join(f"{n}: precision / recall (AUROC / AP)" for n in names)
              + " |", "|---|---|---|" + "---|" * len(names)]
    for check, m in r["shipped"].items():
        cells = [f"{_pr(m['per_scrape'][n])} ({_rank(m['per_scrape'][n])})" for n in names]
        lines.append(f"| {check} | {m['threshold']:.3f} | {m['prior']:.3f} | " + " | ".join(cells) + " |")
    if r.get("model_written"):
        lines += ["", f"Written to `{r['model_written']}`."]
    lines += ["", "## Same-scrape cross-validation (second: fitted and measured on the same scrape)", "",
              "| check | scrape | precision / recall | AUROC / AP | threshold |", "|---|---|---|---|---|"]
    for check, per in r["same_scrape"].items():
        for name, m in per.items():
            if "skipped" in m:
                lines.append(f"| {check} | {name} | not fitted: {m['skipped']} | | |")
            else:
                lines.append(f"| {check} | {name} | {_pr(m)} | {_rank(m)} | {m['threshold']:.3f} |")
    curves = [rows for pairs in r["learning_curve"].values() for methods in pairs.values() for rows in methods.values()]
    if curves and curves[0]:
        sizes = [row["reviewed"] for row in curves[0]]
        lines += ["", "## A reviewer teaching the checks", "",
                  "The scorer fitted on one scrape, taught by a reviewer's verdicts on n photos of the other scrape "
                  "(drawn at random; mean over the draws) and measured on the rest of that scrape's reviewed photos: "
                  "`refit` (the default `learn_from_review: refit`: the trees fitted again with the reviewed photos "
                  "added, each counting `review_weight` times) or `recalibrate` (a logistic correction of its "
                  "probabilities). Precision / recall (flagged photos).", "",
                  "| check | fitted on -> reviewed on | teaching | " + " | ".join(f"n = {n}" for n in sizes) + " |",
                  "|---|---|---|" + "---|" * len(sizes)]
        for check, pairs in r["learning_curve"].items():
            for key, methods in pairs.items():
                for method, rows in methods.items():
                    cells = [f"{row['precision']:.3f} / {row['recall']:.3f} ({row['flagged']:.0f})" for row in rows]
                    lines.append(f"| {check} | {key} | {method} | " + " | ".join(cells) + " |")
    lines += ["", "## Simplest baselines on the same photos", "",
              "| scrape | baseline | precision / recall |", "|---|---|---|"]
    for name, base in r["baselines"].items():
        for b, m in base.items():
            lines.append(f"| {name} | {b} | {_pr(m)} |")
    lines += ["", "HOG baselines: dlib's HOG face detector alone on the originals (480 px, upsample 1, margin >= 0)."]
    for name, fd in r["face_detection_rate"].items():
        lines.append(f"- {name}: a face found and aligned in {fd['aligned']} of {fd['usable_face_photos']} usable "
                     f"face photos ({100 * fd['rate']:.1f}%).")
    t = r.get("timing_run")
    if t:
        lines += ["", f"## Time and memory: ingest + dedupe + audit of {t['photos']:,} photos (defaults)", "",
                  "Made by `python tools/make_photo_set.py ../shared/data/scraped/angry-happy-sad /tmp/photos3500 "
                  "--count 3500` and `python tools/time_photo_pipeline.py /tmp/photos3500 --workspace WS --out FILE`.", "",
                  "| step | wall s | peak RSS MB | load average before |", "|---|---|---|---|"]
        for step in t["steps"]:
            lines.append(f"| {step['command'].split()[1]} | {step['wall_s']} | {step['peak_rss_mb']} | "
                         f"{step['load_before']:.1f} |")
        lines.append(f"| total | {t['total_wall_s']} | {t['peak_rss_mb']} | |")
    return "\n".join(lines) + "\n"
