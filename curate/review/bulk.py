"""Batched writes of review samples straight into the dataset's sample collection.

FiftyOne's ``add_samples``/``merge_samples`` build a Python document per sample (about 3-5 ms
each with ~50 fields), too slow for 35,887 images in the time budget. The fields are declared
on the dataset first (so the schema, App sidebar and views know them); the documents written
here have exactly the layout FiftyOne 1.x stores (``_id``, ``filepath``, ``tags``,
``metadata`` with ``_cls``, ``_media_type``, ``_rand``, ``_dataset_id``, ``created_at``,
``last_modified_at``, labels as ``{_id, _cls, tags, label[, confidence]}``), checked by
tests that read the samples back through the public API.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
from typing import Any

import numpy as np
import pandas as pd
from bson import ObjectId
from pymongo import UpdateOne

BATCH = 2000


def _classification(label: Any, confidence: Any = None) -> dict | None:
    if label is None or pd.isna(label):
        return None
    doc = {"_id": ObjectId(), "_cls": "Classification", "tags": [], "label": str(label)}
    if confidence is not None and not pd.isna(confidence):
        doc["confidence"] = float(confidence)
    return doc


def _rand(image_id: str) -> float:
    """FiftyOne's per-sample random key (used by ``take``/``shuffle``), stable per image id."""
    return int.from_bytes(hashlib.sha1(image_id.encode("utf-8")).digest()[:6], "big") / float(1 << 48)


def field_documents(rows: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    """Per row: the managed fields and labels (None where missing), ready for ``$set``."""
    values = {c: rows[c].astype(object).where(rows[c].notna(), None).tolist() for c in columns}
    for c, vals in values.items():
        values[c] = [v.item() if isinstance(v, np.generic) else v for v in vals]
    has_pred = rows["prediction_label"].notna().any()
    docs = []
    for k in range(len(rows)):
        doc = {c: values[c][k] for c in columns}
        doc["ground_truth"] = _classification(rows["label"].iat[k])
        if has_pred:
            doc["prediction"] = _classification(rows["prediction_label"].iat[k], rows["prediction_confidence"].iat[k])
        docs.append(doc)
    return docs


def insert_samples(ds, rows: pd.DataFrame, columns: list[str], tags: list[list[str]], size: int,
                   extra: list[dict] | None = None) -> int:
    """Insert one sample per row (index image_id, ``filepath`` column); returns how many.

    ``extra[k]``, when given, holds documents for row k set as they are (a photo's ``metadata``,
    ``faces`` ...); without ``metadata`` the sample is the ``size`` x ``size`` grey PNG crop.
    """
    now = _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)
    dataset_id = ds._doc.id
    coll = ds._sample_collection
    docs = []
    for k, (image_id, fields) in enumerate(zip(rows.index, field_documents(rows, columns))):
        doc = {"filepath": fields.pop("filepath"), "tags": tags[k],
               "metadata": {"_cls": "ImageMetadata", "mime_type": "image/png", "width": size, "height": size,
                            "num_channels": 1},
               "_media_type": "image", "_rand": _rand(str(image_id)), "image_id": str(image_id)}
        doc.update({key: v for key, v in fields.items() if v is not None})
        if extra is not None:
            doc.update({key: v for key, v in extra[k].items() if v is not None})
        doc.update(_dataset_id=dataset_id, created_at=now, last_modified_at=now)
        docs.append(doc)
    for start in range(0, len(docs), BATCH):
        coll.insert_many(docs[start:start + BATCH], ordered=False)
    return len(docs)


def update_samples(ds, sample_ids: list[str], rows: pd.DataFrame, columns: list[str], tags: list[list[str]],
                   extra: list[dict] | None = None) -> int:
    """Overwrite managed fields, labels and tags of existing samples (one ``$set`` each).

    With ``extra`` (a workspace with photos) ``filepath`` and the documents of ``extra[k]`` are
    set too (a re-run face stage or a new display copy changes them); crop-only workspaces keep
    the filepath they were created with.
    """
    now = _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)
    coll = ds._sample_collection
    ops = []
    for k, (sid, fields, tag_list) in enumerate(zip(sample_ids, field_documents(rows, columns), tags)):
        if extra is None:
            fields.pop("filepath", None)
        else:
            fields.update(extra[k])
        fields.update(tags=tag_list, last_modified_at=now)
        ops.append(UpdateOne({"_id": ObjectId(sid)}, {"$set": fields}))
    for start in range(0, len(ops), BATCH):
        coll.bulk_write(ops[start:start + BATCH], ordered=False)
    return len(ops)
