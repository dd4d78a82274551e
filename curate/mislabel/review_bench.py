"""Benchmark the mislabel ranking against a by-eye review of real FER2013 labels.

The review (``reports/review/fer2013-labels-reviewed.csv``, made by
``tools/mislabel_review_sheets.py``) holds one row per reviewed image: its given ``label``, the
``parts`` it was drawn for (``top`` of a ranking, ``random``, ``test`` = PrivateTest, later
``round2`` images) and a ``verdict``: ``right``, ``wrong`` (``shows`` = the class it shows),
``ambiguous`` (``shows`` = ``a|b``) or ``unusable``. A label is *wrong* when the verdict is
``wrong`` or ``ambiguous`` between two classes that do not include it; ``unusable`` images are
left out of every figure. Unbiased figures (AP, flag precision / recall) use only the images
drawn at random (``random``, and ``random``+``test``); top-of-ranking precision counts the
reviewed images among a ranking's top 200 and says how many of the 200 were reviewed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from curate.errors import CurateError
from curate.labels import CLASS_TO_INDEX as CLASS_INDEX
from curate.settings import MislabelSettings, load_settings

VERDICTS = ("right", "wrong", "ambiguous", "unusable")
REVIEW_COLUMNS = ("image_id", "label", "parts", "verdict", "shows")
TOP = 200


def read_review(path: str | Path, classes: list[str]) -> pd.DataFrame:
    """The review table, checked: known verdicts, ``shows`` naming known classes."""
    review = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in REVIEW_COLUMNS if c not in review.columns]
    if missing:
        raise CurateError(f"{path}: missing columns {missing}", exit_code=2)
    for i, row in review.iterrows():
        if row["verdict"] not in VERDICTS:
            raise CurateError(f"{path} row {i + 2}: verdict {row['verdict']!r} (expected one of {VERDICTS})", exit_code=2)
        named = [c for c in row["shows"].split("|") if c]
        if any(c not in classes for c in named):
            raise CurateError(f"{path} row {i + 2}: shows {row['shows']!r} names an unknown class", exit_code=2)
    return review


def review_truth(review: pd.DataFrame) -> pd.DataFrame:
    """Per reviewed image: ``usable``, ``error`` (the given label is wrong), ``fits`` (the
    classes the face shows: the wrong verdict's class or the ambiguous pair) and ``outcome``
    as a reviewer's decision would give it (1 wrong: relabel; 0 right or ambiguous with the given
    label in the pair: keep; -1 unusable: exclude, no word on the label)."""
    shows = review["shows"].fillna("").astype(str)
    in_pair = np.array([g in s.split("|") for g, s in zip(review["label"], shows)])
    verdict = review["verdict"].to_numpy()
    usable = verdict != "unusable"
    error = usable & ((verdict == "wrong") | ((verdict == "ambiguous") & ~in_pair))
    label_stands = usable & ~error  # right, or ambiguous with the given label in the pair: a reviewer keeps it
    outcome = np.where(error, 1, np.where(label_stands, 0, -1))
    shown = [CLASS_INDEX.get(s, -1) if v == "wrong" else -1 for v, s in zip(verdict, shows)]
    return pd.DataFrame({"image_id": review["image_id"].astype(str).to_numpy(), "usable": usable, "error": error,
                         "outcome": outcome, "fits": [set(s.split("|")) - {""} for s in shows],
                         "shown_class": shown, "parts": review["parts"].astype(str).to_numpy()})


def average_precision(truth: np.ndarray, score: np.ndarray) -> float:
    """Average precision of ``score`` ranking the positives of ``truth`` (NaN without positives)."""
    truth = np.asarray(truth, bool)
    if not truth.any():
        return float("nan")
    order = np.argsort(-np.asarray(score, np.float64), kind="stable")
    hits = truth[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def ranking_figures(score: np.ndarray, flagged: np.ndarray, suggestions: list[str | None], positions: np.ndarray,
                    truth: pd.DataFrame) -> dict[str, Any]:
    """Figures of one ranking against the review (``positions``: each reviewed image's row)."""
    s, f = np.asarray(score)[positions], np.asarray(flagged)[positions]
    usable, error = truth["usable"].to_numpy(), truth["error"].to_numpy()
    out: dict[str, Any] = {}
    for name, part in (("random", ("random",)), ("random+test", ("random", "test"))):
        pool = usable & truth["parts"].map(lambda p: any(x in p.split("+") for x in part)).to_numpy()
        out[f"ap_{name}"] = average_precision(error[pool], s[pool])
        out[f"positives_{name}"] = int(error[pool].sum())
        out[f"n_{name}"] = int(pool.sum())
        if name == "random+test":
            hit = f[pool] & error[pool]
            out["flag_precision"] = float(hit.sum() / max(f[pool].sum(), 1))
            out["flag_recall"] = float(hit.sum() / max(error[pool].sum(), 1))
    top = set(np.argsort(-np.asarray(score), kind="stable")[:TOP].tolist())
    in_top = np.array([p in top for p in positions]) & usable
    out["top_reviewed"] = int(in_top.sum())
    out["top_precision"] = float(error[in_top].mean()) if in_top.any() else float("nan")
    out.update(suggestion_figures([suggestions[p] for p in positions], truth))
    return out


def suggestion_figures(suggestions: list[str | None], truth: pd.DataFrame) -> dict[str, Any]:
    """How often the suggestion names what the reviewer saw, over the reviewed wrong labels.

    ``suggestion_right``: the suggestion (its first class when ambiguous) is the class shown
    (or one of the reviewer's pair); ``confident_right``: the same over suggestions not marked
    ambiguous; ``ambiguous_share``: share of the wrong labels whose suggestion is ambiguous.
    """
    first, confident = [], []
    for text, fits, err in zip(suggestions, truth["fits"], truth["error"]):
        if not err or text is None:
            continue
        ambiguous = text.startswith("ambiguous: ")
        classes = text[len("ambiguous: "):].split("|") if ambiguous else [text]
        first.append(classes[0] in fits)
        if not ambiguous:
            confident.append(classes[0] in fits)
    n_errors = int(truth["error"].sum())
    return {"suggestion_right": float(np.mean(first)) if first else float("nan"),
            "confident_right": float(np.mean(confident)) if confident else float("nan"),
            "ambiguous_share": float(1 - len(confident) / max(len(first), 1)), "suggested_for": len(first),
            "errors_reviewed": n_errors}


def conflict_share(groups: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Share of each image's duplicate-group copies that carry another label (0 without copies)."""
    table = pd.crosstab(pd.Series(groups), pd.Series(labels))
    counts = table.loc[groups].to_numpy()
    size = counts.sum(axis=1)
    same = counts[np.arange(len(labels)), np.searchsorted(table.columns.to_numpy(), labels)] - 1
    return np.where(size > 1, 1.0 - same / np.maximum(size - 1, 1), 0.0)


def scoring_variants(probs: np.ndarray, y: np.ndarray, signals: dict[str, np.ndarray], cfg: MislabelSettings,
                     second_view: np.ndarray | None = None) -> dict[str, Any]:
    """Every ranking the benchmark compares, each a MislabelScores over the same OOF outputs."""
    from dataclasses import replace

    from curate.mislabel.scoring import class_balanced, score_variant

    knn, aum = signals.get("knn"), signals.get("aum")
    power, aum_w, knn_w = cfg.class_prior_power, cfg.aum_weight, cfg.knn.weight
    balanced = class_balanced(probs, power)
    out = {
        "cleanlab defaults (cl)": score_variant("cl", probs, y),
        "self-confidence": score_variant("self_confidence", probs, y),
        "combined, no class balance (before)": score_variant("combined", probs, y, aum=aum, aum_weight=aum_w),
        "self-confidence + class balance": score_variant("self_confidence", balanced, y),
        "combined + class balance 0.5": score_variant("combined", class_balanced(probs, 0.5), y, aum=aum,
                                                      aum_weight=aum_w),
        f"combined + class balance {power:g} (default)": score_variant("combined", balanced, y, aum=aum,
                                                                       aum_weight=aum_w),
    }
    if knn is not None:
        out["neighbour-smoothed margin + class balance"] = score_variant("knn", balanced, y, knn=knn,
                                                                          knn_weight=knn_w)
    default = out[f"combined + class balance {power:g} (default)"]
    if "probs_final" in signals:
        out["final fold models only (no snapshots) + class balance"] = score_variant(
            "combined", class_balanced(signals["probs_final"], power), y, aum=aum, aum_weight=aum_w)
    if "groups" in signals:
        boosted = np.clip(default.score + 0.1 * conflict_share(signals["groups"], y), 0, 1)
        out["default + duplicate-label conflicts"] = replace(default, score=boosted)
    if second_view is not None:
        mixed = class_balanced(0.7 * probs + 0.3 * second_view, power)
        out["CNN + HOG/LBP linear view (0.3) + class balance"] = score_variant("combined", mixed, y, aum=aum,
                                                                               aum_weight=aum_w)
        out["HOG/LBP linear view alone"] = score_variant("self_confidence", class_balanced(second_view, power), y)
    return out


def simulate_rescore(default: Any, y: np.ndarray, positions: np.ndarray, truth: pd.DataFrame, n_classes: int,
                     strength: float, groups: np.ndarray | None = None) -> dict[str, Any]:
    """A reviewer decides the top 200 (the review stands in for them), the rest is re-ranked.

    Returns the precision, among reviewed images, of the next 200 without rescoring (ranks
    201-400) and with it (the 200 highest rescored undecided images), each with its coverage.
    """
    from curate.mislabel.feedback import UNKNOWN, rescore
    from curate.mislabel.scoring import best_other_class

    order = np.argsort(-default.score, kind="stable")
    batch = order[:TOP]
    outcome = np.full(len(y), UNKNOWN, np.int64)
    reviewer_class = np.full(len(y), -1, np.int64)
    known = dict(zip(positions.tolist(), zip(truth["outcome"].tolist(), truth["shown_class"].tolist())))
    for p in batch:
        outcome[p], shown = known.get(int(p), (UNKNOWN, -1))
        reviewer_class[p] = y[p] if outcome[p] == 0 else shown
    result = rescore(default.score, y, best_other_class(default.probs, y), outcome, n_classes, strength=strength,
                     groups=groups, reviewer_class=reviewer_class)
    in_batch = np.zeros(len(y), bool)
    in_batch[batch] = True
    rescored = [p for p in np.argsort(-result.score, kind="stable") if not in_batch[p]][:TOP]
    error = dict(zip(positions.tolist(), truth["error"].tolist()))
    usable = dict(zip(positions.tolist(), truth["usable"].tolist()))

    def precision(rows: Any) -> tuple[float, int]:
        seen = [error[int(p)] for p in rows if usable.get(int(p), False)]
        return (float(np.mean(seen)) if seen else float("nan")), len(seen)

    before, n_before = precision(order[TOP:2 * TOP])
    after, n_after = precision(rescored)
    batch_decided = int((outcome != UNKNOWN).sum())
    return {"batch_decided": batch_decided, "batch_errors": int((outcome == 1).sum()),
            "next_precision_before": before, "next_reviewed_before": n_before,
            "next_precision_after": after, "next_reviewed_after": n_after,
            "overlap": len(set(order[TOP:2 * TOP].tolist()) & set(int(p) for p in rescored))}


def ambiguity_table(default: Any, y: np.ndarray, positions: np.ndarray, truth: pd.DataFrame,
                    classes: list[str], cfg: MislabelSettings, raw_probs: np.ndarray) -> list[dict[str, Any]]:
    """Suggestion figures over the reviewed wrong labels, for the configured suggestion rule and the
    older one (all classes, class-balanced probabilities, ratio 0.5), at several ``ambiguity_ratio`` values."""
    from dataclasses import replace as _replace

    from curate.mislabel.api import suggestions

    rows = []
    rules = [("others", "raw"), ("all", "balanced")]
    for among, source in rules:
        for ratio in (0.5, 0.6, 0.7, 0.8, 1.01):
            rule = _replace(cfg, ambiguity_ratio=ratio, ambiguity_among=among, suggest_from=source)
            texts = suggestions(rule, default, y, classes, raw_probs)
            texts = [texts[p] for p in positions]
            figures = suggestion_figures(texts, truth)
            said = np.array([isinstance(t, str) and t.startswith("ambiguous: ") for t in texts])
            ambiguous_verdict = truth["fits"].map(len).to_numpy() == 2
            rows.append({"ratio": ratio, "among": among, "probabilities": source, **figures,
                         "reviewer_ambiguous_called_ambiguous": float(said[ambiguous_verdict].mean())})
    return rows


def relabel_table(default: Any, y: np.ndarray, positions: np.ndarray, truth: pd.DataFrame,
                  classes: list[str], cfg: MislabelSettings, raw_probs: np.ndarray) -> list[dict[str, Any]]:
    """Among reviewed images with a confident (not ambiguous) suggestion: share whose suggestion is
    what the reviewer saw, by the suggestion's class-balanced probability (what `curate split` reads)."""
    from curate.mislabel.api import suggestions

    texts = suggestions(cfg, default, y, classes, raw_probs)
    texts = [texts[p] for p in positions]
    index = {c: i for i, c in enumerate(classes)}
    named = np.array([index.get(t, -1) if isinstance(t, str) else -1 for t in texts])
    confident = (named >= 0) & truth["usable"].to_numpy()
    p_named = default.probs[positions, np.maximum(named, 0)]
    right = np.array([n >= 0 and classes[n] in fits for n, fits in zip(named, truth["fits"])])
    rows = []
    for low in (0.0, 0.5, 0.6, 0.7, 0.8, 0.9):
        m = confident & (p_named >= low)
        rows.append({"min_probability": low, "n": int(m.sum()),
                     "relabel_right": float(right[m].mean()) if m.any() else float("nan")})
    return rows


def run_review_bench(ws: Any, review_path: str | Path, *, report: str | Path | None = None,
                     overrides: dict[str, Any] | list[str] | None = None, second_view: bool = True,
                     baselines: list[Any] | None = None, log: Any = None) -> dict[str, Any]:
    """Score every variant on the workspace's OOF outputs against the review; write the report section.

    Parameters
    ----------
    ws : Workspace with the outputs of ``curate mislabel`` (mode oof).
    review_path : the review CSV (columns ``image_id, label, parts, verdict, shows``).
    report : markdown file whose ``mislabel-review`` section is (re)written; None = no report.
    overrides : configs/mislabel.yaml overrides (the default variant's settings).
    second_view : bool, default True. Also fit the HOG/LBP linear view (about 2 CPU minutes).
    baselines : other workspaces with OOF outputs of the same images (e.g. another recipe's run);
        each adds a row scored with the default variant.
    log : callable, optional. Receives the progress lines; default None: the ``curate`` logger.
    """
    import time

    from curate.logs import get_logger

    log = log or get_logger(__name__).info

    from curate.mislabel.api import load_oof

    cfg = load_settings("mislabel", overrides)
    probs, index, meta, signals = load_oof(ws)
    classes = list(meta["classes"])
    ids = index["image_id"].astype(str).tolist()
    y = np.array([classes.index(g) for g in index["given_label"].astype(str)], dtype=np.int64)
    review = read_review(review_path, classes)
    row_of = {image_id: i for i, image_id in enumerate(ids)}
    absent = [i for i in review["image_id"] if i not in row_of]
    if absent:
        raise CurateError(f"{review_path}: {len(absent)} reviewed images are not in the OOF outputs "
                          f"(first {absent[0]}); use the workspace the review was drawn from", exit_code=1)
    truth = review_truth(review)
    positions = np.array([row_of[i] for i in review["image_id"]])
    view, view_seconds = None, 0.0
    if second_view and "folds" in signals:
        t0 = time.perf_counter()
        view = second_view_probs(ws, ids, y, signals["folds"], len(classes))
        view_seconds = time.perf_counter() - t0
        log(f"HOG/LBP view: {view_seconds:.0f}s")
    variants = scoring_variants(probs, y, signals, cfg, view)
    oof_minutes = sum(float(v) for v in (meta.get("fold_seconds") or {}).values()) / 60
    sources = {"HOG/LBP linear view alone": view,
               "CNN + HOG/LBP linear view (0.3) + class balance": None if view is None else 0.7 * probs + 0.3 * view,
               "final fold models only (no snapshots) + class balance": signals.get("probs_final")}
    table = variant_table(variants, sources, probs, y, classes, cfg, positions, truth,
                          minutes=oof_minutes, view_minutes=view_seconds / 60)
    for other_ws in baselines or []:
        table.append(baseline_row(other_ws, cfg, truth, review, classes))
    default = variants[next(n for n in variants if n.endswith("(default)"))]
    result = {"review": str(review_path), "reviewed": int(len(review)), "usable": int(truth["usable"].sum()),
              "errors": int(truth["error"].sum()), "verdicts": review["verdict"].value_counts().to_dict(),
              "oof_accuracy": float(meta.get("accuracy", float("nan"))), "oof_minutes": oof_minutes,
              "variants": table,
              "rescore": rescore_table(default, y, positions, truth, len(classes), signals.get("groups")),
              "ambiguity": ambiguity_table(default, y, positions, truth, classes, cfg, probs),
              "relabel": relabel_table(default, y, positions, truth, classes, cfg, probs),
              "per_part": part_table(truth, review)}
    if report is not None:
        from curate.mislabel.review_report import write_review_section

        write_review_section(Path(report), result)
    return result


def variant_table(variants: dict[str, Any], sources: dict[str, np.ndarray | None], probs: np.ndarray,
                  y: np.ndarray, classes: list[str], cfg: MislabelSettings, positions: np.ndarray,
                  truth: pd.DataFrame, *, minutes: float, view_minutes: float) -> list[dict[str, Any]]:
    """One row per scoring variant: the accuracy of its probabilities (``sources``, else ``probs``), its
    flag count, its minutes (the OOF run's, plus the HOG/LBP view's for variants using it) and its
    :func:`ranking_figures` against the review."""
    from curate.mislabel.api import suggestions

    table = []
    for name, scores in variants.items():
        source = sources.get(name)
        source = probs if source is None else source
        texts = suggestions(cfg, scores, y, classes, source)
        row = {"variant": name, "oof_accuracy": float((source.argmax(1) == y).mean()),
               "flagged": int(scores.flagged.sum()),
               "minutes": minutes + (view_minutes if "HOG" in name else 0.0)}
        row.update(ranking_figures(scores.score, scores.flagged, texts, positions, truth))
        table.append(row)
    return table


def rescore_table(default: Any, y: np.ndarray, positions: np.ndarray, truth: pd.DataFrame, n_classes: int,
                  groups: np.ndarray | None) -> dict[str, dict[str, Any]]:
    """:func:`simulate_rescore` for the class-pair strengths 5 and 50, with and without the duplicate
    groups, and for duplicates only (the default)."""
    return {name: simulate_rescore(default, y, positions, truth, n_classes, strength,
                                   groups=groups if dup else None)
            for name, strength, dup in (("class pairs (rescore_strength 5)", 5.0, False),
                                        ("class pairs (rescore_strength 50)", 50.0, False),
                                        ("class pairs 5 + duplicates", 5.0, True),
                                        ("duplicates only (default, rescore_strength 0)", 0.0, True))}


def second_view_probs(ws: Any, ids: list[str], y: np.ndarray, folds: np.ndarray, n_classes: int) -> np.ndarray:
    """Out-of-fold probabilities of the HOG/LBP linear view on the same folds."""
    from curate.mislabel.views import hog_lbp_features, linear_oof_probs

    manifest_ids = ws.manifest()["image_id"].astype(str)
    rows = pd.Series(np.arange(len(manifest_ids)), index=manifest_ids.to_numpy()).loc[ids].to_numpy()
    features = hog_lbp_features(ws.pixels()[rows])
    return linear_oof_probs(features, y, folds, n_classes)


def part_table(truth: pd.DataFrame, review: pd.DataFrame) -> list[dict[str, Any]]:
    """Verdict counts and wrong-label share per drawn part."""
    rows = []
    for part in ("top", "random", "test", "round2"):
        m = truth["parts"].map(lambda p: part in p.split("+")).to_numpy()
        if not m.any():
            continue
        usable = m & truth["usable"].to_numpy()
        counts = review.loc[m, "verdict"].value_counts()
        rows.append({"part": part, "n": int(m.sum()), **{v: int(counts.get(v, 0)) for v in VERDICTS},
                     "wrong_share": float(truth["error"].to_numpy()[usable].mean()) if usable.any() else float("nan")})
    return rows


def baseline_row(ws: Any, cfg: MislabelSettings, truth: pd.DataFrame, review: pd.DataFrame,
                 classes: list[str]) -> dict[str, Any]:
    """The default variant's figures on another run's OOF outputs (same images, another recipe)."""
    from curate.mislabel.api import load_oof, score_oof, suggestions

    probs, index, meta, signals = load_oof(ws)
    if list(meta["classes"]) != classes:
        raise CurateError(f"{ws.root}: classes {meta['classes']} differ from the benchmarked run's", exit_code=1)
    row_of = {image_id: i for i, image_id in enumerate(index["image_id"].astype(str))}
    positions = np.array([row_of[i] for i in review["image_id"]])
    y = np.array([classes.index(g) for g in index["given_label"].astype(str)], dtype=np.int64)
    scores = score_oof(cfg, probs, y, knn=signals.get("knn"), aum=signals.get("aum"), judge=str(meta.get("judge", "own")))
    texts = suggestions(cfg, scores, y, classes, probs)
    minutes = sum(float(v) for v in (meta.get("fold_seconds") or {}).values()) / 60
    row = {"variant": f"default scoring on recipe {meta['recipe'].get('name', '?')} (`{ws.root}`)",
           "oof_accuracy": float((probs.argmax(1) == y).mean()), "flagged": int(scores.flagged.sum()),
           "minutes": minutes}
    row.update(ranking_figures(scores.score, scores.flagged, texts, positions, truth))
    return row
