"""Self-evaluation: flip a known share of labels in a copy, run the check, score the recovery.

Half the flips (by default) go to a uniformly drawn other class, half between confusable
pairs (sad<->neutral, fear<->surprise, angry<->neutral, ...). Every scoring variant and
cleanlab's defaults (``find_label_issues`` + self-confidence ranking) read the same
out-of-fold probabilities. Precision counts every flagged image that was not flipped as a
false positive, even though many carry a genuinely doubtful original FER2013 label.
"""
from __future__ import annotations

import datetime as _dt
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from curate.errors import CurateError
from curate.invocation import current_command
from curate.labels import CLASS_TO_INDEX
from curate.logs import get_logger
from curate.mislabel.api import labelled_rows, run_mislabel
from curate.settings import load_settings
from curate.workspace import Workspace

CONFUSABLE_PAIRS: tuple[tuple[str, str], ...] = (
    ("sad", "neutral"), ("fear", "surprise"), ("angry", "neutral"), ("angry", "disgust"),
    ("fear", "sad"), ("angry", "sad"), ("happy", "neutral"),
)
VARIANTS: tuple[str, ...] = ("cl", "self_confidence", "margin", "knn", "aum", "combined")


def inject_flips(labels: np.ndarray, n_classes: int, rate: float, rng: np.random.Generator, *,
                 pair_share: float = 0.5, pairs: tuple[tuple[int, int], ...] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Flip ``rate`` of the labels; returns (new labels, kind: 0 none, 1 uniform, 2 pair).

    Pair flips pick images whose label has a confusable partner and move it to a partner
    (chosen uniformly when there are several); uniform flips move to any other class.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    if pairs is None:
        pairs = tuple((CLASS_TO_INDEX[a], CLASS_TO_INDEX[b]) for a, b in CONFUSABLE_PAIRS)
    partners: dict[int, list[int]] = {}
    for a, b in pairs:
        partners.setdefault(a, []).append(b)
        partners.setdefault(b, []).append(a)
    n_flip = int(round(rate * n))
    n_pair = int(round(pair_share * n_flip))
    order = rng.permutation(n)
    eligible = order[np.isin(labels[order], list(partners))]
    pair_rows = eligible[:n_pair]
    rest = np.setdiff1d(order, pair_rows, assume_unique=True)
    uniform_rows = rng.permutation(rest)[:n_flip - len(pair_rows)]
    new = labels.copy()
    kind = np.zeros(n, dtype=np.int64)
    for r in pair_rows:
        options = partners[int(labels[r])]
        new[r] = options[int(rng.integers(len(options)))]
        kind[r] = 2
    shift = rng.integers(1, n_classes, size=len(uniform_rows))
    new[uniform_rows] = (labels[uniform_rows] + shift) % n_classes
    kind[uniform_rows] = 1
    return new, kind


def recovery_metrics(score: np.ndarray, flagged: np.ndarray, truth: np.ndarray, *,
                     suggested: np.ndarray | None = None, original: np.ndarray | None = None,
                     kind: np.ndarray | None = None, target_recall: float = 0.7) -> dict[str, float]:
    """Precision/recall of the flag set, average precision of the ranking, best precision at
    ``target_recall`` along the ranking (an oracle threshold), and suggestion accuracy."""
    truth = np.asarray(truth, bool)
    flagged = np.asarray(flagged, bool)
    tp = int((flagged & truth).sum())
    out = {"flagged": int(flagged.sum()), "precision": tp / max(int(flagged.sum()), 1),
           "recall": tp / max(int(truth.sum()), 1)}
    out["f1"] = 2 * out["precision"] * out["recall"] / max(out["precision"] + out["recall"], 1e-12)
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    hits = truth[order]
    cum = np.cumsum(hits)
    precision_at = cum / np.arange(1, len(hits) + 1)
    recall_at = cum / max(int(truth.sum()), 1)
    out["average_precision"] = float((precision_at * hits).sum() / max(int(truth.sum()), 1))
    reach = recall_at >= target_recall
    out[f"precision_at_recall_{target_recall:g}"] = float(precision_at[reach].max()) if reach.any() else 0.0
    if kind is not None:
        for code, name in ((1, "uniform"), (2, "pair")):
            sel = np.asarray(kind) == code
            out[f"recall_{name}"] = float((flagged & sel).sum() / max(int(sel.sum()), 1))
    if suggested is not None and original is not None:
        hit = flagged & truth
        out["suggestion_accuracy"] = float((np.asarray(suggested)[hit] == np.asarray(original)[hit]).mean()) \
            if hit.any() else 0.0
    return out


def evaluate_variants(probs: np.ndarray, labels: np.ndarray, original: np.ndarray, kind: np.ndarray, *,
                      knn: np.ndarray | None, aum: np.ndarray | None, knn_weight: float,
                      aum_weight: float) -> dict[str, dict[str, float]]:
    """Metrics of every variant and of cleanlab's defaults, on the same probabilities."""
    from curate.mislabel.scoring import combine_probs, score_variant

    truth = kind > 0
    results: dict[str, dict[str, float]] = {}
    try:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores
    except ImportError:  # cleanlab is a dev dependency: its rows are left out
        find_label_issues = get_label_quality_scores = None
    if find_label_issues is not None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name, p in (("cleanlab_defaults", probs), ("cleanlab_on_knn_probs", combine_probs(probs, knn, knn_weight))):
                if knn is None and name != "cleanlab_defaults":
                    continue
                mask = find_label_issues(labels, p, n_jobs=1)
                quality = get_label_quality_scores(labels, p, method="self_confidence")
                sugg = np.where(mask, _best_other(p, labels), -1)
                results[name] = recovery_metrics(1 - quality, mask, truth, suggested=sugg, original=original,
                                                 kind=kind)
    for variant in VARIANTS:
        if variant == "aum" and (aum is None or not np.isfinite(aum).any()):
            continue
        s = score_variant(variant, probs, labels, knn=knn, aum=aum, knn_weight=knn_weight, aum_weight=aum_weight)
        results[variant] = recovery_metrics(s.score, s.flagged, truth, suggested=s.suggested, original=original,
                                            kind=kind)
        results[variant]["estimated_issues"] = int(s.estimated_issues)
    return results


def _best_other(p: np.ndarray, labels: np.ndarray) -> np.ndarray:
    from curate.mislabel.scoring import best_other_class

    return best_other_class(p, labels)


def make_flipped_copy(src: Workspace, out: Path, *, subset: int, flip_rate: float, seed: int
                      ) -> tuple[Workspace, pd.DataFrame]:
    """A new workspace with ``subset`` labelled images (stratified draw) and flipped labels.

    Returns the workspace and a truth table (image_id, original, given, kind).
    """
    rng = np.random.default_rng(seed)
    manifest = src.manifest()
    rows, classes, y = labelled_rows(manifest)
    if subset and subset < len(rows):
        from sklearn.model_selection import train_test_split

        keep, _ = train_test_split(np.arange(len(rows)), train_size=subset, stratify=y, random_state=seed)
        keep = np.sort(keep)
        rows, y = rows[keep], y[keep]
    new_y, kind = inject_flips(y, len(classes), flip_rate, rng)
    sub = manifest.iloc[rows].copy().reset_index(drop=True)
    sub["label"] = pd.array([classes[i] for i in new_y], dtype="string")
    dst = Workspace(out)
    if dst.exists():
        for name in ("oof_probs.npy", "oof_index.parquet", "oof_meta.json", "findings.parquet"):
            dst.path(name).unlink(missing_ok=True)
    dst.commit(sub, np.asarray(src.pixels()[rows]), image_size=src.image_size)
    dups = src.read_parquet("duplicates.parquet")
    if dups is not None:
        dst.write_parquet("duplicates.parquet", dups[dups["image_id"].isin(set(sub["image_id"].astype(str)))])
    truth = pd.DataFrame({"image_id": sub["image_id"].astype(str), "original": [classes[i] for i in y],
                          "given": [classes[i] for i in new_y], "kind": kind})
    dst.write_parquet("flip_truth.parquet", truth)
    return dst, truth


def _utc_minute() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def run_bench(src: Workspace, out: Path, *, subset: int = 0, flip_rate: float = 0.1, seed: int = 0,
              overrides: list[str] | dict | None = None, report: Path | None = Path("reports/mislabel.md"),
              rescore: bool = False, quiet: bool = False,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Make the flipped copy, run the mislabel check on it (k-fold), evaluate, write the report.

    ``rescore``: reuse the flipped copy and out-of-fold outputs already in ``out`` (from an earlier
    run of this benchmark) and only score the variants again, e.g. after a scoring change. Progress
    lines go to ``log`` when given, else to the ``curate`` logger.
    """
    log = log or get_logger(__name__).info
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    if rescore:
        ws = Workspace(Path(out))
        previous = ws.read_json("bench_mislabel.json") if ws.path("bench_mislabel.json").exists() else None
        truth = ws.read_parquet("flip_truth.parquet")
        if previous is None or truth is None or not ws.path("oof_probs.npy").exists():
            raise CurateError(f"{out}: no earlier benchmark run to rescore (run without --rescore first)")
        summary = {"recipe": previous["recipe"], "folds": previous["folds"],
                   "oof_accuracy": previous["oof_accuracy_vs_given"], "fold_seconds": previous["fold_seconds"]}
        log(f"rescoring the out-of-fold outputs in {ws.root}")
    else:
        ws, truth = make_flipped_copy(src, Path(out), subset=subset, flip_rate=flip_rate, seed=seed)
        log(f"flipped copy: {len(truth)} images, {(truth['kind'] > 0).sum()} flipped -> {ws.root}")
        summary = run_mislabel(ws, overrides=overrides, seed=seed, quiet=quiet, log=log)
    cfg = load_settings("mislabel", overrides)
    probs = np.load(ws.path("oof_probs.npy"))
    signals = np.load(ws.path("mislabel") / "signals.npz")
    _, classes, given = labelled_rows(ws.manifest())
    lookup = {c: i for i, c in enumerate(classes)}
    original = truth["original"].map(lookup).to_numpy()
    kind = truth["kind"].to_numpy()
    results = evaluate_variants(probs, given, original, kind, knn=signals["knn"], aum=signals["aum"],
                                knn_weight=cfg.knn.weight, aum_weight=cfg.aum_weight)
    clean_acc = float((probs.argmax(1) == original).mean())
    bench = {"images": int(len(truth)), "flipped": int((kind > 0).sum()), "flip_rate": flip_rate, "seed": seed,
             "subset": subset, "recipe": summary["recipe"], "folds": summary.get("folds"),
             "oof_accuracy_vs_given": summary.get("oof_accuracy"), "oof_accuracy_vs_original": round(clean_acc, 4),
             "fold_seconds": summary.get("fold_seconds"), "seconds": round(time.perf_counter() - t0, 1),
             "load_average_start": [round(v, 2) for v in load_before],
             "load_average_end": [round(v, 2) for v in os.getloadavg()],
             "command": current_command(),
             "measured_at": _utc_minute(),
             "results": results}
    if rescore:  # keep the measurements of the run that trained the folds
        for key in ("flip_rate", "seed", "subset", "seconds", "load_average_start", "load_average_end", "command",
                    "measured_at"):
            if key in previous:
                bench[key] = previous[key]
        bench["rescored"] = {"command": current_command(),
                             "at": _utc_minute()}
    ws.write_json("bench_mislabel.json", bench)
    if report is not None:
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        from curate.report.sections import existing_sections

        kept = existing_sections(Path(report))  # e.g. the by-eye review section (curate mislabel-bench --review)
        Path(report).write_text(render_report(bench) + "".join("\n" + block for block in kept), encoding="utf-8")
        bench["report"] = str(report)
    return bench


def mislabel_bench_step(ws: Workspace, options: dict[str, Any], *, seed: int, quiet: bool) -> dict[str, Any]:
    """Pipeline step ``mislabel-bench``: options ``out`` (workspace of the flipped copy), ``subset``,
    ``flip_rate``, ``report`` (markdown path) and ``mislabel`` (overrides of configs/mislabel.yaml)."""
    known = {"out", "subset", "flip_rate", "report", "mislabel"}
    unknown = set(options) - known
    if unknown:
        raise CurateError(f"mislabel-bench: unknown options {sorted(unknown)}; known: {sorted(known)}", exit_code=2)
    out = Path(options.get("out") or (str(ws.root) + "-flipped"))
    return run_bench(ws, out, subset=int(options.get("subset", 0)), flip_rate=float(options.get("flip_rate", 0.1)),
                     seed=seed, overrides=options.get("mislabel") or None,
                     report=Path(options["report"]) if options.get("report") else None, quiet=quiet)


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def render_bench(bench: dict[str, Any]) -> str:
    """Console table of the benchmark."""
    cols = ("flagged", "precision", "recall", "f1", "average_precision", "precision_at_recall_0.7",
            "recall_uniform", "recall_pair", "suggestion_accuracy")
    lines = [f"{bench['images']} images, {bench['flipped']} flipped; OOF accuracy vs given "
             f"{bench['oof_accuracy_vs_given']}, vs original {bench['oof_accuracy_vs_original']}",
             f"{'variant':<22}" + "".join(f"{c[:12]:>13}" for c in cols)]
    for name, m in bench["results"].items():
        lines.append(f"{name:<22}" + "".join(f"{_fmt(m.get(c, '')):>13}" for c in cols))
    return "\n".join(lines)


def render_report(bench: dict[str, Any]) -> str:
    """reports/mislabel.md body."""
    cols = ("flagged", "precision", "recall", "f1", "average_precision", "precision_at_recall_0.7",
            "recall_uniform", "recall_pair", "suggestion_accuracy")
    head = "| variant | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols) + "\n"
    rows = "".join(f"| {n} | " + " | ".join(_fmt(m.get(c, "")) for c in cols) + " |\n"
                   for n, m in bench["results"].items())
    when = bench.get("measured_at") or _utc_minute()
    rescored = (f" Variants rescored {bench['rescored']['at']} on the same out-of-fold outputs with "
                f"`{bench['rescored']['command']}`." if bench.get("rescored") else "")
    return (f"# Mislabel detection: injected-flip benchmark\n\n"
            f"Measured {when}. Command: `{bench['command']}`.{rescored}\n\n"
            f"- {bench['images']} FER2013 images (stratified subset {bench['subset'] or 'all'}), "
            f"{bench['flipped']} labels flipped ({bench['flip_rate']:.0%}: half to a uniformly drawn other class, "
            f"half between confusable pairs), seed {bench['seed']}.\n"
            f"- Out-of-fold probabilities: recipe `{bench['recipe']}`, {bench['folds']} duplicate-aware stratified "
            f"folds; accuracy vs the flipped labels {bench['oof_accuracy_vs_given']}, vs the original labels "
            f"{bench['oof_accuracy_vs_original']}. Fold seconds: {bench['fold_seconds']}. Whole run "
            f"{bench['seconds']}s; load average at start {bench['load_average_start']}, at end "
            f"{bench['load_average_end']} (2 shared cores).\n\n"
            f"{head}{rows}\n"
            "Operating points: `cleanlab_defaults` = `cleanlab.filter.find_label_issues(labels, pred_probs)` "
            "(prune_by_noise_rate), ranked by self-confidence; `cl` = our confident-learning implementation "
            "(identical algorithm); the other variants flag the top-n images by score with n = the number of "
            "issues estimated by confident learning (calibrated confident joint) on the probabilities they use, "
            "never an image whose most probable class is its label. `precision_at_recall_0.7` is the best "
            "precision along the ranking once 70 % of the flips are found (an oracle threshold, for comparing "
            "rankings). Precision counts every flagged non-flipped image as a false positive although FER2013's "
            "original labels are themselves noisy. `suggestion_accuracy` = share of recovered flips whose "
            "suggested label is the original one.\n")
