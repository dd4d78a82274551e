"""Markdown section of reports/mislabel.md for the by-eye review benchmark."""
from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from curate.invocation import current_command

SECTION = "mislabel-review"


def _pct(v: float) -> str:
    return "n/a" if v != v else f"{100 * v:.1f}%"


def _num(v: float) -> str:
    return "n/a" if v != v else f"{v:.3f}"


def render_review(result: dict[str, Any]) -> str:
    """The section body: review counts, the variants table, rescoring, ambiguity and relabel figures."""
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"## Real label errors: the by-eye review (`{result['review']}`)", "",
             f"Measured {when}. Command: `{current_command()}`.", "",
             f"{result['reviewed']} FER2013 images reviewed by eye ({result['usable']} usable, {result['errors']} with a "
             f"wrong label: verdict wrong, or ambiguous between two other classes); out-of-fold model accuracy "
             f"{_pct(result['oof_accuracy'])}, {result['oof_minutes']:.1f} min for the folds.", "",
             "| part | images | right | wrong | ambiguous | unusable | wrong labels |", "|---|---:|---:|---:|---:|---:|---:|"]
    for row in result["per_part"]:
        lines.append(f"| {row['part']} | {row['n']} | {row['right']} | {row['wrong']} | {row['ambiguous']} | "
                     f"{row['unusable']} | {_pct(row['wrong_share'])} |")
    lines += ["", "AP is measured on the images drawn at random (unbiased); flag precision / recall on the random and "
              "PrivateTest draws; top-200 precision over the reviewed images among each ranking's top 200 "
              "(how many were reviewed in brackets); suggestion = the suggested class (first class when ambiguous) "
              "is what the reviewer saw, over reviewed wrong labels.", "",
              "OOF accuracy: of the model's probabilities against the given labels, before the class balance.", "",
              "| variant | OOF accuracy | AP random | AP random+test | flagged | flag precision / recall | "
              "top-200 precision | suggestion right | confident suggestion right | ambiguous | minutes |",
              "|---|---:|---:|---:|---:|---|---|---:|---:|---:|---:|"]
    for row in result["variants"]:
        lines.append(f"| {row['variant']} | {_pct(row['oof_accuracy'])} | {_num(row['ap_random'])} | "
                     f"{_num(row['ap_random+test'])} | {row['flagged']:,} | {_num(row['flag_precision'])} / "
                     f"{_num(row['flag_recall'])} | {_num(row['top_precision'])} ({row['top_reviewed']}) | "
                     f"{_pct(row['suggestion_right'])} | {_pct(row['confident_right'])} | "
                     f"{_pct(row['ambiguous_share'])} | {row['minutes']:.1f} |")
    first = next(iter(result["rescore"].values()))
    lines += ["", "### Reviewer in the loop (`curate mislabel --rescore`)", "",
              f"The review stands in for a reviewer who decides the default ranking's top 200 ({first['batch_decided']} "
              f"decided, {first['batch_errors']} wrong labels); `--rescore` re-ranks the rest. Precision of the next "
              f"batch of 200 among its reviewed images (reviewed count in brackets), without rescoring = ranks "
              f"201-400: {_num(first['next_precision_before'])} ({first['next_reviewed_before']}).", "",
              "| rescoring | next-batch precision | images also in ranks 201-400 |", "|---|---:|---:|"]
    for name, r in result["rescore"].items():
        lines.append(f"| {name} | {_num(r['next_precision_after'])} ({r['next_reviewed_after']}) | {r['overlap']} |")
    lines += ["",
              "### Suggestions (over the reviewed wrong labels)", "",
              "`others`: the likeliest class other than the given label, `ambiguous: a|b` when the next other "
              "class is within the ratio (the default, from the probabilities as the model gave them); `all`: the "
              "rule before 2026-12-07 (the two likeliest of all classes, class-balanced probabilities).", "",
              "| rule | probabilities | ambiguity_ratio | first class right | single-class suggestions right | "
              "wrong labels called ambiguous | reviewer-ambiguous called ambiguous |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for row in result["ambiguity"]:
        ratio = "never" if row["ratio"] > 1 else f"{row['ratio']:g}"
        lines.append(f"| {row.get('among', 'all')} | {row.get('probabilities', 'balanced')} | {ratio} | "
                     f"{_pct(row['suggestion_right'])} | {_pct(row['confident_right'])} | "
                     f"{_pct(row['ambiguous_share'])} | {_pct(row['reviewer_ambiguous_called_ambiguous'])} |")
    lines += ["", "### Relabel confidence (confident suggestions on reviewed images the model disagrees with)", "",
              "| class-balanced p(suggested) at least | images | suggestion is what the reviewer saw |",
              "|---:|---:|---:|"]
    for row in result["relabel"]:
        lines.append(f"| {row['min_probability']:g} | {row['n']} | {_pct(row['relabel_right'])} |")
    return "\n".join(lines)


def write_review_section(path: Path, result: dict[str, Any]) -> None:
    """Put the section into ``path`` (other sections and text kept), atomically."""
    from curate import atomic
    from curate.report.sections import put_section

    text = path.read_text() if path.exists() else "# Mislabel detection\n"
    with atomic.atomic_path(path) as tmp:
        Path(tmp).write_text(put_section(text, SECTION, render_review(result)))
