"""Canonical FER class names, synonyms and Kaggle codes."""
from __future__ import annotations

import re

CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""The seven FER2013 classes, in Kaggle code order (0-6)."""

EXTRA_CLASSES: tuple[str, ...] = ("contempt",)
"""Classes of FER+-style sets, accepted as canonical too."""

CLASS_TO_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}

SYNONYMS: dict[str, str] = {
    "anger": "angry", "angry": "angry", "mad": "angry",
    "disgust": "disgust", "disgusted": "disgust", "disgusting": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear",
    "happy": "happy", "happiness": "happy", "joy": "happy", "smile": "happy",
    "sad": "sad", "sadness": "sad", "unhappy": "sad",
    "surprise": "surprise", "surprised": "surprise", "suprise": "surprise",
    "neutral": "neutral", "calm": "neutral", "none": "neutral",
    "contempt": "contempt", "contemptuous": "contempt",
}

SPLIT_SYNONYMS: dict[str, str] = {
    "train": "train", "training": "train", "trn": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val", "publictest": "val",
    "test": "test", "testing": "test", "tst": "test", "privatetest": "test",
}

FER2013_USAGE: dict[str, str] = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}


def canonical_label(raw: object) -> str | None:
    """Map a label as found in a source to its canonical class name, or None if unknown.

    Accepts class names in any case and common synonyms, the Kaggle codes 0-6 (as int or
    digit string), and a class name with a scrape-round suffix (``happyv2``, ``sad_2``,
    ``angry-v3``), as folders of scraped photos are often named.
    """
    if raw is None:
        return None
    text = str(raw).strip()
    if text.isdigit() and int(text) < len(CLASSES):
        return CLASSES[int(text)]
    key = text.lower().replace("-", "").replace("_", "").replace(" ", "")
    if key in SYNONYMS:
        return SYNONYMS[key]
    match = _ROUND_SUFFIX.match(key)
    return SYNONYMS.get(match.group(1)) if match else None


_ROUND_SUFFIX = re.compile(r"^([a-z]+?)(?:v|ver|version|round|set|part)?\(?\d{1,3}\)?$")


def apply_label_map(labels: "pd.Series", originals: "pd.Series", label_map: dict[str, str] | None) -> "pd.Series":
    """``labels`` with the user's ``label_map`` (original label -> class) applied; the map's keys
    match the original label case-insensitively, its values go through :func:`canonical_label`."""
    if not label_map:
        return labels
    lookup = {str(k).strip().lower(): (canonical_label(v) or str(v).strip().lower()) for k, v in label_map.items()}
    mapped = originals.astype("string").str.strip().str.lower().map(lookup)
    return mapped.where(mapped.notna(), labels).astype("string")


def canonical_split(raw: object) -> str | None:
    """Map a split name (train/training, val/valid/validation, test/testing, ...) or None."""
    if raw is None:
        return None
    return SPLIT_SYNONYMS.get(str(raw).strip().lower().replace("_", "").replace("-", ""), None)
