"""`curate train-eval` and `curate compare`: train on a split, evaluate on its test split, compare runs.

runs/<name>/ holds metrics.json (contract fields), history.json, predictions.parquet,
confusion.png, curves.png, model.pt + model.json, and checkpoints/ (last.pt + last.json).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from curate.errors import CurateError
from curate.train.runs import load_runs, run_dir
from curate.workspace import Workspace, utc_now


def input_store(ws: Workspace, rec: dict[str, Any]) -> tuple[np.ndarray, str]:
    """The images a recipe trains on: the colour aligned-crop store for a backbone (``input: auto``)
    when the workspace has one, else the grey pixel store; and a line saying which."""
    from curate.train.models import BACKBONE

    want = rec["input"]
    if want == "auto":
        want = "colour" if rec["model"] == BACKBONE else "grey"
    if want == "colour":
        colour = ws.colour_crops()
        if colour is not None:
            return colour, f"colour aligned crops {colour.shape[1]}x{colour.shape[2]}"
        grey = ws.pixels()
        return grey, (f"grey crops {grey.shape[1]}x{grey.shape[2]} (the workspace has no colour crop store"
                      + ("; replicated to 3 channels)" if rec["model"] == BACKBONE else ")"))
    grey = ws.pixels()
    return grey, f"grey crops {grey.shape[1]}x{grey.shape[2]}"


def _run_recipe(recipe: str | None, model: str | None, overrides: Any) -> dict[str, Any]:
    """The recipe (default cpu_fast) with ``overrides``; ``model`` swaps its model (and, for another
    model than the recipe's, its model_args, and its backbone/checkpoint unless the model is a backbone)."""
    from curate.train.recipes import load_recipe

    extra = dict(overrides) if isinstance(overrides, dict) else None
    rec = load_recipe(recipe or "cpu_fast", extra if extra is not None else overrides)
    if model:
        other = model != rec["model"]
        rec = load_recipe(rec | {"model": model, "model_args": {} if other else rec["model_args"]}
                          | ({"backbone": None, "checkpoint": None} if other and model != "backbone" else {}))
    return rec


def _split_parts(ws: Workspace, split: str, frame: pd.DataFrame, pixels: np.ndarray,
                 index: dict[str, int]) -> tuple[dict[str, tuple[pd.DataFrame, np.ndarray, np.ndarray]], str]:
    """Rows, images and class indices of the split's train, val and test parts; the part evaluated on
    (test, else val). CurateError without train rows or without rows to evaluate on."""
    parts = {}
    for s in ("train", "val", "test"):
        rows = frame[frame["split"] == s]
        parts[s] = (rows, np.asarray(pixels[ws.index_of(rows["image_id"])]) if len(rows) else
                    np.zeros((0,) + pixels.shape[1:], np.uint8), rows["label"].map(index).to_numpy(np.int64))
    if len(parts["train"][0]) == 0:
        raise CurateError(f"split {split!r} has no train rows")
    eval_split = "test" if len(parts["test"][0]) else "val"
    if len(parts[eval_split][0]) == 0:
        raise CurateError(f"split {split!r} has neither test nor val rows to evaluate on")
    return parts, eval_split


def _run_folder(ws: Workspace, name: str, rec: dict[str, Any], resume: bool) -> Path:
    """runs/<name>/, made once the recipe's checkpoint file is found; CurateError when a finished run of
    that name is there and ``resume`` is off."""
    if rec["checkpoint"]:
        from curate.train.models import checkpoint_file

        checkpoint_file(rec["checkpoint"])  # a missing file stops the run before its folder is made
    out = run_dir(ws, name)
    if out.exists() and not resume and (out / "metrics.json").exists():
        raise CurateError(f"{out}: a finished run of this name exists; choose --name or pass --resume", exit_code=2)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _evaluate_model(model, x_ev: np.ndarray, y_ev: np.ndarray, classes: list[str], rec: dict[str, Any],
                    device: str) -> tuple[np.ndarray, dict[str, Any], float]:
    """Probabilities on the evaluated images (TTA as the recipe says), their metrics (with the accuracy
    without TTA when TTA is on) and the seconds the prediction took."""
    from curate.train.metrics import evaluate
    from curate.train.trainer import predict_proba

    t_eval = time.perf_counter()
    probs = predict_proba(model, x_ev, tta=bool(rec["tta"]), batch_size=int(rec["eval_batch_size"]), device=device)
    eval_seconds = time.perf_counter() - t_eval
    metrics = evaluate(y_ev, probs, classes)
    if rec["tta"]:
        plain = predict_proba(model, x_ev, tta=False, batch_size=int(rec["eval_batch_size"]), device=device)
        metrics["accuracy_no_tta"] = float((plain.argmax(1) == y_ev).mean())
    return probs, metrics, eval_seconds


def _predictions(eval_rows: pd.DataFrame, eval_split: str, probs: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """predictions.parquet: each evaluated image's label, predicted class, confidence and class probabilities."""
    pred = pd.DataFrame({"image_id": eval_rows["image_id"].to_numpy(), "split": eval_split,
                         "label": eval_rows["label"].to_numpy(),
                         "pred": [classes[i] for i in probs.argmax(1)],
                         "confidence": probs.max(1).astype(np.float32)})
    for i, c in enumerate(classes):
        pred[f"p_{c}"] = probs[:, i]
    return pred


def train_eval(ws: Workspace, split: str, *, recipe: str | None = None, model: str | None = None,
               name: str | None = None, overrides: Any = None, seed: int = 0, device: str = "auto",
               resume: bool = False, quiet: bool = False, argv: list[str] | None = None) -> dict[str, Any]:
    """Train ``recipe`` on splits/<split> train rows (val for model selection), evaluate on test.

    Writes runs/<name>/: metrics.json, history.json, predictions.parquet, confusion.png, curves.png,
    model.pt + model.json and checkpoints/.

    Parameters
    ----------
    ws : Workspace
        A workspace holding the split.
    split : str
        A split written by ``curate split`` (e.g. ``cleaned`` or ``raw``). It needs train rows and test
        (else val) rows to evaluate on; when it has test rows, its val rows pick the best epoch.
    recipe : str, optional
        A bundled recipe name (configs/train/*.yaml) or a recipe YAML path; None = ``cpu_fast``.
        Default None.
    model : str, optional
        Train this model instead of the recipe's (e.g. ``baseline_cnn`` or ``backbone``); another model
        than the recipe's starts from its default model_args. Default None.
    name : str, optional
        The run's folder under runs/ (no ``/``, not starting with ``.``); None =
        ``<split>-<recipe>[-<model>]``. Default None.
    overrides : list of str or dict, optional
        Recipe keys to change: ``KEY=VALUE`` strings or a dict (e.g. ``epochs=5``); an unknown key is
        refused. Default None.
    seed : int, default=0
        Seed of initialisation, shuffling and augmentation (same seed, same model on a CPU).
    device : str, default="auto"
        ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
    resume : bool, default=False
        Continue an interrupted run of this name from its last checkpoint (a finished run of this name
        is refused unless ``resume``).
    quiet : bool, default=False
        No progress bars, no line per epoch and no input line on stderr.
    argv : list of str, optional
        Recorded as the run's command line in workspace.json (``["pipeline", "train-eval"]`` from a
        pipeline); None = this process's. Default None.
    """
    started = utc_now()
    t0 = time.perf_counter()
    ws = Workspace.open(ws.root)
    rec = _run_recipe(recipe, model, overrides)
    name = _run_name(name, split, rec, model)
    classes, parts, eval_split, input_desc = _run_inputs(ws, split, rec, quiet)
    targets = _train_targets(ws, split, parts["train"][0], classes)
    rec, steps_from = _resolve_min_steps(ws, split, rec, len(parts["train"][2]))
    out = _run_folder(ws, name, rec, resume)
    result, has_val = _fit(parts, eval_split, rec, len(classes), seed=seed, device=device, quiet=quiet,
                           checkpoint_dir=out / "checkpoints", resume=resume, soft_targets=targets)
    eval_rows, x_ev, y_ev = parts[eval_split]
    probs, metrics, eval_seconds = _evaluate_model(result.model, x_ev, y_ev, classes, rec, device)
    n_train, n_val = len(parts["train"][2]), len(parts["val"][2])
    metrics.update({
        "run": name, "split": split, "eval_split": eval_split, "recipe": rec, "model": rec["model"], "seed": seed,
        "images_per_s": result.images_per_s, "seconds": round(time.perf_counter() - t0, 2),
        "train_seconds": result.seconds, "eval_seconds": round(eval_seconds, 2), "tta": bool(rec["tta"]),
        "epochs_run": len(result.history), "best_epoch": result.best_epoch, "stopped_early": result.stopped_early,
        "min_steps_from": steps_from,
        "val_accuracy": max((h.get("val_acc", 0.0) for h in result.history), default=None) if has_val else None,
        "n_train": int(n_train), "n_val": int(n_val) if has_val else 0, "n_eval": int(len(y_ev)),
        "soft_targets": targets is not None,
        **_device_fields(device), "input": input_desc, "pretrained": result.pretrained,
        "started": started, "finished": utc_now(),
    })
    _write_run(ws, name, out, result, metrics, _predictions(eval_rows, eval_split, probs, classes),
               extra={"classes": classes, "recipe": rec["name"], "split": split, "input": input_desc})
    ws.record_run("train-eval", argv=argv, seed=seed, started=started,
                  options={"split": split, "recipe": rec["name"], "model": rec["model"], "name": name,
                           "resume": resume},
                  counts={"train": int(n_train), "eval": int(len(y_ev)), "epochs": len(result.history),
                          "accuracy": round(metrics["accuracy"], 4)})
    return {k: metrics[k] for k in ("run", "split", "eval_split", "model", "seed", "accuracy", "macro_f1",
                                    "images_per_s", "seconds", "epochs_run", "best_epoch", "n_train", "n_eval")} | {
        "recipe": rec["name"], "path": str(out)}


def _run_name(name: str | None, split: str, rec: dict[str, Any], model: str | None) -> str:
    """The run's folder name (default ``<split>-<recipe>[-<model>]``); CurateError for a name that is no
    plain folder name."""
    name = name or f"{split}-{rec['name']}" + (f"-{model}" if model else "")
    if not name or "/" in name or name.startswith("."):
        raise CurateError(f"bad run name {name!r}", exit_code=2)
    return name


def _run_inputs(ws: Workspace, split: str, rec: dict[str, Any], quiet: bool
                ) -> tuple[list[str], dict[str, tuple[pd.DataFrame, np.ndarray, np.ndarray]], str, str]:
    """The split's class list, its parts (:func:`_split_parts`), the part evaluated on, and the line
    saying which images the recipe trains on (:func:`input_store`; logged unless ``quiet``)."""
    from curate.split.api import split_classes
    from curate.split.store import read_split

    frame = read_split(ws, split)
    classes = split_classes(ws, split, frame)
    pixels, input_desc = input_store(ws, rec)
    if not quiet:
        from curate.logs import get_logger

        get_logger(__name__).info(f"train-eval {split}: {len(classes)} classes ({', '.join(classes)}); "
                                  f"input: {input_desc}")
    parts, eval_split = _split_parts(ws, split, frame, pixels, {c: i for i, c in enumerate(classes)})
    return classes, parts, eval_split, input_desc


def _resolve_min_steps(ws: Workspace, split: str, rec: dict[str, Any], n_train: int
                       ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``min_steps: raw`` -> the steps the recipe's epochs take on the split's train rows plus the train
    images its cleaning removed (from its ledger), i.e. on the split before cleaning; the recipe and what
    that was resolved from."""
    if rec.get("min_steps") != "raw":
        return rec, None
    from curate.split.store import train_images_removed_by_cleaning
    from curate.train.trainer import steps_before_cleaning

    removed = train_images_removed_by_cleaning(ws, split) or 0
    steps = steps_before_cleaning(rec, n_train + removed)
    return rec | {"min_steps": steps}, {"min_steps": "raw", "train_images": n_train,
                                        "removed_by_cleaning": removed, "steps": steps}


def _train_targets(ws: Workspace, split: str, train_rows: pd.DataFrame, classes: list[str]) -> np.ndarray | None:
    """The split's soft targets (targets.parquet, ``curate split --set soft_labels.apply=true``) in the
    order of its train rows; None without them. CurateError when they do not cover the train rows."""
    from curate.split.store import read_targets, split_dir

    table = read_targets(ws, split)
    if table is None:
        return None
    columns = [f"t_{c}" for c in classes]
    path = split_dir(ws, split) / "targets.parquet"
    if set(columns) - set(table.columns):
        raise CurateError(f"{path}: no columns {sorted(set(columns) - set(table.columns))}; re-run `curate split`")
    table = table.drop_duplicates("image_id")
    table.index = table["image_id"].astype(str).to_numpy()
    ids = train_rows["image_id"].astype(str)
    missing = ids[~ids.isin(table.index)]
    if len(missing):
        raise CurateError(f"{path}: no soft target for {len(missing)} train images (e.g. {missing.iloc[0]}); "
                          "re-run `curate split`")
    return table.loc[ids, columns].to_numpy(np.float32)


def _fit(parts: dict[str, tuple[pd.DataFrame, np.ndarray, np.ndarray]], eval_split: str, rec: dict[str, Any],
         n_classes: int, *, seed: int, device: str, quiet: bool, checkpoint_dir: Path,
         resume: bool, soft_targets: np.ndarray | None = None) -> tuple[Any, bool]:
    """Train on the train part (weighted by its ``weight`` column; on ``soft_targets`` rows when given), the
    val part picking the best epoch when the test part is the one evaluated on; the fit's result and whether
    val was used. A checkpoint that does not match the run (``resume``) is a CurateError (exit 2)."""
    from curate.train.trainer import ResumeMismatch, fit

    train_rows, x_tr, y_tr = parts["train"]
    _, x_val, y_val = parts["val"]
    has_val = len(y_val) > 0 and eval_split == "test"
    try:
        result = fit(x_tr, y_tr, rec, val_images=x_val if has_val else None, val_labels=y_val if has_val else None,
                     num_classes=n_classes, seed=seed, device=device, quiet=quiet, checkpoint_dir=checkpoint_dir,
                     sample_weights=train_rows["weight"].to_numpy(np.float32), resume=resume,
                     soft_targets=soft_targets)
    except ResumeMismatch as exc:
        raise CurateError(str(exc), exit_code=2) from None
    return result, has_val


def _device_fields(device: str) -> dict[str, Any]:
    """metrics.json's ``device``, ``threads`` and ``threads_from`` (the thread fields on a CPU only)."""
    import torch

    from curate.train.trainer import resolve_device

    dev = resolve_device(device)
    return {"device": str(dev), "threads": torch.get_num_threads() if dev.type == "cpu" else None,
            "threads_from": _threads_source() if dev.type == "cpu" else None}


def _write_run(ws: Workspace, name: str, out: Path, result: Any, metrics: dict[str, Any], predictions: pd.DataFrame,
               extra: dict[str, Any]) -> None:
    """runs/<name>/: metrics.json, history.json, predictions.parquet, model.pt + model.json (with ``extra``),
    confusion.png and curves.png."""
    from curate.train import plots
    from curate.train.trainer import save_model

    ws.write_json(f"runs/{name}/metrics.json", metrics)
    ws.write_json(f"runs/{name}/history.json", result.history)
    ws.write_parquet(f"runs/{name}/predictions.parquet", predictions)
    save_model(result.model, out, extra=extra)
    plots.plot_confusion(np.array(metrics["confusion"]), extra["classes"], out / "confusion.png",
                         title=f"{name}: {metrics['eval_split']} accuracy {metrics['accuracy']:.1%}")
    plots.plot_curves(result.history, out / "curves.png", title=name)


def train_eval_step(ws: Workspace, options: dict[str, Any], *, seed: int, quiet: bool) -> dict[str, Any]:
    """Pipeline step ``train-eval``: options ``split`` (default cleaned), ``recipe``, ``model``, ``name``, ``set``."""
    known = {"split", "recipe", "model", "name", "set", "device", "resume"}
    unknown = set(options) - known
    if unknown:
        raise CurateError(f"train-eval step: unknown option(s) {sorted(unknown)}; known: {', '.join(sorted(known))}",
                          exit_code=2)
    name = options.get("name")
    if name and (run_dir(ws, name) / "metrics.json").exists() and not options.get("resume"):
        import shutil

        shutil.rmtree(run_dir(ws, name))  # a pipeline re-run replaces its own run
    return train_eval(ws, options.get("split", "cleaned"), recipe=options.get("recipe"), model=options.get("model"),
                      name=name, overrides=options.get("set"), seed=seed, device=options.get("device", "auto"),
                      resume=bool(options.get("resume")), quiet=quiet, argv=["pipeline", "train-eval"])


def compare_runs(ws: Workspace, names: Iterable[str] | None = None, *, report: Path | None = None,
                 review: Path | None = None, against: list[str] | None = None) -> dict[str, Any]:
    """One row per run: split, model, recipe, seed, test accuracy, macro-F1, per-class F1, speed.

    Parameters
    ----------
    ws : Workspace
        A workspace holding finished runs (runs/<name>/metrics.json, from :func:`train_eval`).
    names : iterable of str, optional
        Runs to compare, in this order; a name without a finished run is a CurateError. None (or empty)
        = every finished run, oldest first. Default None.
    report : str or Path, optional
        Also write the Markdown comparison there (:mod:`curate.train.compare_report`); its path is
        returned as ``report``. None = no report. Default None.
    review : str or Path, optional
        A by-eye label review CSV (``image_id, label, verdict, shows`` and optionally ``parts``, e.g.
        reports/review/fer2013-labels-reviewed.csv), or a review of scraped photos (``path, usable_face,
        label_ok, notes``: :func:`curate.train.metrics.photo_review_labels`). Each run with predictions.parquet then also gets
        (:func:`curate.train.metrics.reviewed_accuracy`) ``reviewed``: the accuracy against the
        reviewer's labels on the test images drawn at random for the review (``parts`` containing
        ``test``; every reviewed row when there is no ``parts`` column); ``reviewed_leak_free``: the same
        without the images of a cross-split duplicate cluster (duplicates.parquet ``cross_split``); and
        ``reviewed_all``: on every reviewed image. None = no review figures. Default None.
    against : list of str, optional
        With ``review``: base runs paired one to one with ``names`` (one pair per seed, e.g. raw-s0,
        raw-s1, raw-s2 against cleaned-s0, cleaned-s1, cleaned-s2); adds ``paired``, the mean difference
        over the seeds with a 95% bootstrap interval over the reviewed test images drawn at random
        (:func:`curate.train.metrics.paired_difference`). Default None.

    Returns
    -------
    dict
        ``workspace``, ``runs`` (the rows), and ``review`` and ``report`` (their paths) when given
        (printed by :func:`render_compare`).
    """
    rows = []
    for m in load_runs(ws, names):
        rows.append({"run": m["run"], "split": m["split"], "eval_split": m.get("eval_split", "test"),
                     "model": m["model"], "recipe": m["recipe"]["name"], "seed": m["seed"],
                     "n_train": m.get("n_train"), "n_eval": m.get("n_eval"), "epochs": m.get("epochs_run"),
                     "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
                     "f1": {c: v["f1"] for c, v in m["per_class"].items()},
                     "images_per_s": m["images_per_s"], "seconds": m["seconds"]})
    result: dict[str, Any] = {"workspace": str(ws.root), "runs": rows}
    if review is not None:
        from curate.train.metrics import reviewed_accuracy

        table = pd.read_csv(review, dtype=str, keep_default_na=False)
        if "path" in table and "label_ok" in table:   # a review of scraped photos (reports/review/scraped*.csv)
            from curate.train.metrics import photo_review_labels

            table = photo_review_labels(table, ws.manifest())
        drawn = table[table["parts"].str.split("+").map(lambda p: "test" in p)] if "parts" in table else table
        dups = ws.read_parquet("duplicates.parquet")
        leaked = set() if dups is None else set(dups.loc[dups["cross_split"].astype(bool), "image_id"].astype(str))
        for row in rows:
            pred = ws.read_parquet(f"runs/{row['run']}/predictions.parquet")
            if pred is None:
                continue
            row["reviewed"] = reviewed_accuracy(pred, drawn)
            row["reviewed_leak_free"] = reviewed_accuracy(pred, drawn[~drawn["image_id"].isin(leaked)])
            row["reviewed_all"] = reviewed_accuracy(pred, table)
        result["review"] = str(review)
        if against:
            from curate.train.metrics import paired_difference

            others = [r["run"] for r in rows]
            if len(against) != len(others):
                raise CurateError(f"--against names {len(against)} run(s) for {len(others)} run(s): pair them one "
                                  "to one (one pair per seed)", exit_code=2)
            load = [ws.read_parquet(f"runs/{n}/predictions.parquet") for n in list(against) + others]
            if any(p is None for p in load):
                raise CurateError("--against: every run needs its predictions.parquet", exit_code=2)
            result["paired"] = {"base": list(against), "other": others,
                                **paired_difference(load[:len(against)], load[len(against):], drawn)}
    if report is not None:
        from curate.train.compare_report import write_compare_report

        result["report"] = str(write_compare_report(ws, result, Path(report)))
    return result


def compare_step(ws: Workspace, options: dict[str, Any], *, seed: int, quiet: bool) -> dict[str, Any]:
    """Pipeline step ``compare``: options ``runs`` (names; default every finished run) and ``report``
    (path of a Markdown comparison report)."""
    unknown = set(options) - {"runs", "report", "review"}
    if unknown:
        raise CurateError(f"compare step: unknown option(s) {sorted(unknown)}; known: report, review, runs",
                          exit_code=2)
    return compare_runs(ws, options.get("runs"), report=options.get("report") or None,
                        review=options.get("review") or None)


def render_compare(result: dict[str, Any]) -> str:
    """Fixed-width table of :func:`compare_runs`."""
    rows = result["runs"]
    if not rows:
        return "no finished runs (run `curate train-eval` first)"
    classes = list(dict.fromkeys(c for r in rows for c in r["f1"]))  # runs may predict different class sets
    head = (f"{'run':<28} {'split':<10} {'model':<15} {'train':>7} {'test':>6} {'ep':>3} {'acc':>6} {'mF1':>6} "
            + " ".join(f"{c[:5]:>5}" for c in classes) + f" {'img/s':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['run'][:28]:<28} {r['split'][:10]:<10} {r['model'][:15]:<15} {r['n_train'] or 0:>7} "
                     f"{r['n_eval'] or 0:>6} {r['epochs'] or 0:>3} {r['accuracy']:>6.3f} {r['macro_f1']:>6.3f} "
                     + " ".join(f"{r['f1'][c]:>5.2f}" if c in r["f1"] else f"{'-':>5}" for c in classes)
                     + f" {r['images_per_s']:>6.0f}")
    if len({(r["eval_split"], r["n_eval"]) for r in rows}) > 1:
        lines.append("note: the runs were evaluated on different test sets; accuracies are not comparable")
    for r in rows:
        if r.get("reviewed"):
            lines.append(f"{r['run'][:28]:<28} reviewed test images: {r['reviewed']['n']}, accuracy "
                         f"{r['reviewed']['accuracy']:.2%} (reviewer's labels), {r['reviewed']['accuracy_given_labels']:.2%} (given)")
    pair = result.get("paired")
    if pair:
        for which in ("reviewed", "given"):
            m = pair[which]
            lines.append(f"{'+'.join(pair['other'])} minus {'+'.join(pair['base'])} on {pair['images']} reviewed images "
                         f"({which} labels), mean of {pair['seeds']} seeds: {100 * m['difference']:+.2f} points "
                         f"(95% CI {100 * m['ci95'][0]:+.2f} to {100 * m['ci95'][1]:+.2f}; per seed "
                         + ", ".join(f"{100 * d:+.2f}" for d in m["seed_differences"]) + ")")
    return "\n".join(lines)


def render_train_eval(s: dict[str, Any]) -> str:
    """One-paragraph summary of a train-eval run."""
    return (f"run {s['run']}: {s['model']} ({s['recipe']}) on split {s['split']} -> {s['eval_split']} "
            f"accuracy {s['accuracy']:.4f}, macro-F1 {s['macro_f1']:.4f} "
            f"({s['n_train']:,} train / {s['n_eval']:,} {s['eval_split']} images, {s['epochs_run']} epochs, "
            f"{s['images_per_s']:.0f} img/s, {s['seconds']:.0f}s)\n  {s['path']}")


def _threads_source() -> str | None:
    """Where the CPU thread count came from (--threads, CURATE_THREADS, OMP_NUM_THREADS, usable cores ...)."""
    from curate.threads import applied

    choice = applied().get("torch")
    return choice.source if choice else None
