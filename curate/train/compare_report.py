"""Markdown report of runs side by side (``curate compare --report``, pipeline step ``compare``).

Reads only the workspace: each run's metrics.json, its split's manifest and ledger (what was
removed and why), and workspace.json (the commands that made them). The runs' confusion
matrices and learning curves are copied next to the report, so it stays readable on its own.
"""
from __future__ import annotations

import datetime as _dt
import shutil
from pathlib import Path
from typing import Any

from curate import atomic
from curate.invocation import format_command
from curate.report.sections import existing_sections
from curate.train.runs import load_runs
from curate.workspace import Workspace


def _command(argv: list[str] | None) -> str:
    return format_command(argv) if argv else "(pipeline step)"


def _commands(ws: Workspace, runs: list[dict[str, Any]]) -> list[str]:
    """The latest recorded command of every split and run in the comparison, in run order."""
    wanted_runs = {r["run"] for r in runs}
    wanted_splits = {r["split"] for r in runs}
    latest: dict[tuple[str, str], str] = {}
    for rec in ws.info().get("runs", []):
        opts = rec.get("options") or {}
        if rec.get("command") == "train-eval" and opts.get("name") in wanted_runs:
            latest[("train-eval", opts["name"])] = _command(rec.get("argv"))
        elif rec.get("command") == "split" and opts.get("name") in wanted_splits:
            latest[("split", opts["name"])] = _command(rec.get("argv"))
    ordered = [latest[k] for k in sorted(latest, key=lambda k: (k[0] != "split", k[1]))]
    return ordered


def _split_counts(ws: Workspace, split: str) -> tuple[dict[str, int], dict[str, int]]:
    """(images per split, removed images per reason) of ``splits/<split>``."""
    manifest = ws.read_parquet(f"splits/{split}/manifest.parquet")
    ledger = ws.read_parquet(f"splits/{split}/ledger.parquet")
    sizes = manifest["split"].value_counts().to_dict() if manifest is not None else {}
    removed = {}
    if ledger is not None and "status" in ledger:
        gone = ledger[ledger["status"] != "kept"]
        why = gone["reason"].astype(str).str.replace(r"\s*\(.*$", "", regex=True).str.strip()  # drop the cluster id
        removed = why.replace("", "(no reason)").value_counts().to_dict()
    return {k: int(v) for k, v in sizes.items()}, {k: int(v) for k, v in removed.items()}


def _leak_free_accuracy(ws: Workspace, runs: list[dict[str, Any]]) -> dict[str, tuple[int, float, int, float]]:
    """Per run: (n, accuracy) on evaluated images outside cross-split clusters, and on those inside."""
    dups = ws.read_parquet("duplicates.parquet")
    if dups is None or not len(dups):
        return {}
    leaked = set(dups.loc[dups["cross_split"].astype(bool), "image_id"].astype(str))
    out = {}
    for m in runs:
        pred = ws.read_parquet(f"runs/{m['run']}/predictions.parquet")
        if pred is None:
            continue
        inside = pred["image_id"].astype(str).isin(leaked).to_numpy()
        correct = (pred["pred"].astype(str) == pred["label"].astype(str)).to_numpy()
        free, leak = correct[~inside], correct[inside]
        out[m["run"]] = (int(len(free)), float(free.mean()) if len(free) else float("nan"),
                         int(len(leak)), float(leak.mean()) if len(leak) else float("nan"))
    return out


def write_compare_report(ws: Workspace, result: dict[str, Any], path: Path) -> Path:
    """Write the comparison of ``result`` (from :func:`curate.train.api.compare_runs`) to ``path``."""
    path = Path(path)
    figures = path.parent / "figures" / path.stem
    figures.mkdir(parents=True, exist_ok=True)
    runs = load_runs(ws, [r["run"] for r in result["runs"]])
    lines = [f"# Training and evaluation: {' vs '.join(r['run'] for r in runs)}", "",
             f"Generated {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC by `curate compare --report` "
             f"from workspace `{ws.root}`.", "", "Commands (from workspace.json):", "", "```bash"]
    lines += _commands(ws, runs) or ["(not recorded)"]
    lines += ["```", "", "| run | split | recipe | model | train | test | epochs (best) | test accuracy | "
              "without TTA | macro-F1 | train time | images/s | device |", "|---|---|---|---|---:|---:|---|---:|---:|"
              "---:|---:|---:|---|"]
    for m in runs:
        lines.append(f"| {m['run']} | {m['split']} | {m['recipe']['name']} | {m['model']} | {m['n_train']:,} | "
                     f"{m['n_eval']:,} ({m['eval_split']}) | {m['epochs_run']} ({m['best_epoch']}) | "
                     f"{m['accuracy']:.2%} | {m.get('accuracy_no_tta', float('nan')):.2%} | {m['macro_f1']:.4f} | "
                     f"{m.get('train_seconds', m['seconds']) / 60:.1f} min | {m['images_per_s']:.0f} | "
                     f"{m.get('device', '?')} ({m.get('threads', '?')} threads) |")
    if len(runs) >= 2:
        a, b = runs[0], runs[-1]
        same_test = (a["eval_split"], a["n_eval"]) == (b["eval_split"], b["n_eval"])
        lines += ["", f"{b['run']} minus {a['run']}: accuracy {100 * (b['accuracy'] - a['accuracy']):+.2f} points, "
                      f"macro-F1 {b['macro_f1'] - a['macro_f1']:+.4f}"
                  + ("" if same_test else " (warning: different test sets, not comparable)") + "."]
    leak = _leak_free_accuracy(ws, runs)
    if leak:
        lines += ["", "Accuracy on the test images that have no copy in another split (duplicates.parquet: not in a "
                      "cross-split cluster), where memorised training copies cannot help:", "",
                  "| run | leak-free test images | accuracy | on the leaked test images | n |", "|---|---:|---:|---:|---:|"]
        for name, (n_free, acc_free, n_leak, acc_leak) in leak.items():
            lines.append(f"| {name} | {n_free:,} | {acc_free:.2%} | {acc_leak:.2%} | {n_leak:,} |")
    lines += _reviewed_lines(result)
    classes = list(dict.fromkeys(c for m in runs for c in m["classes"]))  # runs may predict different classes
    lines += ["", "Per-class F1 (precision / recall; - = not a class of that run):", "",
              "| run | " + " | ".join(classes) + " |", "|---|" + "---:|" * len(classes)]
    for m in runs:
        cells = [f"{m['per_class'][c]['f1']:.3f} ({m['per_class'][c]['precision']:.2f} / "
                 f"{m['per_class'][c]['recall']:.2f})" if c in m["per_class"] else "-" for c in classes]
        lines.append(f"| {m['run']} | " + " | ".join(cells) + " |")
    lines += ["", "## Splits", ""]
    for split in dict.fromkeys(m["split"] for m in runs):
        sizes, removed = _split_counts(ws, split)
        lines.append(f"- `{split}`: " + ", ".join(f"{k} {v:,}" for k, v in sorted(sizes.items()))
                     + ("; removed: " + ", ".join(f"{k} {v:,}" for k, v in removed.items()) if removed else
                        "; nothing removed"))
    lines += ["", "## Figures", ""]
    for m in runs:
        for kind in ("confusion", "curves"):
            src = ws.path(f"runs/{m['run']}/{kind}.png")
            if src.exists():
                dst = figures / f"{m['run']}-{kind}.png"
                shutil.copyfile(src, dst)
                lines.append(f"![{m['run']} {kind}]({dst.relative_to(path.parent).as_posix()})")
        lines.append("")
    text = "\n".join(lines).rstrip() + "\n"
    for block in existing_sections(path):  # sections other commands own (e.g. train-bench's GPU estimate)
        text += "\n" + block
    atomic.write_text(path, text)
    return path


def _reviewed_lines(result: dict[str, Any]) -> list[str]:
    """Accuracy on the by-eye relabelled test images (``curate compare --review``)."""
    rows = [r for r in result["runs"] if r.get("reviewed")]
    if not rows:
        return []
    lines = ["", f"Accuracy on the test images drawn at random for the by-eye review (`{result['review']}`; "
                 "right = the class the reviewer saw, either class when ambiguous; unusable images left out), and on "
                 "every reviewed test image (FER2013's later review rounds add test images the mislabel rankings put "
                 "on top):", "",
             "| run | drawn test images | accuracy (reviewer's labels) | accuracy (given labels) | "
             "of them leak-free | accuracy (reviewer's labels) | all reviewed test images | accuracy "
             "(reviewer's labels) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        rv = r["reviewed"]
        rf, ra = r.get("reviewed_leak_free") or rv, r.get("reviewed_all") or rv
        lines.append(f"| {r['run']} | {rv['n']} | {rv['accuracy']:.2%} | {rv['accuracy_given_labels']:.2%} | "
                     f"{rf['n']} | {rf['accuracy']:.2%} | {ra['n']} | {ra['accuracy']:.2%} |")
    if len(rows) >= 2:
        a, b = rows[0]["reviewed"], rows[-1]["reviewed"]
        lines += ["", f"{rows[-1]['run']} minus {rows[0]['run']} on the reviewed images: "
                      f"{100 * (b['accuracy'] - a['accuracy']):+.2f} points (reviewer's labels)."]
    return lines
