"""Reviewer decisions: tags -> decisions, the append-only decisions.parquet, labels in the manifest.

A reviewer marks a sample with one tag: ``keep``, ``exclude`` or ``relabel:<class>`` (or sets
the ``review_label`` field to a class). :func:`decide` turns one sample's tags into a decision
or a conflict; :func:`append_decisions` appends only decisions that differ from the latest
one per image; :func:`apply_decisions` sets ``label`` in the manifest from the latest decisions
(``original_label`` is never touched).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import pandas as pd

from curate.labels import CLASSES, EXTRA_CLASSES, canonical_label
from curate.workspace import Workspace, utc_now

DECISIONS_FILE = "decisions.parquet"
DECISION_COLUMNS: tuple[str, ...] = ("image_id", "decision", "new_label", "reviewer", "timestamp", "source")
DECISIONS = ("relabel", "exclude", "keep")
SOURCES = ("app", "csv")
RELABEL_PREFIX = "relabel:"


@dataclass(frozen=True)
class Decision:
    """One sample's reading: a decision (or None) and, when the tags disagree, a conflict reason."""

    decision: str | None = None
    new_label: str | None = None
    conflict: str | None = None


def known_classes(manifest: pd.DataFrame | None = None) -> set[str]:
    """Classes a relabel may target: the canonical ones plus any label already in the manifest."""
    known = set(CLASSES) | set(EXTRA_CLASSES)
    if manifest is not None and len(manifest):
        known |= set(manifest["label"].dropna().astype(str))
    return known


def is_review_tag(tag: str) -> bool:
    """True for the tags a reviewer sets (``keep``, ``exclude``, ``relabel:...``)."""
    t = tag.strip().lower()
    return t in ("keep", "exclude") or t.startswith(RELABEL_PREFIX)


def normalise_class(raw: str, classes: set[str]) -> str | None:
    """``raw`` as a known class (case, synonyms and Kaggle codes accepted), else None."""
    text = str(raw).strip()
    if text in classes:
        return text
    canon = canonical_label(text)
    if canon in classes:
        return canon
    lower = text.lower()
    return lower if lower in classes else None


def decide(tags: Iterable[str], review_label: str | None, classes: set[str]) -> Decision:
    """The decision expressed by one sample's tags and ``review_label`` field.

    Conflicts: ``exclude`` with ``keep`` or with a relabel, ``keep`` with a relabel, two
    different relabel targets, a relabel to an unknown class.
    """
    marks = [t.strip() for t in tags if is_review_tag(t)]
    lowered = {t.lower() for t in marks}
    targets: set[str] = set()
    for tag in marks:
        if tag.lower().startswith(RELABEL_PREFIX):
            raw = tag[len(RELABEL_PREFIX):]
            cls = normalise_class(raw, classes)
            if cls is None:
                return Decision(conflict=f"tag {tag!r}: unknown class {raw.strip()!r} (known: {', '.join(sorted(classes))})")
            targets.add(cls)
    if review_label is not None and not pd.isna(review_label) and str(review_label).strip():
        cls = normalise_class(review_label, classes)
        if cls is None:
            return Decision(conflict=f"review_label {review_label!r}: unknown class")
        targets.add(cls)
    has_keep, has_exclude = "keep" in lowered, "exclude" in lowered
    if len(targets) > 1:
        return Decision(conflict=f"different relabel targets: {', '.join(sorted(targets))}")
    if has_exclude and targets:
        return Decision(conflict=f"both exclude and relabel:{next(iter(targets))}")
    if has_keep and (has_exclude or targets):
        other = "exclude" if has_exclude else f"relabel:{next(iter(targets))}"
        return Decision(conflict=f"both keep and {other}")
    if targets:
        return Decision("relabel", next(iter(targets)))
    if has_exclude:
        return Decision("exclude")
    if has_keep:
        return Decision("keep")
    return Decision()


def decision_tags(decision: str, new_label: str | None) -> list[str]:
    """The review tags that express a decision (inverse of :func:`decide`)."""
    if decision == "relabel":
        return [f"{RELABEL_PREFIX}{new_label}"]
    return [decision]


def empty_decisions() -> pd.DataFrame:
    """A decisions frame with no rows and the contract dtypes."""
    return coerce_decisions(pd.DataFrame({c: [] for c in DECISION_COLUMNS}))


def coerce_decisions(df: pd.DataFrame) -> pd.DataFrame:
    """Contract columns, in order, as strings."""
    out = df[list(DECISION_COLUMNS)].copy()
    for col in DECISION_COLUMNS:
        out[col] = out[col].astype("string")
    return out.reset_index(drop=True)


def read_decisions(ws: Workspace) -> pd.DataFrame:
    """Every decision ever appended (empty frame when none)."""
    df = ws.read_parquet(DECISIONS_FILE)
    return empty_decisions() if df is None else coerce_decisions(df)


def latest_decisions(decisions: pd.DataFrame) -> pd.DataFrame:
    """The latest row per image_id (file order breaks timestamp ties), indexed by image_id."""
    if len(decisions) == 0:
        return decisions.set_index("image_id")
    d = decisions.reset_index(drop=True).assign(_order=range(len(decisions)))
    d = d.sort_values(["timestamp", "_order"], kind="stable")
    return d.drop_duplicates("image_id", keep="last").drop(columns="_order").set_index("image_id")


def changed_only(proposed: pd.DataFrame, existing: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``proposed`` (image_id, decision, new_label) that differ from the latest existing ones."""
    if len(proposed) == 0:
        return proposed
    latest = latest_decisions(existing)
    prev = latest.reindex(pd.Index(proposed["image_id"].astype("string")))
    same_decision = prev["decision"].fillna("").to_numpy() == proposed["decision"].fillna("").astype(str).to_numpy()
    same_label = prev["new_label"].fillna("").to_numpy() == proposed["new_label"].fillna("").astype(str).to_numpy()
    return proposed[~(same_decision & same_label)]


def append_decisions(ws: Workspace, proposed: pd.DataFrame, *, reviewer: str, source: str,
                     timestamp: str | None = None) -> pd.DataFrame:
    """Append the new or changed rows of ``proposed`` to decisions.parquet; returns what was appended.

    ``proposed`` holds image_id, decision, new_label. Existing rows are never rewritten.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    bad = set(proposed["decision"].astype(str)) - set(DECISIONS)
    if bad:
        raise ValueError(f"unknown decisions {sorted(bad)}; expected {DECISIONS}")
    with ws.lock():
        existing = read_decisions(ws)
        new = changed_only(proposed.drop_duplicates("image_id", keep="last"), existing)
        if len(new) == 0:
            return empty_decisions()
        rows = pd.DataFrame({"image_id": new["image_id"].to_numpy(), "decision": new["decision"].to_numpy(),
                             "new_label": new["new_label"].to_numpy(), "reviewer": reviewer,
                             "timestamp": timestamp or utc_now(), "source": source})
        rows = coerce_decisions(rows)
        ws.write_parquet(DECISIONS_FILE, coerce_decisions(pd.concat([existing, rows], ignore_index=True)))
    return rows


def effective_labels(manifest: pd.DataFrame, decisions: pd.DataFrame) -> pd.Series:
    """``label`` per image after the latest decisions (index image_id).

    A relabel sets ``new_label``; keep and exclude restore the label the source gave
    (``original_label`` mapped to its canonical class, else the current label).
    """
    ids = manifest["image_id"].astype("string")
    current = pd.Series(manifest["label"].astype("string").to_numpy(), index=pd.Index(ids))
    base = pd.Series([canonical_label(o) if not pd.isna(o) else None for o in manifest["original_label"]],
                     index=pd.Index(ids), dtype="string").fillna(current)
    out = current.copy()
    latest = latest_decisions(decisions)
    latest = latest[latest.index.isin(out.index)]
    if len(latest):
        relabel = latest["decision"] == "relabel"
        out.loc[latest.index[~relabel]] = base.loc[latest.index[~relabel]]
        out.loc[latest.index[relabel]] = latest.loc[relabel, "new_label"]
    return out


def apply_decisions(ws: Workspace) -> dict[str, int]:
    """Set manifest ``label`` from the latest decisions; returns counts (changed, relabelled, excluded, kept)."""
    manifest = ws.manifest()
    decisions = read_decisions(ws)
    labels = effective_labels(manifest, decisions)
    current = pd.Series(manifest["label"].astype("string").to_numpy(), index=labels.index)
    changed = labels[(labels.fillna("") != current.fillna(""))]
    if len(changed):
        ws.update_labels(changed)
    latest = latest_decisions(decisions)
    counts = latest["decision"].value_counts().to_dict() if len(latest) else {}
    return {"labels_changed": int(len(changed)), "relabel": int(counts.get("relabel", 0)),
            "exclude": int(counts.get("exclude", 0)), "keep": int(counts.get("keep", 0))}
