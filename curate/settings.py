"""Typed settings: a YAML section read once into frozen dataclasses.

``load_settings(section, overrides, config_file)`` merges the same layers as
:func:`curate.config.load_config` (unknown keys refused there), then builds the
section's frozen dataclass, validating every value with a message that names its
key (``dedupe.embedder: expected one of pixel, clip, cnn, none; got 'pixl'``).
The settings object is the one source of the section's values: callers read its
attributes (``cfg.hash.radius``), already of the right type, and repeat no default.
Settings still answer ``cfg["key"]`` for code that reads them as a mapping.

Typed: every section with a YAML file in ``configs/`` (dedupe, report, mislabel, ingest,
audit, split; :data:`SECTIONS`).
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Mapping, Optional, Union

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
            elif isinstance(value, Mapping):
                value = dict(value)
            out[name] = value
        return out

    @classmethod
    def _field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))


@dataclasses.dataclass(frozen=True)
class AtLeast:
    """Marks a number field (``Annotated[int, AtLeast(0)]``) that must be >= ``minimum``."""

    minimum: float


_KINDS = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _kind(tp: Any) -> str:
    """``tp`` in words, for a message."""
    if typing.get_origin(tp) is Literal:
        return " or ".join(repr(c) for c in typing.get_args(tp))
    if typing.get_origin(tp) is tuple:
        return "a list"
    return _KINDS.get(tp, str(tp))


def _choices(tp: Any) -> str:
    return ", ".join(str(c) for c in typing.get_args(tp))


def _convert(value: Any, tp: Any, path: str) -> Any:
    """``value`` checked against (and normalised to) the annotation ``tp``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is Annotated:
        base, *marks = typing.get_args(tp)
        value = _convert(value, base, path)
        for mark in marks:
            if isinstance(mark, AtLeast) and value < mark.minimum:
                raise ConfigError(f"{path}: expected a number >= {mark.minimum:g}; got {value!r}")
        return value
    if origin is dict:
        key_tp, value_tp = typing.get_args(tp)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping; got {value!r}")
        return types.MappingProxyType({_key(k, key_tp, path): _convert(v, value_tp, f"{path}.{k}")
                                       for k, v in value.items()})
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
        raise ConfigError(f"{path}: expected {' or '.join(_kind(a) for a in inner)}; got {value!r}")
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


def _key(key: Any, tp: Any, path: str) -> Any:
    """A mapping key; YAML reads ``3: happy`` with an integer key, so ``str`` keys take numbers as text."""
    if tp is str and isinstance(key, (int, float)) and not isinstance(key, bool):
        return str(key)
    return _convert(key, tp, f"{path} key")


def build(cls: type[Settings], data: Mapping[str, Any], path: str) -> Settings:
    """``cls`` from a mapping: every field required, unknown keys refused, values validated."""
    hints = typing.get_type_hints(cls, include_extras=True)
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
    """Perceptual hashes and their Hamming-radius search."""

    methods: tuple[Literal["phash", "dhash", "whash"], ...]
    radius: int
    mirror: bool
    search: Literal["auto", "flat", "mih"]
    max_shared: int


@dataclasses.dataclass(frozen=True)
class KnnSettings(Settings):
    """Nearest-neighbour candidates of the embedder."""

    k: int
    min_similarity: float
    exact_below: int
    index: Literal["ivf", "hnsw"]
    nprobe: int


@dataclasses.dataclass(frozen=True)
class PixelSettings(Settings):
    """The pixel embedder and the registration check of its candidate pairs."""

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
    """The open_clip embedder."""

    model: str
    pretrained: Optional[str]
    device: str
    batch_size: int
    max_distance: float


@dataclasses.dataclass(frozen=True)
class CnnSettings(Settings):
    """The embedder from a ``curate train`` checkpoint."""

    checkpoint: Optional[str]
    device: str
    max_distance: float


@dataclasses.dataclass(frozen=True)
class DedupePolicySettings(Settings):
    """Proposed actions per cluster type (see :mod:`curate.dedupe.clusters`)."""

    inter_class: Literal["exclude_all", "ignore", "as_duplicates"]
    cross_split: Literal["keep_eval", "ignore", "as_duplicates"]
    intra_class: Literal["keep_one", "ignore"]
    eval_splits: tuple[str, ...]
    prefer_splits: tuple[str, ...]
    max_cluster_size: Annotated[int, AtLeast(0)]


@dataclasses.dataclass(frozen=True)
class DedupeSettings(Settings):
    """``curate dedupe`` and its benchmark."""

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
    """``curate report`` (report/index.html)."""

    top_n: int
    max_clusters: int
    thumb_size: int
    photo_size: int


# ---------------------------------------------------------------- mislabel (configs/mislabel.yaml)

@dataclasses.dataclass(frozen=True)
class MislabelKnnSettings(Settings):
    """Neighbours in the fold model's embedding space."""

    k: Annotated[int, AtLeast(1)]
    weight: float


@dataclasses.dataclass(frozen=True)
class DynamicsSettings(Settings):
    """``mode: dynamics`` (one training run, area under the margin)."""

    aum_threshold: float


@dataclasses.dataclass(frozen=True)
class MislabelSettings(Settings):
    """``curate mislabel`` and the audit's ``mislabel`` check."""

    mode: Literal["oof", "dynamics"]
    judge: Literal["auto", "own", "expression", "both"]
    expression_model: str
    expression_weight: Annotated[float, AtLeast(0)]
    flag_rule: Literal["auto", "estimate", "confident"]
    max_given_prob: Annotated[float, AtLeast(0)]
    folds: Annotated[int, AtLeast(2)]
    recipe: str
    recipe_overrides: dict[str, Any]
    device: str
    tta: bool
    min_skill_p: float
    min_skill: float
    variant: Literal["combined", "knn", "margin", "self_confidence", "aum", "cl"]
    knn: MislabelKnnSettings
    aum_weight: float
    class_prior_power: float
    ambiguity_ratio: float
    ambiguity_among: Literal["others", "all"]
    suggest_from: Literal["raw", "balanced"]
    rescore_strength: float
    dynamics: DynamicsSettings


# ---------------------------------------------------------------- ingest (configs/ingest.yaml)

@dataclasses.dataclass(frozen=True)
class FacesSettings(Settings):
    """The face stage of photo sources (detect, align, crop)."""

    detector: Literal["mtcnn", "hog"]
    mtcnn_side: Annotated[int, AtLeast(12)]
    mtcnn_min_face: Annotated[float, AtLeast(12)]
    mtcnn_min_original: Annotated[float, AtLeast(0)]
    mtcnn_min_score: float
    mtcnn_pad_retry: Annotated[float, AtLeast(0)]
    max_side: Annotated[int, AtLeast(1)]
    upsample: Annotated[int, AtLeast(0)]
    max_enlarge: float
    rotations: tuple[float, ...]
    fallback: Literal["none", "hog", "mmod"]
    min_score: float
    rgb_size: Annotated[int, AtLeast(1)]
    model_dir: Optional[str]
    text_detector_side: Annotated[int, AtLeast(0)]
    text_detector_enlarge: Annotated[float, AtLeast(0.1)]
    text_detector_model: Optional[str]


@dataclasses.dataclass(frozen=True)
class IngestSettings(Settings):
    """``curate ingest`` (and ``curate faces``, which re-runs its face stage)."""

    image_size: Annotated[int, AtLeast(1)]
    max_pixels: Annotated[int, AtLeast(1)]
    workers: Annotated[int, AtLeast(0)]
    usage_from_filename: bool
    images: Literal["auto", "crops", "photos"]
    faces: FacesSettings
    label_map: dict[str, Union[str, int]]


# ---------------------------------------------------------------- audit (configs/audit.yaml)

NonNegative = Annotated[float, AtLeast(0)]
"""A number field that must be >= 0."""


@dataclasses.dataclass(frozen=True)
class ThresholdSettings(Settings):
    """An image statistic flagged at ``threshold`` (blank, low_information, dark, light, low_contrast)."""

    threshold: float


@dataclasses.dataclass(frozen=True)
class BlurrySettings(Settings):
    """``blurry``: score = 1 - sharpness / reference_sharpness."""

    threshold: float
    reference_sharpness: Annotated[float, AtLeast(1e-9)]


@dataclasses.dataclass(frozen=True)
class LearnedCheckSettings(Settings):
    """A defect-model check on crops; rows scoring >= evidence_min x threshold get detector evidence."""

    threshold: float
    evidence_min: NonNegative


@dataclasses.dataclass(frozen=True)
class PhotoLearnedCheckSettings(Settings):
    """``watermark``, ``cartoon``: the defect model on crops, the photo scorer on photos (its
    threshold, prior and learning from the reviewer: see :class:`PhotoCheckSettings`)."""

    threshold: float
    evidence_min: NonNegative
    photo_threshold: Union[Literal["model"], float]
    photo_prior: Literal["fitted", "workspace"]
    learn_from_review: Literal["refit", "recalibrate", "none"]
    review_min: Annotated[int, AtLeast(1)]
    review_weight: Annotated[float, AtLeast(1)]
    review_strength: Annotated[float, AtLeast(0)]


@dataclasses.dataclass(frozen=True)
class MultipleFacesSettings(Settings):
    """``multiple_faces``: two or more MTCNN faces (faces.parquet) confident enough."""

    threshold: Annotated[float, AtLeast(0)]
    main_face_score: Annotated[float, AtLeast(0)]
    min_relative_width: Annotated[float, AtLeast(0)]
    min_width_px: Annotated[float, AtLeast(0)]
    max_yaw: Annotated[float, AtLeast(0)]


@dataclasses.dataclass(frozen=True)
class PhotoCheckSettings(Settings):
    """``no_face``: a photo scorer only. ``photo_threshold``: ``model`` = the scorer's own probability
    threshold, or a number; ``photo_prior``: ``fitted`` (the reviewed photos' share of positives) or
    ``workspace`` (re-estimated on the workspace's own photos by EM); ``learn_from_review``: once the
    reviewer has given ``review_min`` verdicts on this check in check_feedback.parquet, ``refit`` its
    trees on the bundled reviewed photos plus these (each counting ``review_weight`` times), or
    ``recalibrate`` its probabilities on them (shrunk towards no change by ``review_strength`` photos'
    worth), or ``none``."""

    photo_threshold: Union[Literal["model"], float]
    photo_prior: Literal["fitted", "workspace"]
    learn_from_review: Literal["refit", "recalibrate", "none"]
    review_min: Annotated[int, AtLeast(1)]
    review_weight: Annotated[float, AtLeast(1)]
    review_strength: Annotated[float, AtLeast(0)]


@dataclasses.dataclass(frozen=True)
class NonFaceSettings(Settings):
    """``non_face``: the defect model, the Haar face check of its top share, and the logistic fusion."""

    threshold: float
    evidence_min: NonNegative
    face_check_share: NonNegative
    face_found_factor: NonNegative
    face_min_scale: NonNegative
    fusion: bool
    fusion_weights: dict[str, float]


@dataclasses.dataclass(frozen=True)
class DetectorSettings(Settings):
    """The Haar cascade that gives evidence (face box, eye-line roll)."""

    upscale: Annotated[float, AtLeast(1)]
    border: NonNegative
    min_face: NonNegative


@dataclasses.dataclass(frozen=True)
class DefectModelSettings(Settings):
    """The defect model of the learned checks (:mod:`curate.audit.defect_model`)."""

    weights: Optional[str]
    adapt: Literal["auto", "never", "always"]
    adapt_min_images: Annotated[int, AtLeast(0)]
    adapt_min_defect_rate: NonNegative
    adapt_budget_s: NonNegative
    adapt_n_clean: Annotated[int, AtLeast(1)]
    adapt_per_defect: Annotated[int, AtLeast(1)]
    adapt_epochs: Annotated[int, AtLeast(1)]
    adapt_lr: NonNegative
    n_clean: Annotated[int, AtLeast(1)]
    n_per_defect: Annotated[int, AtLeast(1)]
    min_per_defect: Annotated[int, AtLeast(1)]
    epochs: Annotated[int, AtLeast(1)]
    width: Annotated[float, AtLeast(1e-9)]
    rounds: Annotated[int, AtLeast(1)]
    first_round_epochs: Annotated[int, AtLeast(1)]
    drop_share: NonNegative
    mirror_tta: bool
    mirror_share: NonNegative
    device: str


@dataclasses.dataclass(frozen=True)
class AuditSettings(Settings):
    """``curate audit``: the checks to run, how originals are read, and one section per check."""

    checks: tuple[str, ...]
    photo_model: str
    use_originals: Literal["auto", "always", "never"]
    quality_max_side: Annotated[int, AtLeast(1)]
    chunk_size: Annotated[int, AtLeast(1)]
    blank: ThresholdSettings
    low_information: ThresholdSettings
    dark: ThresholdSettings
    light: ThresholdSettings
    low_contrast: ThresholdSettings
    blurry: BlurrySettings
    non_face: NonFaceSettings
    misaligned: LearnedCheckSettings
    watermark: PhotoLearnedCheckSettings
    cartoon: PhotoLearnedCheckSettings
    no_face: PhotoCheckSettings
    multiple_faces: MultipleFacesSettings
    occlusion: LearnedCheckSettings
    detector: DetectorSettings
    model: DefectModelSettings


# ---------------------------------------------------------------- split (configs/split.yaml)

EXPORT_FORMATS = ("imagefolder", "csv", "parquet")
"""Formats of ``curate export`` / ``split.export``."""
BALANCE_MODES = ("none", "undersample", "oversample", "class_weights", "prior")
"""``split.balance``: how the train rows are balanced."""
DUPLICATE_REMOVALS = ("drop_duplicate", "exclude_conflict", "drop_leak")
"""dedupe's proposed actions that remove an image (``split.duplicates.actions``)."""
MISLABEL_ACTIONS = {"confident": ("keep", "exclude", "relabel"), "other": ("keep", "exclude")}
"""``split.mislabel.confident`` / ``split.mislabel.other``: what happens to flagged mislabel findings."""


@dataclasses.dataclass(frozen=True)
class SplitDuplicatesSettings(Settings):
    """Which of dedupe's proposed actions the split applies."""

    apply: bool
    actions: tuple[Literal[DUPLICATE_REMOVALS], ...]
    leak_guard: bool


@dataclasses.dataclass(frozen=True)
class SplitFindingsSettings(Settings):
    """Which flagged audit findings exclude an image."""

    apply: bool
    exclude_checks: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class SplitMislabelSettings(Settings):
    """What the split does with flagged mislabel findings."""

    confident: Literal[MISLABEL_ACTIONS["confident"]]
    relabel_min_probability: NonNegative
    other: Literal[MISLABEL_ACTIONS["other"]]
    top_share: NonNegative


@dataclasses.dataclass(frozen=True)
class SplitSoftLabelsSettings(Settings):
    """Soft training targets from the mislabel check's out-of-fold probabilities."""

    apply: bool
    label_weight: NonNegative


@dataclasses.dataclass(frozen=True)
class SplitSettings(Settings):
    """``curate split``: the cleaning policy, the split fractions, balancing and exports."""

    name: str
    raw: bool
    clean_test: bool
    resplit_val: bool
    val_fraction: float
    test_fraction: float
    decisions: bool
    duplicates: SplitDuplicatesSettings
    findings: SplitFindingsSettings
    mislabel: SplitMislabelSettings
    soft_labels: SplitSoftLabelsSettings
    balance: Literal[BALANCE_MODES]
    export: tuple[Literal[EXPORT_FORMATS], ...]
    classes: Optional[Union[str, tuple[Any, ...]]]
    exclude_no_face: bool
    test_images: Optional[str]


SECTIONS: dict[str, type[Settings]] = {"dedupe": DedupeSettings, "report": ReportSettings,
                                       "mislabel": MislabelSettings, "ingest": IngestSettings,
                                       "audit": AuditSettings, "split": SplitSettings}


def _schema(section: str) -> type[Settings]:
    try:
        return SECTIONS[section]
    except KeyError:
        raise ConfigError(f"no typed settings for section {section!r}; "
                          f"typed: {', '.join(sorted(SECTIONS))}") from None


def load_settings(section: str, overrides: dict[str, Any] | Iterable[str] | None = None,
                  config_file: str | Path | None = None) -> Settings:
    """The merged section (see :func:`curate.config.load_config`) as its frozen dataclass."""
    cls = _schema(section)
    return build(cls, load_config(section, overrides, config_file), section)


def as_settings(section: str, cfg: Settings | Mapping[str, Any]) -> Settings:
    """``cfg`` as the section's dataclass: settings pass through, a whole mapping (such as
    ``load_config`` returns) is validated like a loaded section."""
    cls = _schema(section)
    return cfg if isinstance(cfg, cls) else build(cls, cfg, section)
