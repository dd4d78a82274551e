"""`curate split`: apply the cleaning policy and write splits/<name>/ (manifest, ledger, report, exports)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from curate.config import load_config
from curate.errors import CurateError
from curate.labels import CLASSES, canonical_label
from curate.settings import SplitMislabelSettings, SplitSettings, as_settings
from curate.split import policy
from curate.split.export import export_split
from curate.split.report import write_report
from curate.split.store import read_split, split_dir
from curate.workspace import Workspace, utc_now

SPLIT_MANIFEST_COLUMNS = ("image_id", "split", "label", "weight")


def _classes(manifest: pd.DataFrame) -> list[str]:
    present = set(manifest["label"].dropna().astype(str))
    extra = sorted(present - set(CLASSES))
    return list(CLASSES) + extra


def ordered_classes(names: Iterable[str]) -> list[str]:
    """Class names in canonical order: the seven FER classes in Kaggle code order, then the rest by name."""
    names = set(names)
    return [c for c in CLASSES if c in names] + sorted(names - set(CLASSES))


def parse_classes(value: Any, present: Iterable[str]) -> list[str] | None:
    """The ``classes`` setting as canonical class names (None = every class).

    Accepts a list or a comma-separated string; each name goes through the synonym map
    (``happiness`` -> happy, ``happyv2`` -> happy) unless it is a label of the workspace as it
    is. A name matching no label of the workspace is refused (a typo never passes silently).
    """
    if value is None or value == "" or value == []:
        return None
    items = value.split(",") if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else None
    if items is None:
        raise CurateError(f"classes: expected a list such as [happy, sad] or happy,sad, got {value!r}", exit_code=2)
    present = set(present)
    out: list[str] = []
    for item in items:
        raw = str(item).strip()
        if not raw:
            continue
        name = raw.lower() if raw.lower() in present else (canonical_label(raw) or raw.lower())
        if name not in present:
            raise CurateError(f"classes: {raw!r} is not a label of this workspace (labels: "
                              f"{', '.join(ordered_classes(present)) or 'none'})", exit_code=2)
        if name not in out:
            out.append(name)
    if not out:
        return None
    return ordered_classes(out)


def split_classes(ws: Workspace, name: str, frame: pd.DataFrame | None = None) -> list[str]:
    """The class list of a split, in order: what a classifier trained on it predicts.

    ``split.json`` records it (the ``classes`` subset, or the classes of the kept images);
    splits written before it did fall back to the labels of their manifest.
    """
    frame = read_split(ws, name) if frame is None else frame
    present = set(frame["label"].dropna().astype(str))
    recorded = ws.read_json(f"splits/{name}/split.json") or {}
    classes = [str(c) for c in recorded.get("classes") or []]
    if classes and present <= set(classes):
        return classes
    return ordered_classes(present)


def build_split(ws: Workspace, *, name: str | None = None, raw: bool | None = None, clean_test: bool | None = None,
                resplit_val: bool | None = None, balance: str | None = None, export: Iterable[str] | None = None,
                classes: Any = None, overrides: Any = None, config_file: str | Path | None = None, seed: int = 0,
                quiet: bool = False, argv: list[str] | None = None) -> dict[str, Any]:
    """Apply decisions -> classes -> no_face -> duplicates -> findings, assign splits, balance, write outputs.

    Writes splits/<name>/: manifest.parquet (image_id, split, label, weight), ledger.parquet (every image,
    kept or removed, and why), report.md, split.json and the exports. An argument left None takes the
    setting's value (configs/split.yaml, then ``config_file``, then ``overrides``).

    Parameters
    ----------
    ws : Workspace
        An ingested workspace (CurateError when it holds no images).
    name : str, optional
        The split's folder under splits/ (no ``/``, not starting with ``.``); None = the ``name``
        setting (``cleaned``), or ``raw`` when ``raw`` is on and that setting is unchanged. Default None.
    raw : bool, optional
        True = no cleaning (no decisions, duplicates or findings applied): the dataset as released;
        ``classes`` and ``exclude_no_face`` still apply. None = the ``raw`` setting (false). Default None.
    clean_test : bool, optional
        Also clean the test split (reported); refused together with ``raw``. None = the ``clean_test``
        setting (false: the test split is left untouched). Default None.
    resplit_val : bool, optional
        Re-split train+val (stratified, group-aware) instead of keeping the dataset's own val split.
        None = the ``resplit_val`` setting (false). Default None.
    balance : {"none", "undersample", "oversample", "class_weights", "prior"}, optional
        Balancing of the train rows; None = the ``balance`` setting (``none``). Default None.
    export : iterable of str, optional
        Exports to write, any of ``imagefolder``, ``csv``, ``parquet`` (others are refused); None = the
        ``export`` setting (none). Default None.
    classes : list of str or str, optional
        Keep only these classes, in every split (a list or a comma-separated string; see
        :func:`parse_classes`). The split's class list (``split.json``) is that subset, else the classes
        of the kept images. None = the ``classes`` setting (null: every class). Default None.
    overrides : list of str or dict, optional
        ``KEY=VALUE`` strings (``--set``) or a nested dict merged last over configs/split.yaml (e.g.
        ``mislabel.confident=relabel``); an unknown key is refused (ConfigError, exit 2). Default None.
    config_file : str or Path, optional
        A YAML file merged over those defaults before ``overrides`` (``--config``). Default None.
    seed : int, default=0
        Seed of the split assignment and of the balancing (same seed, same splits).
    quiet : bool, default=False
        No progress bars while exporting.
    argv : list of str, optional
        Recorded as the run's command line in workspace.json (``["pipeline", "split"]`` from a
        pipeline); None = this process's. Default None.

    Returns
    -------
    dict
        The summary written to split.json: ``steps`` (counts per policy step), ``removed``, ``relabelled``,
        ``counts`` per split, ``classes``, ``report`` and the rest (printed by :func:`render_summary`).
    """
    started = utc_now()
    t0 = time.perf_counter()
    cfg = _settings(load_config("split", overrides, config_file), raw=raw, clean_test=clean_test,
                    resplit_val=resplit_val, balance=balance, export=export, classes=classes)
    name = _split_name(cfg, name)
    ws = Workspace.open(ws.root)
    manifest = ws.manifest()
    if manifest.empty:
        raise CurateError(f"{ws.manifest_path}: the workspace holds no images")
    all_classes = _classes(manifest)
    subset = parse_classes(cfg.classes, manifest["label"].dropna().astype(str).unique())
    ledger = policy.new_ledger(manifest)
    if cfg.test_images:
        ledger["given_split"] = policy.listed_test_split(manifest, _listed_images(cfg.test_images))
    tables = _read_inputs(ws, cfg)
    steps = _apply_policy(ledger, cfg, tables, subset, all_classes)
    frame = _split_frame(ledger, cfg, seed)
    summary = _summary(name, ws.root, split_dir(ws, name), seed, cfg, subset, all_classes,
                       _input_sizes(cfg, tables), steps, ledger, frame)
    targets = _soft_targets(ws, cfg, frame, summary)
    _write_outputs(ws, name, ledger, frame, summary, list(cfg.export), quiet, targets)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    ws.write_json(f"splits/{name}/split.json", summary)
    ws.record_run("split", argv=argv, seed=seed, started=started, options=summary["options"] | {"name": name},
                  counts={"before": summary["images_before"], "removed": summary["removed"],
                          "relabelled": summary["relabelled"], **summary["counts"]})
    return summary


def _settings(cfg: dict[str, Any], **given: Any) -> SplitSettings:
    """The split settings, with the arguments of :func:`build_split` that are not None put over the
    merged section, validated (ConfigError, exit 2, naming the key) and checked for contradictions."""
    cfg = dict(cfg)
    for key in ("raw", "clean_test", "resplit_val", "balance", "classes"):
        if given[key] is not None:
            cfg[key] = given[key]
    if given["export"] is not None:
        cfg["export"] = list(given["export"])
    settings = as_settings("split", cfg)
    if not 0 < settings.val_fraction < 1 or not 0 <= settings.test_fraction < 1:
        raise CurateError("val_fraction must be in (0, 1) and test_fraction in [0, 1)", exit_code=2)
    if not 0 < settings.mislabel.top_share <= 1 or not 0 <= settings.soft_labels.label_weight <= 1:
        raise CurateError("mislabel.top_share must be in (0, 1] and soft_labels.label_weight in [0, 1]", exit_code=2)
    if settings.raw and settings.clean_test:
        raise CurateError("--raw and --clean-test contradict each other (raw means no cleaning)", exit_code=2)
    return settings


def _listed_images(path: str) -> pd.DataFrame:
    """The ``test_images`` CSV: a column ``image_id`` or ``path`` (the manifest's ``source_path``)."""
    from pathlib import Path as _Path

    file = _Path(path).expanduser()
    if not file.is_file():
        raise CurateError(f"test_images {file}: file not found", exit_code=2)
    table = pd.read_csv(file, dtype=str, keep_default_na=False)
    if "image_id" not in table and "path" not in table:
        raise CurateError(f"test_images {file}: needs an image_id or a path column (the ingested source_path)",
                          exit_code=2)
    return table


def _split_name(cfg: SplitSettings, name: str | None) -> str:
    """The split's folder name (default: the ``name`` setting, or raw for a raw split); CurateError for a
    name that is no plain folder name."""
    if name is None:
        name = "raw" if cfg.raw and cfg.name == "cleaned" else cfg.name
    if not name or "/" in name or name.startswith("."):
        raise CurateError(f"bad split name {name!r} (a plain folder name, e.g. cleaned)", exit_code=2)
    return name


def _relabels(mcfg: SplitMislabelSettings) -> bool:
    """Whether the ``mislabel`` settings act on flagged mislabel findings at all (not keep and keep)."""
    return not (mcfg.confident == "keep" and mcfg.other == "keep")


def _read_inputs(ws: Workspace, cfg: SplitSettings) -> dict[str, Any]:
    """The workspace tables the settings use (None where not used or absent): decisions, face_images,
    duplicates (always: a raw split still never splits a cluster), findings, and ``confidence``, the
    suggestion confidence of the mislabel findings (:func:`suggestion_confidence`)."""
    cleaning = not cfg.raw
    findings_used = cleaning and cfg.findings.apply
    tables = {"decisions": ws.read_parquet("decisions.parquet") if cleaning and cfg.decisions else None,
              "face_images": ws.read_parquet("face_images.parquet") if cfg.exclude_no_face else None,
              "duplicates": ws.read_parquet("duplicates.parquet"),
              "findings": ws.read_parquet("findings.parquet") if findings_used else None}
    tables["confidence"] = (suggestion_confidence(ws, tables["findings"])
                            if findings_used and _relabels(cfg.mislabel) else None)
    return tables


def _input_sizes(cfg: SplitSettings, tables: dict[str, Any]) -> dict[str, int | None]:
    """Rows of each input table the cleaning read (None: not read, or absent); a raw split reports no
    duplicates (it uses their groups only)."""
    sizes = {k: None if tables[k] is None else len(tables[k])
             for k in ("decisions", "duplicates", "findings", "face_images")}
    if cfg.raw:
        sizes["duplicates"] = None
    return sizes


def _apply_policy(ledger: pd.DataFrame, cfg: SplitSettings, tables: dict[str, Any], subset: list[str] | None,
                  all_classes: list[str]) -> dict[str, Any]:
    """Mark the ledger (in place), step by step: decisions, the class subset, no-face photos (these two in
    every split, raw included: they define the task), duplicates, findings and mislabel findings; a raw
    split only gets the duplicate groups. Returns the counts of each step."""
    steps: dict[str, Any] = {"unlabelled": int((ledger["status"] == "removed").sum())}
    clean_test = cfg.clean_test
    if not cfg.raw and cfg.decisions:
        steps["decisions"] = policy.apply_decisions(ledger, tables["decisions"], all_classes, clean_test=clean_test)
    if subset is not None:
        steps["classes"] = policy.apply_classes(ledger, subset)
    if cfg.exclude_no_face:
        steps["faces"] = policy.apply_no_face(ledger, tables["face_images"])
    if cfg.raw:
        if tables["duplicates"] is not None:  # groups only: the raw split still never splits a cluster when it splits
            policy.apply_duplicates(ledger, tables["duplicates"], clean_test=False, actions=[], guard_splits=[])
        return steps
    if cfg.duplicates.apply:
        guards = ["test"] + ([] if cfg.resplit_val else ["val"])
        steps["duplicates"] = policy.apply_duplicates(
            ledger, tables["duplicates"], clean_test=clean_test, actions=list(cfg.duplicates.actions),
            guard_splits=guards if cfg.duplicates.leak_guard else [])
    if cfg.findings.apply:
        steps["findings"] = policy.apply_findings(ledger, tables["findings"], list(cfg.findings.exclude_checks),
                                                  clean_test=clean_test)
        steps["mislabel"] = _mislabel_step(ledger, tables["findings"], tables["confidence"], cfg.mislabel,
                                           clean_test)
    return steps


def _split_frame(ledger: pd.DataFrame, cfg: SplitSettings, seed: int) -> pd.DataFrame:
    """Assign every ledger row its split (in place); the split manifest: the kept images (weight 1),
    balanced, train rows first, then val, then test."""
    ledger["split"] = policy.assign_splits(ledger, resplit_val=cfg.resplit_val, val_fraction=cfg.val_fraction,
                                           test_fraction=cfg.test_fraction, seed=seed)
    kept = ledger[ledger["status"] == "kept"]
    frame = pd.DataFrame({"image_id": kept["image_id"].astype("string"), "split": kept["split"].astype("string"),
                          "label": kept["label"].astype("string"), "weight": np.ones(len(kept))})
    prior = (ledger.loc[ledger["given_split"] == "train", "given_label"].dropna().astype(str).value_counts()
             if cfg.balance == "prior" else None)  # train's class counts before cleaning
    frame = policy.balance(frame, cfg.balance, seed, prior=prior)
    order = {"train": 0, "val": 1, "test": 2}
    frame = frame.assign(_o=frame["split"].map(order)).sort_values(["_o"], kind="stable").drop(columns="_o")
    return frame.reset_index(drop=True)


def _summary(name: str, root: Path, out: Path, seed: int, cfg: SplitSettings, subset: list[str] | None,
             all_classes: list[str], inputs: dict[str, Any], steps: dict[str, Any], ledger: pd.DataFrame,
             frame: pd.DataFrame) -> dict[str, Any]:
    """The split's summary (before its report, exports and seconds are added)."""
    as_dict = cfg.to_dict()
    options = {k: as_dict[k] for k in ("raw", "clean_test", "resplit_val", "val_fraction", "test_fraction", "balance",
                                       "decisions", "duplicates", "findings", "mislabel", "soft_labels",
                                       "exclude_no_face", "test_images")}
    options["classes"] = subset
    kept_classes = subset if subset is not None else ordered_classes(frame["label"].dropna().astype(str))
    empty = [c for c in kept_classes if not (frame["label"] == c).any()]
    summary = {
        "name": name, "workspace": str(root), "path": str(out), "seed": seed, "options": options,
        "inputs": inputs, "steps": steps, "images_before": len(ledger),
        "removed": int((ledger["status"] == "removed").sum()),
        "relabelled": int((ledger["status"].eq("kept") & ledger["label"].ne(ledger["given_label"])).sum()),
        "rows_after": len(frame),
        "counts": {s: int((frame["split"] == s).sum()) for s in ("train", "val", "test")},
        "classes": kept_classes, "dataset_classes": all_classes,
    }
    if empty:
        summary["empty_classes"] = empty
    return summary


def _soft_targets(ws: Workspace, cfg: SplitSettings, frame: pd.DataFrame, summary: dict[str, Any]
                  ) -> pd.DataFrame | None:
    """targets.parquet's rows (``soft_labels.apply``): image_id and ``t_<class>`` per train image
    (:func:`policy.soft_targets`); None when off or raw. Its counts go into ``summary["steps"]``.
    CurateError without `curate mislabel` outputs."""
    if cfg.raw or not cfg.soft_labels.apply:
        return None
    from curate.mislabel.api import load_oof

    probs, index, meta, _ = load_oof(ws)
    train = frame[frame["split"] == "train"].drop_duplicates("image_id")
    classes = summary["classes"]
    targets, has = policy.soft_targets(train["image_id"], train["label"], classes, probs,
                                       index["image_id"].astype(str), list(meta["classes"]),
                                       cfg.soft_labels.label_weight)
    summary["steps"]["soft_labels"] = {"train_images": len(train), "with_oof_probabilities": int(has.sum()),
                                       "label_only": int((~has).sum())}
    table = pd.DataFrame(targets, columns=[f"t_{c}" for c in classes])
    table.insert(0, "image_id", train["image_id"].astype("string").to_numpy())
    return table


def _write_outputs(ws: Workspace, name: str, ledger: pd.DataFrame, frame: pd.DataFrame, summary: dict[str, Any],
                   export: list[str], quiet: bool, targets: pd.DataFrame | None = None) -> None:
    """splits/<name>/manifest.parquet, ledger.parquet, targets.parquet (soft labels; an old one is
    removed when there are none), report.md and the exports; their paths go into ``summary``
    (``report``, ``exports``)."""
    out = split_dir(ws, name)
    out.mkdir(parents=True, exist_ok=True)
    if targets is not None:
        ws.write_parquet(f"splits/{name}/targets.parquet", targets)
    else:
        (out / "targets.parquet").unlink(missing_ok=True)
    ws.write_parquet(f"splits/{name}/manifest.parquet", frame[list(SPLIT_MANIFEST_COLUMNS)])
    ws.write_parquet(f"splits/{name}/ledger.parquet", ledger.drop(columns=["row"]))
    write_report(out / "report.md", ledger, frame, summary)
    summary["report"] = str(out / "report.md")
    if export:
        summary["exports"] = export_split(ws, name, export, quiet=quiet)


def suggestion_confidence(ws: Workspace, findings: pd.DataFrame | None) -> pd.Series | None:
    """Class-balanced out-of-fold probability of each flagged mislabel finding's suggested class,
    by image_id (None without OOF outputs)."""
    if findings is None or not ws.path("oof_probs.npy").exists():
        return None
    from curate.mislabel.api import load_oof
    from curate.mislabel.scoring import class_balanced
    from curate.settings import load_settings

    probs, index, meta, _ = load_oof(ws)
    balanced = class_balanced(probs, load_settings("mislabel").class_prior_power)
    rows = findings[(findings["check"] == "mislabel") & findings["flagged"].astype(bool)]
    position = pd.Series(np.arange(len(index)), index=index["image_id"].astype(str).to_numpy())
    classes = {c: i for i, c in enumerate(meta["classes"])}
    out = {}
    for image_id, suggested in zip(rows["image_id"].astype(str), rows["suggested_label"]):
        if isinstance(suggested, str) and suggested in classes and image_id in position.index:
            out[image_id] = float(balanced[position[image_id], classes[suggested]])
    return pd.Series(out, dtype=float)


def _mislabel_step(ledger: pd.DataFrame, findings: pd.DataFrame | None, confidence: pd.Series | None,
                   mcfg: SplitMislabelSettings, clean_test: bool) -> dict[str, int]:
    if not _relabels(mcfg):
        return {}
    return policy.apply_mislabel(ledger, findings, confidence, confident=mcfg.confident, other=mcfg.other,
                                 min_probability=mcfg.relabel_min_probability, clean_test=clean_test,
                                 top_share=mcfg.top_share)


def split_step(ws: Workspace, options: dict[str, Any], *, seed: int, quiet: bool) -> dict[str, Any]:
    """Pipeline step ``split``: options ``name``, ``raw``, ``clean_test``, ``balance``, ``export``, ``classes``,
    ``set``."""
    opts = dict(options)
    known = {"name", "raw", "clean_test", "resplit_val", "balance", "export", "classes", "set"}
    unknown = set(opts) - known
    if unknown:
        raise CurateError(f"split step: unknown option(s) {sorted(unknown)}; known: {', '.join(sorted(known))}",
                          exit_code=2)
    return build_split(ws, name=opts.get("name"), raw=opts.get("raw"), clean_test=opts.get("clean_test"),
                       resplit_val=opts.get("resplit_val"), balance=opts.get("balance"), export=opts.get("export"),
                       classes=opts.get("classes"), overrides=opts.get("set"), seed=seed, quiet=quiet,
                       argv=["pipeline", "split"])


def render_summary(s: dict[str, Any]) -> str:
    """Human-readable summary of a split run."""
    c = s["counts"]
    lines = [f"split {s['name']}: {s['images_before']:,} images -> {s['rows_after']:,} rows "
             f"(train {c['train']:,}, val {c['val']:,}, test {c['test']:,})",
             f"  removed {s['removed']:,}, relabelled {s['relabelled']:,}"
             + ("  [raw: no cleaning]" if s["options"]["raw"] else "")
             + ("  [test split cleaned too]" if s["options"]["clean_test"] else ""),
             f"  classes: {', '.join(s['classes'])}" + ("  (subset)" if s["options"].get("classes") else "")
             + (f"  [no images: {', '.join(s['empty_classes'])}]" if s.get("empty_classes") else "")]
    for step, counts in s["steps"].items():
        if isinstance(counts, dict):
            shown = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
            lines.append(f"  {step}: {shown or 'nothing'}")
    lines.append(f"  report: {s['report']}")
    for fmt, path in (s.get("exports") or {}).items():
        lines.append(f"  export {fmt}: {path}")
    return "\n".join(lines)
