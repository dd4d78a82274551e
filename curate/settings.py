"""Typed settings: a YAML section read once into frozen dataclasses.

``load_settings(section, overrides, config_file)`` merges the same layers as
:func:`curate.config.load_config` (unknown keys refused there), then builds the
section's frozen dataclass, validating every value with a message that names its
key (``dedupe.embedder: expected one of pixel, clip, cnn, none; got 'pixl'``).
Settings still answer ``cfg["key"]`` so callers can move over one at a time.
Sections without a schema here (mislabel, audit, split, ingest) stay on the dict path.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Optional, Union

from curate.config import load_config
from curate.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Settings:
    """Base of the settings dataclasses: frozen, with read-only mapping access."""

    def __getitem__(self, key: str) -> Any:
        if key not in self._field_names():
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self._field_names()

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self._field_names() else default

    def keys(self) -> list[str]:
        return list(self._field_names())

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists for sequences), as ``load_config`` returns it."""
        out: dict[str, Any] = {}
        for name in self._field_names():
            value = getattr(self, name)
            if isinstance(value, Settings):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out

    @classmethod
    def _field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))


def _choices(tp: Any) -> str:
    return ", ".join(str(c) for c in typing.get_args(tp))


def _convert(value: Any, tp: Any, path: str) -> Any:
    """``value`` checked against (and normalised to) the annotation ``tp``."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp) or isinstance(value, bool):
            raise ConfigError(f"{path}: expected one of {_choices(tp)}; got {value!r}")
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _convert(value, inner[0], path)
        for a in inner:
            try:
                return _convert(value, a, path)
            except ConfigError:
                continue
        raise ConfigError(f"{path}: unexpected value {value!r}")
    if origin is tuple:
        item_tp = typing.get_args(tp)[0]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list; got {value!r}")
        return tuple(_convert(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value))
    if isinstance(tp, type) and issubclass(tp, Settings):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a section (mapping); got {value!r}")
        return build(tp, value, path)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false; got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer; got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number; got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string; got {value!r}")
        return value
    raise TypeError(f"{path}: unsupported annotation {tp!r}")


def build(cls: type[Settings], data: Mapping[str, Any], path: str) -> Settings:
    """``cls`` from a mapping: every field required, unknown keys refused, values validated."""
    hints = typing.get_type_hints(cls)
    names = cls._field_names()
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"unknown option {path}.{unknown[0]}; known options: {', '.join(sorted(names))}")
    missing = [n for n in names if n not in data]
    if missing:
        raise ConfigError(f"{path}.{missing[0]}: missing")
    return cls(**{n: _convert(data[n], hints[n], f"{path}.{n}") for n in names})


# ---------------------------------------------------------------- dedupe (configs/dedupe.yaml)

@dataclasses.dataclass(frozen=True)
class HashSettings(Settings):
    methods: tuple[Literal["phash", "dhash", "whash"], ...]
    radius: int
    mirror: bool
    search: Literal["auto", "flat", "mih"]


@dataclasses.dataclass(frozen=True)
class KnnSettings(Settings):
    k: int
    min_similarity: float
    exact_below: int
    index: Literal["ivf", "hnsw"]
    nprobe: int


@dataclasses.dataclass(frozen=True)
class PixelSettings(Settings):
    grid: int
    blur: float
    hog_weight: float
    verify: bool
    min_aligned_ncc: float
    coarse_reject: float
    fine_reject_margin: tuple[float, ...]
    converge_px: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class ClipSettings(Settings):
    model: str
    pretrained: Optional[str]
    device: str
    batch_size: int
    max_distance: float


@dataclasses.dataclass(frozen=True)
class CnnSettings(Settings):
    checkpoint: Optional[str]
    device: str
    max_distance: float


@dataclasses.dataclass(frozen=True)
class DedupePolicySettings(Settings):
    inter_class: Literal["exclude_all", "ignore", "as_duplicates"]
    cross_split: Literal["keep_eval", "ignore", "as_duplicates"]
    intra_class: Literal["keep_one", "ignore"]
    eval_splits: tuple[str, ...]
    prefer_splits: tuple[str, ...]
    max_cluster_size: int


@dataclasses.dataclass(frozen=True)
class DedupeSettings(Settings):
    exact: bool
    hash: HashSettings
    embedder: Literal["pixel", "clip", "cnn", "none"]
    knn: KnnSettings
    pixel: PixelSettings
    clip: ClipSettings
    cnn: CnnSettings
    policy: DedupePolicySettings


# ---------------------------------------------------------------- report (configs/report.yaml)

@dataclasses.dataclass(frozen=True)
class ReportSettings(Settings):
    top_n: int
    max_clusters: int
    thumb_size: int
    photo_size: int


SECTIONS: dict[str, type[Settings]] = {"dedupe": DedupeSettings, "report": ReportSettings}


def load_settings(section: str, overrides: dict[str, Any] | Iterable[str] | None = None,
                  config_file: str | Path | None = None) -> Settings:
    """The merged section (see :func:`curate.config.load_config`) as its frozen dataclass."""
    try:
        cls = SECTIONS[section]
    except KeyError:
        raise ConfigError(f"no typed settings for section {section!r}; "
                          f"typed: {', '.join(sorted(SECTIONS))}") from None
    return build(cls, load_config(section, overrides, config_file), section)
