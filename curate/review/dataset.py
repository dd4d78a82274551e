"""The workspace's persistent FiftyOne dataset: samples, evidence fields, issue tags, saved views.

:func:`sync_dataset` creates the dataset or brings it up to date with the review table. Fields
are declared through the FiftyOne API, then samples are written in batches (see
:mod:`curate.review.bulk`): new ones inserted, existing ones updated in place. Tags a reviewer set (``keep``, ``exclude``,
``relabel:<class>``, any other tag not starting with ``issue:``) and the ``review_label``
field are never overwritten; samples without review tags get the latest decision as tags.
In a workspace with photos a photo's sample is the original photo (``faces`` boxes, the aligned
crop in ``crop_filepath``; see :mod:`curate.review.photos`); crop rows are the PNG crop as always.
"""
from __future__ import annotations

import hashlib
import logging
import os
import sys
import re
from typing import Any

import numpy as np
import pandas as pd

from curate.review.bulk import insert_samples, update_samples
from curate.review.decisions import decision_tags, is_review_tag, latest_decisions, read_decisions
from curate.review.images import image_paths, write_missing_pngs
from curate.review.photos import (MAIN_COLOUR, MAIN_LABEL, OTHER_COLOUR, OTHER_LABEL, TEXT_COLOUR, TEXT_LABEL, hex_colour,
                                  review_columns)
from curate.review.table import ISSUE_TAG_PREFIX, QUALITY_CHECKS, field_name
from curate.workspace import Workspace

MANAGED_INFO_KEY = "curate_fields"
PHOTO_LABEL_FIELDS = ("faces", "face_landmarks", "text_boxes")
SKIP_COLUMNS = {"image_id", "row", "label", "issue_tags", "prediction_label", "prediction_confidence"}


def fiftyone():
    """Import FiftyOne with usage tracking off (imports are slow: only when needed)."""
    os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
    import fiftyone as fo

    fo.config.do_not_track = True
    for handler in logging.getLogger("fiftyone").handlers:  # keep stdout clean for --json
        if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) is sys.stdout:
            handler.setStream(sys.stderr)
    return fo


def dataset_name(ws: Workspace) -> str:
    """Stable dataset name for a workspace path: ``curate-<folder>-<hash of the full path>``."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", ws.root.name).strip("-")[:40] or "ws"
    return f"curate-{slug}-{hashlib.sha1(str(ws.root).encode('utf-8')).hexdigest()[:8]}"


def _field_type(fo, series: pd.Series):
    if pd.api.types.is_bool_dtype(series.dtype):
        return fo.BooleanField
    if pd.api.types.is_integer_dtype(series.dtype):
        return fo.IntField
    if pd.api.types.is_float_dtype(series.dtype):
        return fo.FloatField
    return fo.StringField


def field_columns(table: pd.DataFrame) -> list[str]:
    """Columns of the review table stored as plain sample fields."""
    return [c for c in table.columns if c not in SKIP_COLUMNS]


def sample_tags(existing: list[str] | None, issues: list[str], latest: tuple[str, str | None] | None) -> list[str]:
    """Reviewer tags kept, ``issue:*`` tags replaced; a decided sample without review tags gets them."""
    kept = [t for t in (existing or []) if not t.startswith(ISSUE_TAG_PREFIX)]
    if latest is not None and not any(is_review_tag(t) for t in kept):
        kept += decision_tags(*latest)
    return kept + [t for t in issues if t not in kept]


def sync_dataset(ws: Workspace, table: pd.DataFrame, checks: list[str], *, quiet: bool = False) -> dict[str, Any]:
    """Create or update the dataset from the review table; returns counts and the dataset name."""
    fo = fiftyone()
    name = dataset_name(ws)
    paths = image_paths(ws, table["image_id"])
    pngs = write_missing_pngs(ws, paths, quiet=quiet)
    photos = review_columns(ws, table["image_id"], paths)  # None unless the workspace holds photos
    docs: list[dict] | None = None
    if photos is None:
        table = table.assign(filepath=paths)
    else:
        cols, docs = photos
        table = table.assign(**{c: cols[c].to_numpy() if c == "filepath" else cols[c].array for c in cols.columns})
    ds = fo.load_dataset(name) if fo.dataset_exists(name) else fo.Dataset(name, persistent=True)
    ds.persistent = True
    columns = field_columns(table)
    _declare_fields(fo, ds, table, columns)
    latest = latest_decisions(read_decisions(ws))
    decided = {i: (r["decision"], None if pd.isna(r["new_label"]) else r["new_label"]) for i, r in latest.iterrows()}

    existing_ids = ds.values("image_id") if len(ds) else []
    sample_ids = ds.values("id") if len(ds) else []
    old_tags = dict(zip(existing_ids, ds.values("tags"))) if len(ds) else {}
    if len(ds):  # a sample whose review_label field speaks for it gets no tags from decisions
        labelled = {i for i, v in zip(existing_ids, ds.values("review_label")) if v not in (None, "")}
        decided = {i: d for i, d in decided.items() if i not in labelled}
    wanted = set(table["image_id"].astype(str))
    stale = [sid for sid, iid in zip(sample_ids, existing_ids) if iid not in wanted]
    if stale:
        ds.delete_samples(stale)
    by_id = table.set_index(table["image_id"].astype(str))
    tags = [sample_tags(old_tags.get(iid), issues, decided.get(iid))
            for iid, issues in zip(by_id.index, by_id["issue_tags"])]
    is_new = ~by_id.index.isin(list(old_tags))
    new_tags = [t for t, flag in zip(tags, is_new) if flag]
    extra = docs
    if docs is None and "crop_filepath" in ds.get_field_schema():  # photos before, none now: reset the media
        extra = [{"metadata": {"_cls": "ImageMetadata", "mime_type": "image/png", "width": ws.image_size,
                               "height": ws.image_size, "num_channels": 1}}] * len(by_id)
    new_docs = old_docs = None
    if extra is not None:
        new_docs = [d for d, flag in zip(extra, is_new) if flag]
        old_docs = [d for d, flag in zip(extra, is_new) if not flag]
    added = insert_samples(ds, by_id[is_new], columns, new_tags, ws.image_size, new_docs) if is_new.any() else 0
    updated = 0
    if (~is_new).any():
        id_of = dict(zip(existing_ids, sample_ids))
        old_rows = by_id[~is_new]
        updated = update_samples(ds, [id_of[i] for i in old_rows.index], old_rows, columns,
                                 [t for t, flag in zip(tags, is_new) if not flag], old_docs)
    ds.reload()
    _drop_stale_fields(ds, columns + (list(PHOTO_LABEL_FIELDS) if docs is not None else []))
    set_sidebar(fo, ds, checks)
    set_photo_media(fo, ds, photos=docs is not None)
    views = save_views(ds, checks)
    summary = {"dataset": name, "samples": len(ds), "added": added, "updated": updated,
               "removed": len(stale), "pngs_written": pngs["written"], "png_errors": pngs["errors"],
               "views": views, "flagged": int(table["flagged_any"].sum())}
    if docs is not None:
        shown = table["display_source"].dropna().astype(str)
        summary["photos"] = {"photos": int(len(shown)), "originals": int((shown == "original").sum()),
                             "copies": int(shown.str.startswith("copy").sum()),
                             "crops_only": int(shown.str.startswith("crop").sum())}
    return summary


def _declare_fields(fo, ds, table: pd.DataFrame, columns: list[str]) -> None:
    schema = ds.get_field_schema()
    for col in columns:
        wanted = _field_type(fo, table[col])
        if col in schema and col != "filepath" and type(schema[col]) is not wanted:
            ds.delete_sample_field(col)  # a managed field whose type changed between builds
            schema.pop(col)
        if col not in schema:
            ds.add_sample_field(col, wanted)
    for col in ("ground_truth", "prediction"):
        if col not in schema and (col == "ground_truth" or table["prediction_label"].notna().any()):
            ds.add_sample_field(col, fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
    for col in ("image_id", "review_label"):
        if col not in schema:
            ds.add_sample_field(col, fo.StringField)
    if "crop_filepath" in columns:  # a workspace with photos: face boxes and landmarks on the original
        for col, kind in (("faces", fo.Detections), ("face_landmarks", fo.Keypoints), ("text_boxes", fo.Detections)):
            if col not in schema:
                ds.add_sample_field(col, fo.EmbeddedDocumentField, embedded_doc_type=kind)
    ds.create_index("image_id")


def _drop_stale_fields(ds, columns: list[str]) -> None:
    """Delete fields an earlier build managed that the table no longer has (a removed check)."""
    previous = set(ds.info.get(MANAGED_INFO_KEY, []))
    stale = sorted(previous - set(columns) - {"filepath"})
    schema = ds.get_field_schema()
    for name in stale:
        if name in schema:
            ds.delete_sample_field(name)
    ds.info[MANAGED_INFO_KEY] = [c for c in columns if c != "filepath"]
    ds.save()


def set_photo_media(fo, ds, *, photos: bool = True) -> None:
    """Photos: the grid and the modal show ``filepath`` (the original, boxes drawn); the App's media
    selector offers ``crop_filepath`` (the aligned crop; the boxes then belong to the photo, hide
    ``faces``). Main face and other faces get fixed colours (the report uses the same).
    Without photos (any more) nothing is set and an earlier photo setup is undone."""
    if not photos:
        if "crop_filepath" in (ds.app_config.media_fields or []):
            ds.app_config.media_fields = ["filepath"]
            ds.app_config.grid_media_field = ds.app_config.modal_media_field = "filepath"
            ds.app_config.color_scheme = ds.app_config.active_fields = None
            ds.save()
        return
    ds.app_config.media_fields = ["filepath", "crop_filepath"]
    ds.app_config.grid_media_field = "filepath"
    ds.app_config.modal_media_field = "filepath"
    values = [{"value": MAIN_LABEL, "color": hex_colour(MAIN_COLOUR)},
              {"value": OTHER_LABEL, "color": hex_colour(OTHER_COLOUR)},
              {"value": TEXT_LABEL, "color": hex_colour(TEXT_COLOUR)}]
    ds.app_config.color_scheme = fo.ColorScheme(color_by="value", fields=[
        {"path": path, "colorByAttribute": "label", "valueColors": values} for path in PHOTO_LABEL_FIELDS])
    from fiftyone.core.odm.dataset import ActiveFields

    schema = ds.get_field_schema()  # labels shown at first: all but the landmarks (a tick shows them)
    shown = [p for p in ("ground_truth", "prediction", "faces", "text_boxes") if p in schema]
    ds.app_config.active_fields = ActiveFields(paths=shown)
    ds.save()


def set_sidebar(fo, ds, checks: list[str]) -> None:
    """App sidebar: review fields first, then duplicates, then one group per check (collapsed)."""
    schema = ds.get_field_schema()
    groups = [fo.SidebarGroupDocument(name="tags", paths=["tags", "_label_tags"]),
              fo.SidebarGroupDocument(name="labels", paths=[]),
              fo.SidebarGroupDocument(name="review", expanded=True, paths=[
                  p for p in ("review_label", "flagged_any", "flagged_checks", "split", "original_label", "image_id",
                              "prediction_fold", "image_kind", "face_status", "n_faces") if p in schema])]
    dup = [p for p in schema if p.startswith("dup_")]
    if dup:
        groups.append(fo.SidebarGroupDocument(name="duplicates", paths=dup, expanded=False))
    placed = {p for g in groups for p in g.paths}
    for check in checks:
        name = field_name(check)
        paths = [f"{name}_{k}" for k in ("score", "flagged", "evidence", "suggested") if f"{name}_{k}" in schema]
        groups.append(fo.SidebarGroupDocument(name=check, paths=paths, expanded=False))
        placed.update(paths)
    rest = [p for p in ("id", "filepath", "created_at", "last_modified_at") if p in schema]
    rest += [p for p, f in schema.items() if p not in placed and p not in rest and p not in ("tags", "metadata")
             and not isinstance(f, fo.EmbeddedDocumentField)]
    groups.append(fo.SidebarGroupDocument(name="metadata", paths=["metadata.width", "metadata.height"], expanded=False))
    groups.append(fo.SidebarGroupDocument(name="other", paths=rest, expanded=False))
    ds.app_config.sidebar_groups = groups
    ds.save()


def save_views(ds, checks: list[str]) -> list[str]:
    """Saved views per issue type (only for issues present); returns their names."""
    from fiftyone import ViewField as F

    specs: list[tuple[str, str, Any]] = []
    schema = ds.get_field_schema()

    def flagged(check: str):
        return F(f"{field_name(check)}_flagged") == True  # noqa: E712 (a Mongo expression)

    if "mislabel" in checks:
        specs.append(("mislabel-candidates", "Mislabel candidates, most suspicious first",
                      ds.match(flagged("mislabel")).sort_by("mislabel_score", reverse=True)))
    if "dup_cluster_type" in schema:
        specs.append(("inter-class-duplicates", "Copies of one image with different labels, cluster by cluster",
                      ds.match(F("dup_cluster_type") == "inter_class").sort_by("dup_cluster_id")))
        specs.append(("inter-class-duplicate-groups", "Inter-class duplicates as dynamic groups (one cluster each)",
                      ds.match(F("dup_cluster_type") == "inter_class").group_by("dup_cluster_id")))
        leak = F("dup_cross_split") == True if "dup_cross_split" in schema else F("dup_cluster_type") == "cross_split"  # noqa: E712
        specs.append(("cross-split-leaks", "Images with a copy in another split, cluster by cluster",
                      ds.match(leak).sort_by("dup_cluster_id")))
    for check, name, desc in (("non_face", "non-faces", "Face crops that are not faces, most likely first "
                                                        "(photos: see no-usable-face)"),
                              ("no_face", "no-usable-face", "Photos without a usable face (photographed, >= 40 px, "
                                                           "both eyes, not hidden); tag is:no_face / not:no_face"),
                              ("multiple_faces", "multiple-faces", "Photos with a second usable face at least half "
                                                                   "the main one's width; tag is:/not:multiple_faces"),
                              ("watermark", "watermarks", "Watermark or overlaid text"),
                              ("misaligned", "misaligned", "Face off-centre, rotated or badly cropped"),
                              ("cartoon", "cartoons", "Drawings and cartoons"),
                              ("occlusion", "occluded", "Face hidden by hands, objects or text")):
        if check in checks:
            specs.append((name, desc, ds.match(flagged(check)).sort_by(f"{field_name(check)}_score", reverse=True)))
    quality = [c for c in QUALITY_CHECKS if c in checks]
    if quality:
        expr = flagged(quality[0])
        for c in quality[1:]:
            expr = expr | flagged(c)
        specs.append(("low-quality", f"Flagged by {', '.join(quality)}", ds.match(expr)))
    if checks or "dup_cluster_type" in schema:
        expr = F("flagged_any") == True  # noqa: E712
        if "dup_cluster_type" in schema:
            expr = expr | F("dup_cluster_id").exists()
        specs.append(("to-review", "Every flagged or clustered image", ds.match(expr)))
    specs.append(("decided", "Samples carrying a review tag (keep, exclude, relabel:<class>)",
                  ds.match(F("tags").filter(F().starts_with("relabel:") | F().is_in(["keep", "exclude"])).length() > 0)))
    for name, desc, view in specs:
        ds.save_view(name, view, description=desc, overwrite=True)
    return [name for name, _, _ in specs]
