"""The cleaning policy of a split, as pure functions over tables (no I/O).

A *ledger* has one row per manifest image: ``image_id``, ``given_split``, ``given_label``,
``label`` (after relabels), ``status`` ("kept" | "removed"), ``stage`` (which step decided),
``reason`` (readable), ``protected`` (a reviewer said keep), ``group`` (duplicate cluster or
the image's own id). Steps run in a fixed order and only ever touch rows still kept:

1. reviewer decisions (latest per image): relabel -> new label, exclude -> removed, keep -> protected;
2. duplicates (dedupe's ``proposed_action``), then leak guards for protected test/val splits;
3. flagged findings of the checks the policy excludes.

Two scope steps apply to every split, the test split included, and in raw splits too, since
they say what the task is rather than clean it: a class subset (:func:`apply_classes`, after
the decisions so that a relabel into a kept class counts) and photos whose face stage found
no face (:func:`apply_no_face`: their pixel row is only the centred square of the photo).
The test split (and, unless re-split, the val split) is otherwise touched only with ``clean_test``.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd

from curate.settings import DUPLICATE_REMOVALS, MISLABEL_ACTIONS


def new_ledger(manifest: pd.DataFrame) -> pd.DataFrame:
    """A ledger where every labelled image is kept (unlabelled ones are removed up front)."""
    labelled = manifest["label"].notna()
    return pd.DataFrame({
        "image_id": manifest["image_id"].astype("string").to_numpy(),
        "row": np.arange(len(manifest)),
        "given_split": manifest["split"].astype("string").to_numpy(),
        "given_label": manifest["label"].astype("string").to_numpy(),
        "label": manifest["label"].astype("string").to_numpy(),
        "status": np.where(labelled, "kept", "removed"),
        "stage": np.where(labelled, "", "manifest"),
        "reason": np.where(labelled, "", "no label"),
        "protected": np.zeros(len(manifest), bool),
        "group": manifest["image_id"].astype("string").to_numpy(),
    }).astype({"given_split": "string", "given_label": "string", "label": "string", "image_id": "string",
               "status": "string", "stage": "string", "reason": "string", "group": "string"})


def _touchable(ledger: pd.DataFrame, clean_test: bool) -> pd.Series:
    """Kept rows the cleaning may change: all but the test split unless ``clean_test``."""
    ok = ledger["status"] == "kept"
    if not clean_test:
        ok &= ledger["given_split"].fillna("") != "test"
    return ok


def _remove(ledger: pd.DataFrame, mask: pd.Series, stage: str, reasons: pd.Series | str) -> int:
    mask = mask.fillna(False).astype(bool)
    ledger.loc[mask, "status"] = "removed"
    ledger.loc[mask, "stage"] = stage
    ledger.loc[mask, "reason"] = reasons[mask] if isinstance(reasons, pd.Series) else reasons
    return int(mask.sum())


def latest_decisions(decisions: pd.DataFrame | None) -> pd.DataFrame:
    """One decision per image: the latest by timestamp (file order breaks ties)."""
    if decisions is None or decisions.empty:
        return pd.DataFrame(columns=["image_id", "decision", "new_label", "reviewer", "timestamp"])
    d = decisions.copy()
    d["_order"] = np.arange(len(d))
    d["_ts"] = pd.to_datetime(d["timestamp"], utc=True, errors="coerce", format="ISO8601")
    d = d.sort_values(["_ts", "_order"], na_position="first", kind="stable")
    return d.drop_duplicates("image_id", keep="last").drop(columns=["_order", "_ts"])


def apply_decisions(ledger: pd.DataFrame, decisions: pd.DataFrame | None, classes: Iterable[str], *,
                    clean_test: bool) -> dict[str, Any]:
    """Step 1: reviewer decisions. Returns counts, plus decisions left out (test split, unknown ids)."""
    latest = latest_decisions(decisions)
    known = set(classes)
    pos = pd.Series(np.arange(len(ledger)), index=ledger["image_id"])
    counts = {"relabelled": 0, "excluded": 0, "kept_by_reviewer": 0, "skipped_test": 0, "unknown_image": 0,
              "bad_label": 0}
    touch = _touchable(ledger, clean_test)
    for rec in latest.itertuples(index=False):
        if rec.image_id not in pos.index:
            counts["unknown_image"] += 1
            continue
        i = int(pos[rec.image_id])
        if ledger.at[i, "status"] != "kept":
            continue
        if not touch.iat[i]:
            counts["skipped_test"] += 1
            continue
        who = f" by {rec.reviewer}" if isinstance(rec.reviewer, str) and rec.reviewer else ""
        if rec.decision == "relabel":
            new = None if pd.isna(rec.new_label) else str(rec.new_label).strip().lower()
            if new not in known:
                counts["bad_label"] += 1
                continue
            if new != ledger.at[i, "label"]:
                ledger.at[i, "label"] = new
                counts["relabelled"] += 1
        elif rec.decision == "exclude":
            ledger.at[i, "status"], ledger.at[i, "stage"] = "removed", "decision"
            ledger.at[i, "reason"] = f"reviewer exclude{who}"
            counts["excluded"] += 1
        elif rec.decision == "keep":
            ledger.at[i, "protected"] = True
            counts["kept_by_reviewer"] += 1
    return counts


def apply_duplicates(ledger: pd.DataFrame, duplicates: pd.DataFrame | None, *, clean_test: bool,
                     actions: Iterable[str] = DUPLICATE_REMOVALS, guard_splits: Iterable[str] = ("test",)
                     ) -> dict[str, int]:
    """Step 2: dedupe's proposed actions, then leak guards.

    Every clustered image gets its cluster as ``group`` (for group-aware splitting). Images
    whose ``proposed_action`` is in ``actions`` are removed unless a reviewer kept them. Then,
    for each split in ``guard_splits`` that the policy leaves untouched (test unless
    ``clean_test``; a given val that is not re-split), the train copies of its images are
    removed so no duplicate crosses into it.
    """
    counts = {a: 0 for a in DUPLICATE_REMOVALS} | {"leak_guard": 0}
    if duplicates is None or duplicates.empty:
        return counts
    dup = duplicates.drop_duplicates("image_id").set_index("image_id")
    in_cluster = ledger["image_id"].isin(dup.index)
    ids = ledger.loc[in_cluster, "image_id"]
    ledger.loc[in_cluster, "group"] = ("dup:" + dup.loc[ids, "cluster_id"].astype(str)).to_numpy()
    action = pd.Series(pd.NA, index=ledger.index, dtype="string")
    action[in_cluster] = dup.loc[ids, "proposed_action"].astype("string").to_numpy()
    ctype = pd.Series("", index=ledger.index, dtype="string")
    ctype[in_cluster] = dup.loc[ids, "cluster_type"].astype("string").to_numpy()
    touch = _touchable(ledger, clean_test) & ~ledger["protected"]
    for act in actions:
        if act not in DUPLICATE_REMOVALS:
            raise ValueError(f"unknown duplicate action {act!r}; known: {', '.join(DUPLICATE_REMOVALS)}")
        mask = touch & (action == act)
        reasons = "duplicate: " + act + " (" + ctype + " cluster " + ledger["group"].str.slice(4) + ")"
        counts[act] = _remove(ledger, mask, "duplicates", reasons)
    for guarded in guard_splits:
        kept = ledger["status"] == "kept"
        guarded_groups = set(ledger.loc[kept & in_cluster & (ledger["given_split"] == guarded), "group"])
        leak = (kept & in_cluster & ledger["group"].isin(guarded_groups)
                & (ledger["given_split"].fillna("") != guarded) & (ledger["given_split"].fillna("") != "test"))
        counts["leak_guard"] += _remove(ledger, leak, "duplicates",
                                        "leak guard: duplicate of a " + guarded + " image (" + ledger["group"] + ")")
    return counts


def apply_findings(ledger: pd.DataFrame, findings: pd.DataFrame | None, exclude_checks: Iterable[str], *,
                   clean_test: bool) -> dict[str, int]:
    """Step 3: remove images flagged by any check in ``exclude_checks`` (reviewer keeps win)."""
    checks = list(exclude_checks)
    counts = {c: 0 for c in checks}
    if findings is None or findings.empty or not checks:
        return counts
    flagged = findings[findings["flagged"].astype(bool) & findings["check"].isin(checks)]
    for check in checks:
        rows = flagged[flagged["check"] == check].drop_duplicates("image_id").set_index("image_id")
        touch = _touchable(ledger, clean_test) & ~ledger["protected"]
        mask = touch & ledger["image_id"].isin(rows.index)
        evidence = pd.Series("", index=ledger.index, dtype="string")
        ids = ledger.loc[mask, "image_id"]
        evidence[mask] = rows.loc[ids, "evidence"].fillna("").astype("string").to_numpy()
        counts[check] = _remove(ledger, mask, "findings", "flagged: " + check + " (" + evidence + ")")
    return counts


def apply_mislabel(ledger: pd.DataFrame, findings: pd.DataFrame | None, confidence: pd.Series | None, *,
                   confident: str, other: str, min_probability: float, clean_test: bool,
                   top_share: float = 1.0) -> dict[str, int]:
    """Step 4: flagged ``mislabel`` findings (reviewer keeps and relabels win).

    Only flagged findings among the ``top_share`` highest mislabel scores of all scored images
    count (1 = every flagged finding; ties broken by image_id). A *confident* finding has a single
    suggested class whose probability (``confidence``, by
    image_id; the class-balanced out-of-fold probability) is at least ``min_probability``; it
    gets ``confident`` (keep | exclude | relabel to the suggestion). Every other flagged finding
    (``ambiguous: a|b`` suggestions, or below the bar) gets ``other`` (keep | exclude).
    """
    for key, value in (("confident", confident), ("other", other)):
        if value not in MISLABEL_ACTIONS[key]:
            raise ValueError(f"mislabel.{key} {value!r}: choose {' | '.join(MISLABEL_ACTIONS[key])}")
    counts = {"relabelled": 0, "excluded_confident": 0, "excluded_other": 0, "kept": 0}
    if findings is None or findings.empty:
        return counts
    if not 0 < top_share <= 1:
        raise ValueError(f"mislabel.top_share {top_share!r}: expected a number in (0, 1]")
    scored = findings[findings["check"] == "mislabel"].drop_duplicates("image_id")
    scored = scored.sort_values(["score", "image_id"], ascending=[False, True], kind="stable")
    scored = scored.head(int(np.ceil(top_share * len(scored))))
    rows = scored[scored["flagged"].astype(bool)].set_index("image_id")
    touch = _touchable(ledger, clean_test) & ~ledger["protected"] & ledger["label"].eq(ledger["given_label"])
    mask = touch & ledger["image_id"].isin(rows.index)
    suggestion = ledger["image_id"].map(rows["suggested_label"].astype("string")).astype("string")
    probability = (ledger["image_id"].map(confidence).astype(float) if confidence is not None
                   else pd.Series(np.nan, index=ledger.index))
    single = suggestion.notna() & ~suggestion.fillna("").str.startswith("ambiguous: ")
    sure = mask & single & (probability >= float(min_probability))
    unsure = mask & ~sure
    if confident == "relabel":
        ledger.loc[sure, "label"] = suggestion[sure]
        counts["relabelled"] = int(sure.sum())
    elif confident == "exclude":
        counts["excluded_confident"] = _remove(ledger, sure, "mislabel", "mislabel: suggested " + suggestion.fillna(""))
    if other == "exclude":
        counts["excluded_other"] = _remove(ledger, unsure, "mislabel",
                                           "mislabel: " + suggestion.fillna("no suggestion") + " (not confident)")
    counts["kept"] = int(mask.sum()) - sum(counts[k] for k in ("relabelled", "excluded_confident", "excluded_other"))
    return counts


def apply_classes(ledger: pd.DataFrame, classes: Iterable[str] | None) -> dict[str, int]:
    """Scope step: remove kept images whose label is not in ``classes`` (None = keep every class).

    Applies to every split and ignores reviewer keeps: a class outside the subset is not part
    of the task. Returns the number removed per label.
    """
    if classes is None:
        return {}
    keep = list(classes)
    mask = (ledger["status"] == "kept") & ~ledger["label"].isin(keep)
    counts = ledger.loc[mask, "label"].value_counts().sort_index()
    _remove(ledger, mask, "classes", "class not kept: " + ledger["label"].fillna("") + " (classes: "
            + ", ".join(keep) + ")")
    return {str(k): int(v) for k, v in counts.items()}


def apply_no_face(ledger: pd.DataFrame, face_images: pd.DataFrame | None) -> dict[str, int]:
    """Scope step: remove photos whose face stage did not give a face (``face_images.parquet``
    status other than ``ok``: no_face or error), in every split; reviewer keeps do not override it
    (re-run ``curate faces`` with other settings instead). Reason ``no_face (...)``."""
    counts = {"no_face": 0, "face_error": 0}
    if face_images is None or face_images.empty:
        return counts
    fi = face_images.drop_duplicates("image_id", keep="last").set_index("image_id")
    status = ledger["image_id"].map(fi["status"].astype("string")).astype("string")
    detail = ledger["image_id"].map(fi["detail"].astype("string")).astype("string") if "detail" in fi \
        else pd.Series(pd.NA, index=ledger.index, dtype="string")
    kept = ledger["status"] == "kept"
    bad = kept & status.notna() & (status != "ok")
    counts["no_face"] = int((bad & (status == "no_face")).sum())
    counts["face_error"] = int((bad & (status != "no_face")).sum())
    what = status.fillna("").where(detail.isna() | (detail == ""), status.fillna("") + ": " + detail.fillna(""))
    _remove(ledger, bad, "faces", "no_face (face stage: " + what.str.slice(0, 200) + ")")
    return counts


def group_split(labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of a ~``fraction`` share, stratified by label, never splitting a group.

    Uses scikit-learn's StratifiedGroupKFold with ``round(1/fraction)`` folds and takes one fold;
    when every class is smaller than that fold count (a small scraped set), whole groups are drawn
    at random (seeded) until the share is reached.
    """
    n = len(labels)
    if n == 0 or fraction <= 0:
        return np.zeros(n, bool)
    from sklearn.model_selection import StratifiedGroupKFold

    k = max(2, int(round(1.0 / fraction)))
    n_groups = len(pd.unique(groups))
    if n_groups < k:
        return np.zeros(n, bool)
    mask = np.zeros(n, bool)
    if pd.Series(labels).value_counts().max() < k:  # StratifiedGroupKFold refuses: no class fills k folds
        codes, uniques = pd.factorize(pd.Series(groups))
        sizes = np.bincount(codes, minlength=len(uniques))
        order = np.random.default_rng(seed).permutation(len(uniques))
        take = order[:int(np.searchsorted(np.cumsum(sizes[order]), fraction * n) + 1)]
        mask[np.isin(codes, take)] = True
        return mask
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    _, held = next(cv.split(np.zeros(n), labels, groups))
    mask[held] = True
    return mask


def listed_test_split(manifest: pd.DataFrame, listed: pd.DataFrame) -> pd.Series:
    """The given split with the ``listed`` images (by ``image_id``, else ``path`` = ``source_path``) as the
    test split and no other image in it (a held-out set reviewed by eye, say); the others keep a given
    train/val split or get one. ValueError when none of the listed images is in the manifest."""
    ids = manifest["image_id"].astype(str)
    if "image_id" in listed:
        member = ids.isin(set(listed["image_id"].astype(str)))
    else:
        member = manifest["source_path"].astype(str).isin(set(listed["path"].astype(str)))
    if not member.any():
        from curate.errors import CurateError

        raise CurateError("test_images: none of the listed images is in the workspace", exit_code=2)
    given = manifest["split"].astype("string").where(manifest["split"].astype("string") != "test", pd.NA)
    return given.where(~member.to_numpy(), "test").astype("string").reset_index(drop=True)


def assign_splits(ledger: pd.DataFrame, *, resplit_val: bool, val_fraction: float, test_fraction: float,
                  seed: int) -> pd.Series:
    """Final split of every kept image: given test stays test; given train/val kept unless
    ``resplit_val``; images without a split (and all non-test ones when re-splitting) get a
    stratified, group-aware val share; a dataset without any test split gets a test share too."""
    kept = ledger["status"] == "kept"
    split = ledger["given_split"].where(kept, pd.NA).astype("string")
    labels = ledger["label"].astype(str).to_numpy()
    groups = ledger["group"].astype(str).to_numpy()
    if not (split == "test").any() and test_fraction > 0:
        pool = (kept & split.isna()).to_numpy()
        if pool.any():
            held = group_split(labels[pool], groups[pool], test_fraction, seed + 1)
            idx = np.flatnonzero(pool)[held]
            split.iloc[idx] = "test"
    if resplit_val:
        split[kept & split.isin(["train", "val"])] = pd.NA
    pool = (kept & split.isna()).to_numpy()
    if pool.any():
        # groups already in train/val keep their side, so clusters never cross splits
        fixed = {g: s for g, s in zip(groups[~pool & kept.to_numpy()], split[~pool & kept.to_numpy()])}
        held = group_split(labels[pool], groups[pool], val_fraction, seed) if not (split == "val").any() or resplit_val \
            else np.zeros(pool.sum(), bool)
        chosen = np.where(held, "val", "train")
        for j, g in enumerate(groups[pool]):
            if g in fixed and fixed[g] in ("train", "val", "test"):
                chosen[j] = fixed[g]
        split.iloc[np.flatnonzero(pool)] = chosen
    return split


def prior_weights(counts: pd.Series, prior: pd.Series | None) -> pd.Series:
    """Per-label weight = prior share / current share (counts indexed by label; mean weight over the
    current rows is 1). A label absent from ``prior`` gets weight 1 before the normalisation."""
    if prior is None or prior.sum() <= 0:
        raise ValueError("balance 'prior' needs the class counts to restore (the train labels before cleaning)")
    current = counts.astype(float) / counts.sum()
    target = prior.reindex(counts.index).astype(float) / prior.reindex(counts.index).fillna(0).sum()
    w = (target / current).fillna(1.0)
    return w / float((w * counts).sum() / counts.sum())


def balance(frame: pd.DataFrame, mode: str, seed: int, prior: pd.Series | None = None) -> pd.DataFrame:
    """Balance the train rows of a (image_id, split, label, weight) frame.

    ``undersample``: every class down to the smallest; ``oversample``: every class up to the
    largest by repeating images; ``class_weights``: weight = n / (classes x count) on train;
    ``prior``: weights that give the kept train rows the class shares of ``prior`` (counts per
    label, e.g. the train labels before cleaning), so that cleaning, which removes far more of the
    confusable classes (fear, angry) than of happy, does not also teach the model new class priors.
    """
    if mode == "none":
        return frame
    train = frame["split"] == "train"
    rest = frame[~train]
    tr = frame[train]
    counts = tr["label"].value_counts()
    if tr.empty:
        return frame
    rng = np.random.default_rng(seed)
    if mode == "undersample":
        target = int(counts.min())
        parts = [g.iloc[np.sort(rng.choice(len(g), target, replace=False))] for _, g in tr.groupby("label", sort=True)]
        tr = pd.concat(parts)
    elif mode == "oversample":
        target = int(counts.max())
        parts = []
        for _, g in tr.groupby("label", sort=True):
            extra = rng.choice(len(g), target - len(g), replace=True) if target > len(g) else np.zeros(0, int)
            parts.append(pd.concat([g, g.iloc[np.sort(extra)]]))
        tr = pd.concat(parts)
    elif mode == "class_weights":
        w = len(tr) / (len(counts) * tr["label"].map(counts).astype(float))
        tr = tr.assign(weight=w.to_numpy())
    elif mode == "prior":
        tr = tr.assign(weight=tr["weight"].to_numpy() * prior_weights(counts, prior)[tr["label"]].to_numpy())
    else:
        raise ValueError(f"unknown balance mode {mode!r}; choose none, undersample, oversample, class_weights, prior")
    return pd.concat([tr, rest]).reset_index(drop=True)


def soft_targets(image_ids: Iterable[str], labels: Iterable[str], classes: list[str], probs: np.ndarray,
                 prob_ids: Iterable[str], prob_classes: list[str], label_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Soft training targets: ``label_weight`` x one-hot(label) + (1 - label_weight) x the image's
    out-of-fold probabilities, over ``classes`` (probabilities of other classes left out, the rest
    renormalised).

    An image without probabilities (not in ``prob_ids``, or none on ``classes``) keeps its one-hot label.
    Returns the (n, len(classes)) float32 targets, rows summing to 1, and which rows had probabilities.
    """
    if not 0 <= label_weight <= 1:
        raise ValueError(f"label_weight {label_weight!r}: expected a number in [0, 1]")
    image_ids, labels = [str(i) for i in image_ids], [str(v) for v in labels]
    col = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(labels) - set(col))
    if unknown:
        raise ValueError(f"labels {unknown} are not among the classes {classes}")
    onehot = np.zeros((len(labels), len(classes)), np.float64)
    onehot[np.arange(len(labels)), [col[v] for v in labels]] = 1.0
    shared = [c for c in classes if c in prob_classes]
    prob_ids = [str(i) for i in prob_ids]
    sub = np.zeros((len(prob_ids), len(classes)), np.float64)
    for c in shared:
        sub[:, col[c]] = np.asarray(probs, np.float64)[:, prob_classes.index(c)]
    position = pd.Series(np.arange(len(prob_ids)), index=prob_ids)
    found = position.reindex(image_ids)
    has = found.notna().to_numpy().copy()
    oof = np.zeros_like(onehot)
    oof[has] = sub[found[has].astype(int).to_numpy()]
    total = oof.sum(1)
    has &= total > 0
    oof[has] /= total[has, None]
    targets = onehot.copy()
    targets[has] = label_weight * onehot[has] + (1 - label_weight) * oof[has]
    return targets.astype(np.float32), has
