"""Orchestration of the mislabel check: workspace in, OOF files and findings out.

``run_mislabel`` is behind both ``curate mislabel`` and the pipeline step ``mislabel``.
Outputs (workspace root): ``oof_probs.npy`` (N x C float32), ``oof_index.parquet``
(image_id, fold, given_label; row i = probs row i), ``oof_meta.json``; per-fold results in
``mislabel/fold_<k>.npz``; extra signals in ``mislabel/signals.npz``; and ``check="mislabel"``
rows in ``findings.parquet``.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from curate.errors import CurateError
from curate.labels import CLASSES
from curate.logs import get_logger
from curate.settings import MislabelSettings, as_settings, load_settings
from curate.workspace import Workspace, utc_now

CHECK = "mislabel"
logger = get_logger(__name__)


def labelled_rows(manifest: pd.DataFrame) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(row positions with a label, class names, label index per such row)."""
    labels = manifest["label"]
    rows = np.flatnonzero(labels.notna().to_numpy())
    present = pd.unique(labels.iloc[rows].astype(str))
    classes = list(CLASSES) + sorted(c for c in present if c not in CLASSES)
    lookup = {c: i for i, c in enumerate(classes)}
    y = np.array([lookup[str(v)] for v in labels.iloc[rows]], dtype=np.int64)
    return rows, classes, y


def group_ids(ws: Workspace, rows: np.ndarray) -> tuple[np.ndarray, str]:
    """Duplicate groups of the labelled rows: dedupe clusters when present, plus equal digests."""
    from curate.mislabel.folds import duplicate_groups

    manifest = ws.manifest().iloc[rows]
    ids = manifest["image_id"].astype(str).to_numpy()
    keys: list[Any] = [manifest["digest"].astype(object).where(manifest["digest"].notna(), None).to_numpy()]
    source = "digest"
    dups = ws.read_parquet("duplicates.parquet")
    if dups is not None and len(dups):
        cluster = pd.Series(dups["cluster_id"].to_numpy(), index=dups["image_id"].astype(str))
        cluster = cluster[~cluster.index.duplicated()]
        keys.append(pd.Series(ids).map(cluster).astype(object).to_numpy())
        source = "duplicates.parquet+digest"
    return duplicate_groups(len(rows), *keys), source


def _recipe(cfg: MislabelSettings) -> dict[str, Any]:
    from curate.train.recipes import load_recipe

    return load_recipe(cfg.recipe, dict(cfg.recipe_overrides) or None)


def run_mislabel(ws: Workspace, *, overrides: dict[str, Any] | list[str] | None = None,
                 config_file: str | Path | None = None, seed: int = 0, quiet: bool = False,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Compute probabilities (k-fold or one dynamics run), score every labelled image, write findings.

    In ``oof`` mode the out-of-fold model must first show it can judge labels at all
    (:func:`curate.mislabel.skill.skill_test`): with ``b`` the majority-class share (or chance,
    whichever is higher), its accuracy must reach ``b + min_skill * (1 - b)`` (default
    ``min_skill`` 0.1: a tenth of the majority answer's errors removed) in every fold, and
    pooled with a one-sided exact binomial test at ``min_skill_p`` (default 0.01). When it does
    not, every image is still scored but nothing is flagged and no label suggested; every
    evidence text starts with ``not judged: out-of-fold accuracy X% vs majority-class Y% (p=...)``,
    and the summary (and oof_meta.json) get ``judged: false`` and the ``reason``.

    Parameters
    ----------
    ws : Workspace
        An ingested workspace; its labelled face crops are scored (photos without a face crop are left
        out). Fewer than ``2 * folds`` of them is a CurateError.
    overrides : list of str or dict, optional
        ``KEY=VALUE`` strings (``--set``) or a nested dict merged last over configs/mislabel.yaml, e.g.
        ``mode`` (``oof`` | ``dynamics``; default oof), ``folds`` (default 5), ``recipe`` (default
        oof_cpu), ``device`` (``auto`` | ``cpu`` | ``cuda``; default auto), ``variant``; an unknown key
        or a value of the wrong kind (another mode, say) is refused (ConfigError, exit 2). Default None.
    config_file : str or Path, optional
        A YAML file merged over those defaults before ``overrides`` (``--config``). Default None.
    seed : int, default=0
        Seed of the fold assignment and of the training (same seed, same findings on a CPU).
    quiet : bool, default=False
        No progress bars.
    log : callable, optional
        Receives the progress lines (one str each); None = the ``curate`` logger (INFO). The not-judged
        warning always goes to the logger (WARNING). Default None.
    """
    from curate.mislabel.scoring import evidence_text

    log = log or logger.info

    started = utc_now()
    t0 = time.perf_counter()
    cfg = load_settings("mislabel", overrides, config_file)  # mode oof | dynamics, folds >= 2, ...: checked there
    mode = cfg.mode
    manifest = ws.manifest()
    rows, classes, y, no_face = _labelled_faces(ws, manifest, log)
    if len(rows) < 2 * cfg.folds:
        raise CurateError(f"{ws.root}: only {len(rows)} labelled images; the mislabel check needs at least "
                          f"{2 * cfg.folds}")
    ids = manifest["image_id"].iloc[rows].astype(str).to_numpy()
    images = ws.pixels()[rows] if len(rows) < len(manifest) else ws.pixels()
    groups, group_source = group_ids(ws, rows)
    recipe = _recipe(cfg)
    summary: dict[str, Any] = {"mode": mode, "images": int(len(rows)), "photos_without_face": no_face, "classes": classes,
                               "recipe": recipe["name"], "groups_from": group_source}
    headline = ""
    if mode == "oof":
        probs, aum, knn, scores, part, headline = _oof_scores(ws, cfg, rows, images, y, ids, classes, groups, group_source,
                                                              recipe, seed=seed, quiet=quiet, log=log)
    else:
        probs, aum, knn, scores, part = _dynamics_scores(cfg, images, y, recipe, len(classes), seed=seed, quiet=quiet)
    summary.update(part)
    evidence = evidence_text(probs, y, classes, knn=knn, aum=aum)
    if not summary["judged"]:  # a model no better than the majority class cannot judge labels: flag nothing
        scores = replace(scores, flagged=np.zeros(len(y), bool), suggested=np.full(len(y), -1, np.int64),
                         estimated_issues=0)
        evidence = [f"{headline} | {text}" for text in evidence]
        logger.warning(f"warning: mislabel {summary['reason']}")
    summary.update(write_mislabel_findings(ws, ids, y, classes, scores, evidence, cfg=cfg, raw_probs=probs))
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    ws.record_run("mislabel", seed=seed, started=started, options=cfg.to_dict(),
                  counts={"images": summary["images"], "flagged": summary["flagged"],
                          "judged": bool(summary["judged"])})
    return summary


def _labelled_faces(ws: Workspace, manifest: pd.DataFrame,
                    log: Callable[[str], None]) -> tuple[np.ndarray, list[str], np.ndarray, int]:
    """:func:`labelled_rows` without the photos that have no face crop, and how many those were (a
    line to ``log`` when there are any)."""
    from curate.faces.api import face_crop_rows

    rows, classes, y = labelled_rows(manifest)
    is_face = face_crop_rows(ws)[rows]
    no_face = int((~is_face).sum())
    if no_face:
        log(f"mislabel: {no_face:,} photos without a face crop left out (see no_face)")
    return rows[is_face], classes, y[is_face], no_face


def _dynamics_scores(cfg: MislabelSettings, images: np.ndarray, y: np.ndarray, recipe: dict[str, Any],
                     n_classes: int, *, seed: int, quiet: bool) -> tuple[Any, ...]:
    """The dynamics part of :func:`run_mislabel`: one training run, AUM scores; returns (probs, aum, knn,
    scores, summary fields)."""
    probs, aum, knn = dynamics_run(images, y, recipe, n_classes, seed=seed, device=cfg.device, quiet=quiet)
    scores = dynamics_scores(probs, y, aum, cfg.dynamics.aum_threshold)
    part = {"train_accuracy": round(float((probs.argmax(axis=1) == y).mean()), 4), "judged": True, "reason": None,
            "skill": {"tested": False, "why": "dynamics mode has no held-out predictions"}}
    return probs, aum, knn, scores, part


def _oof_scores(ws: Workspace, cfg: MislabelSettings, rows: np.ndarray, images: np.ndarray, y: np.ndarray, ids: np.ndarray,
                classes: list[str], groups: np.ndarray, group_source: str, recipe: dict[str, Any], *, seed: int,
                quiet: bool, log: Callable[[str], None]) -> tuple[Any, ...]:
    """The k-fold part of :func:`run_mislabel`: folds, OOF training (resumable), neighbours, the
    skill test, the OOF contract files and signals.npz; returns (probs, aum, knn, scores, summary
    fields, the not-judged headline)."""
    from curate.mislabel.folds import assign_folds
    from curate.mislabel.oof import fingerprint, run_oof, save_fold
    from curate.mislabel.scoring import knn_label_distribution
    from curate.mislabel.skill import skill_test

    k, n_classes = cfg.folds, len(classes)
    folds = assign_folds(y, groups, k=k, seed=seed)
    judge = cfg.judge
    judge_info: dict[str, Any] = {"judge": judge}
    if judge != "own":
        from curate.mislabel.judge import expression_judgement

        try:
            shipped = expression_judgement(ws, rows, y, classes, model_path=cfg.expression_model, device=cfg.device,
                                           log=log)
        except CurateError as exc:
            if judge != "auto":
                raise
            judge = "own"
            judge_info.update(judge="own", judge_auto_reason=getattr(exc, "reason", str(exc)))
            log(f"mislabel: judge auto -> own (the workspace's k-fold models): {judge_info['judge_auto_reason']}")
        else:
            if judge == "auto":
                judge = "both"
                judge_info["judge_auto_reason"] = "the expression model may judge this workspace: both"
            judge_info.update(shipped.info, judge=judge)
    if judge == "expression":
        from curate.mislabel.oof import OOFResult

        oof = OOFResult(probs=shipped.probs, embeddings=shipped.embeddings, aum=None, folds=folds)
    else:
        fp = fingerprint(ids, y, folds, recipe, seed, {"tta": cfg.tta, "classes": classes})
        oof = run_oof(images, y, folds, recipe=recipe, n_classes=n_classes, out_dir=ws.path("mislabel"),
                      fingerprint_=fp, seed=seed, device=cfg.device, tta=cfg.tta, quiet=quiet, log=log)
    probs, aum = oof.probs, oof.aum
    if judge == "both":
        from curate.mislabel.judge import product_of_experts

        probs = product_of_experts(probs, shipped.probs, float(cfg.expression_weight))
    knn = knn_label_distribution(oof.embeddings, y, n_classes, k=cfg.knn.k, blocks=folds, groups=groups)
    accuracy = float((probs.argmax(axis=1) == y).mean())
    fold_accuracy = {str(f): round(float((probs[folds == f].argmax(1) == y[folds == f]).mean()), 4) for f in range(k)}
    verdict = skill_test(probs, y, folds, min_skill_p=cfg.min_skill_p, min_skill=cfg.min_skill, classes=classes)
    save_oof(ws, ids, folds, y, probs, classes, recipe, k, accuracy, seed=seed, tta=cfg.tta,
             fold_seconds=oof.seconds, fold_accuracy=fold_accuracy, groups_from=group_source,
             judged=verdict.judged, reason=verdict.reason, skill=verdict.as_dict(), **judge_info)
    extra = {} if oof.probs_final is None else {"probs_final": oof.probs_final.astype(np.float32)}
    if aum is not None:
        extra["aum"] = aum.astype(np.float32)
    save_fold(ws.path("mislabel") / "signals.npz", knn=knn.astype(np.float32),
              embeddings=oof.embeddings.astype(np.float16), folds=folds, groups=groups, **extra)
    part = {**judge_info, "folds": k, "trained_folds": oof.trained, "skipped_folds": oof.skipped,
            "oof_accuracy": round(accuracy, 4), "fold_accuracy": fold_accuracy,
            "fold_seconds": {str(f): round(s, 1) for f, s in oof.seconds.items()},
            "judged": verdict.judged, "reason": verdict.reason, "skill": verdict.as_dict()}
    return probs, aum, knn, score_oof(cfg, probs, y, knn=knn, aum=aum, judge=judge), part, verdict.headline


def score_oof(cfg: MislabelSettings | dict[str, Any], probs: np.ndarray, y: np.ndarray, *, knn: np.ndarray | None,
              aum: np.ndarray | None, judge: str = "own"):
    """Score out-of-fold probabilities with the configured variant, after the class-prior balance
    (``class_prior_power``, see :func:`curate.mislabel.scoring.class_balanced`), and flag with the
    configured ``flag_rule`` (``auto``: ``confident`` when ``judge`` is ``expression`` or ``both``, else
    ``estimate``; see :func:`curate.mislabel.scoring.confident_disagreement`). ``cfg``: the mislabel
    settings, or the whole section as a mapping (validated here). ``judge``: whose probabilities these are
    (own | expression | both; default own)."""
    from curate.mislabel.scoring import best_other_class, class_balanced, confident_disagreement, score_variant

    cfg = as_settings("mislabel", cfg)
    balanced = class_balanced(probs, cfg.class_prior_power)
    scores = score_variant(cfg.variant, balanced, y, knn=knn, aum=aum, knn_weight=cfg.knn.weight,
                           aum_weight=cfg.aum_weight)
    if flag_rule_for(cfg, judge) == "confident":
        flagged = confident_disagreement(probs, y, cfg.max_given_prob)
        scores = replace(scores, flagged=flagged, estimated_issues=int(flagged.sum()),
                         suggested=np.where(flagged, best_other_class(scores.probs, y), scores.suggested))
    return scores


def flag_rule_for(cfg: MislabelSettings, judge: str) -> str:
    """The flag rule in force: ``cfg.flag_rule``, with ``auto`` = confident for a judge from elsewhere
    (``expression``, ``both``), estimate for the workspace's own models."""
    if cfg.flag_rule != "auto":
        return cfg.flag_rule
    return "confident" if judge in ("expression", "both") else "estimate"


def write_mislabel_findings(ws: Workspace, ids: np.ndarray, y: np.ndarray, classes: list[str], scores: Any,
                            evidence: list[str], *, cfg: MislabelSettings, raw_probs: np.ndarray | None = None,
                            certain: np.ndarray | None = None) -> dict[str, Any]:
    """Write the ``mislabel`` findings with their suggestions (:func:`suggestions`; a reviewer's
    ``certain`` relabels keep their class); return the summary fields (variant, estimated issues,
    flagged, top pairs, ambiguous)."""
    from curate.findings import make_findings, write_findings
    from curate.mislabel.scoring import is_ambiguous

    suggested = suggestions(cfg, scores, y, classes, raw_probs)
    if certain is not None:
        for i in np.flatnonzero(certain & (scores.suggested >= 0)):
            suggested[i] = classes[int(scores.suggested[i])]
    write_findings(ws, make_findings(ids, CHECK, scores.score, scores.flagged, evidence, suggested), checks=[CHECK])
    flagged = np.flatnonzero(scores.flagged)
    pairs = (pd.Series([f"{classes[y[i]]}->{suggested[i]}" for i in flagged]).value_counts().head(8).to_dict())
    return {"variant": scores.variant, "estimated_issues": int(scores.estimated_issues),
            "flagged": int(len(flagged)), "flagged_ambiguous": int(sum(is_ambiguous(suggested[i]) for i in flagged)),
            "top_flagged_pairs": pairs}


def suggestions(cfg: MislabelSettings, scores: Any, y: np.ndarray, classes: list[str],
                raw_probs: np.ndarray | None) -> list[str | None]:
    """The suggestion of every image with one (``scores.suggested >= 0``): from the out-of-fold
    probabilities as the model gave them (``suggest_from: raw``, the default: the class-prior balance
    that helps the ranking pushes suggestions towards rare classes) or the balanced ones; the
    likeliest class other than the given label, ``ambiguous: a|b`` when the next one is within
    ``ambiguity_ratio`` of it (``ambiguity_among: others``), or the older rule over all classes."""
    from curate.mislabel.scoring import suggestion_texts

    probs = raw_probs if cfg.suggest_from == "raw" and raw_probs is not None else scores.probs
    return suggestion_texts(probs, y, scores.suggested, classes, cfg.ambiguity_ratio, among=cfg.ambiguity_among)


def save_oof(ws: Workspace, ids: np.ndarray, folds: np.ndarray, y: np.ndarray, probs: np.ndarray,
             classes: list[str], recipe: dict[str, Any], k: int, accuracy: float, **extra: Any) -> None:
    """Write the OOF contract files (oof_probs.npy, oof_index.parquet, oof_meta.json) atomically."""
    from curate import atomic

    with atomic.atomic_path(ws.path("oof_probs.npy")) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.asarray(probs, dtype=np.float32))
    index = pd.DataFrame({"image_id": pd.array(ids, dtype="string"), "fold": folds.astype(np.int64),
                          "given_label": pd.array([classes[i] for i in y], dtype="string")})
    ws.write_parquet("oof_index.parquet", index)
    ws.write_json("oof_meta.json", {"classes": classes, "recipe": recipe, "folds": int(k),
                                    "accuracy": round(float(accuracy), 6), **extra})


def dynamics_run(images: np.ndarray, y: np.ndarray, recipe: dict[str, Any], n_classes: int, *, seed: int,
                 device: str, quiet: bool) -> tuple[np.ndarray, np.ndarray, None]:
    """One training run on every image: final-model probabilities and per-image AUM."""
    from curate.train.trainer import fit, predict_proba

    result = fit(np.asarray(images), y, recipe, num_classes=n_classes, seed=seed, device=device, quiet=quiet,
                 record_dynamics=True)
    probs = predict_proba(result.model, np.asarray(images), tta=False, device=device)
    dyn = np.asarray(result.dynamics, dtype=np.float64)
    return np.asarray(probs, np.float64), dyn.mean(axis=0), None


def dynamics_scores(probs: np.ndarray, y: np.ndarray, aum: np.ndarray, threshold: float):
    """Score = rank of -AUM; flagged = AUM below ``threshold`` and the final model disagrees."""
    from curate.mislabel.scoring import MislabelScores, best_other_class, rank01

    disagree = probs.argmax(axis=1) != y
    flagged = (aum < threshold) & disagree
    suggested = np.where(flagged | disagree, best_other_class(probs, y), -1)
    return MislabelScores(score=rank01(-aum), flagged=flagged, suggested=suggested, probs=probs,
                          estimated_issues=int(flagged.sum()), variant="aum_single_run")


def mislabel_step(ws: Workspace, options: dict[str, Any], *, seed: int, quiet: bool) -> dict[str, Any]:
    """Pipeline step ``mislabel``: options are configs/mislabel.yaml keys."""
    return run_mislabel(ws, overrides=options or None, seed=seed, quiet=quiet)



def load_oof(ws: Workspace) -> tuple[np.ndarray, pd.DataFrame, dict[str, Any], dict[str, np.ndarray]]:
    """The OOF outputs of an earlier ``curate mislabel`` run: probs, index, meta, signals."""
    meta = ws.read_json("oof_meta.json")
    index = ws.read_parquet("oof_index.parquet")
    if meta is None or index is None or not ws.path("oof_probs.npy").exists():
        raise CurateError(f"{ws.root}: no out-of-fold outputs; run `curate mislabel` first", exit_code=1)
    signals_path = ws.path("mislabel") / "signals.npz"
    signals: dict[str, np.ndarray] = {}
    if signals_path.exists():
        with np.load(signals_path, allow_pickle=False) as data:
            signals = {k: data[k] for k in ("knn", "aum", "groups", "folds", "probs_final") if k in data.files}
    return np.load(ws.path("oof_probs.npy")).astype(np.float64), index, meta, signals


def rescore_mislabel(ws: Workspace, *, overrides: dict[str, Any] | list[str] | None = None,
                     config_file: str | Path | None = None) -> dict[str, Any]:
    """Re-rank the mislabel findings with the reviewer's decisions, without retraining.

    Reads the OOF outputs of the last ``curate mislabel`` run and ``decisions.parquet``
    (``curate review pull``); see :mod:`curate.mislabel.feedback`. Relabelled images are flagged
    with the reviewer's label, kept ones are cleared, their undecided duplicates move with them,
    and (``rescore_strength`` > 0) the rest move with their class pair's reviewed error rate; the
    flag count stays confident learning's estimate.

    Parameters
    ----------
    ws : Workspace
        A workspace holding the OOF outputs of a ``curate mislabel`` run (oof_probs.npy,
        oof_index.parquet, oof_meta.json; CurateError without them). Its decisions.parquet holds the
        reviewer's decisions (none: nothing decided, the plain ranking).
    overrides : list of str or dict, optional
        ``KEY=VALUE`` strings (``--set``) or a nested dict merged last over configs/mislabel.yaml. Used
        here: the scoring settings (``variant``: combined | knn | margin | self_confidence | aum | cl;
        ``knn.weight``, ``aum_weight``, ``class_prior_power``), ``ambiguity_ratio`` (default 0.5) and
        ``rescore_strength`` (float >= 0, default 0: no class-pair shift). An unknown key is refused
        (ConfigError, exit 2). Default None.
    config_file : str or Path, optional
        A YAML file merged over those defaults before ``overrides`` (``--config``). Default None.

    Returns
    -------
    dict
        ``decided``, ``confirmed_errors``, ``confirmed_labels``, ``reviewed_error_rate``,
        ``by_duplicate``, ``flagged``, ``estimated_issues`` and the other findings counts.
    """
    from curate.mislabel.feedback import CORRECT, ERROR, UNKNOWN, outcomes_from_decisions, rescore
    from curate.mislabel.scoring import best_other_class, evidence_text, top_n_mask
    from curate.review.decisions import latest_decisions, read_decisions

    t0 = time.perf_counter()
    cfg = load_settings("mislabel", overrides, config_file)
    probs, index, meta, signals = load_oof(ws)
    classes = list(meta["classes"])
    ids = index["image_id"].astype(str).to_numpy()
    given = index["given_label"].astype(str).tolist()
    y = np.array([classes.index(g) for g in given], dtype=np.int64)
    knn, aum = signals.get("knn"), signals.get("aum")
    base = score_oof(cfg, probs, y, knn=knn, aum=aum, judge=str(meta.get("judge", "own")))
    latest = latest_decisions(read_decisions(ws)).reindex(ids)
    outcome = outcomes_from_decisions([None if pd.isna(d) else str(d) for d in latest["decision"]],
                                      [None if pd.isna(v) else str(v) for v in latest["new_label"]], given)
    other = best_other_class(base.probs, y)
    reviewer_label = latest["new_label"].astype(object).to_numpy()
    reviewer_class = np.array([classes.index(reviewer_label[i]) if outcome[i] == ERROR and reviewer_label[i] in classes
                               else (y[i] if outcome[i] == CORRECT else -1) for i in range(len(y))], np.int64)
    result = rescore(base.score, y, other, outcome, len(classes), strength=cfg.rescore_strength,
                     groups=signals.get("groups"), reviewer_class=reviewer_class)
    errors = outcome == ERROR
    undecided = (outcome != ERROR) & (outcome != CORRECT)
    judged = meta.get("judged", True) is not False
    n_more = max(0, int(base.estimated_issues) - int(errors.sum())) if judged else 0
    flagged = (errors & judged) | top_n_mask(result.score, n_more, eligible=undecided & (base.probs.argmax(1) != y))
    suggested = np.where(flagged & ~errors, other, -1)
    by_duplicate = flagged & (outcome == UNKNOWN) & (result.group_class >= 0) & (result.group_class != y)
    suggested = np.where(by_duplicate, result.group_class, suggested)
    for i in np.flatnonzero(errors & judged):
        suggested[i] = reviewer_class[i]
    evidence = evidence_text(probs, y, classes, knn=knn, aum=aum)
    evidence = [_rescore_note(outcome[i], reviewer_label[i], result.pair_rate[i], text,
                              classes[result.group_class[i]] if result.group_class[i] >= 0 else None)
                for i, text in enumerate(evidence)]
    scores = replace(base, score=result.score, flagged=flagged, suggested=suggested)
    summary = {"mode": "rescore", "images": int(len(y)), "decided": result.decided,
               "confirmed_errors": int(errors.sum()), "confirmed_labels": int((outcome == CORRECT).sum()),
               "reviewed_error_rate": round(result.overall_rate, 4) if result.decided else None, "judged": judged}
    summary["by_duplicate"] = int(((result.group_class >= 0) & (outcome == UNKNOWN)).sum())
    summary.update(write_mislabel_findings(ws, ids, y, classes, scores, evidence, cfg=cfg, raw_probs=probs,
                                           certain=errors | by_duplicate))
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    ws.record_run("mislabel_rescore", seed=0, started=utc_now(), options=cfg.to_dict(),
                  counts={"decided": result.decided, "flagged": summary["flagged"]})
    return summary


def _rescore_note(outcome: int, new_label: Any, pair_rate: float, text: str, duplicate_class: str | None) -> str:
    from curate.mislabel.feedback import CORRECT, ERROR

    if outcome == ERROR:
        return f"reviewer: relabel to {new_label} | {text}"
    if outcome == CORRECT:
        return f"reviewer: label confirmed | {text}"
    if duplicate_class is not None:
        return f"a reviewed duplicate shows {duplicate_class} | {text}"
    return f"{text}; reviewed error rate of this class pair {pair_rate:.0%}" if np.isfinite(pair_rate) else text
