"""Typed settings (issue 13 item 2): frozen dataclasses, validation messages naming the key."""
import dataclasses

import pytest

from curate.config import configs_dir, load_config
from curate.errors import ConfigError
from curate.settings import (SECTIONS, AuditSettings, DedupeSettings, DefectModelSettings, FacesSettings,
                             IngestSettings, MislabelSettings, ReportSettings, SplitSettings, as_settings,
                             load_settings)


def test_dedupe_defaults_read_into_frozen_dataclasses():
    s = load_settings("dedupe")
    assert isinstance(s, DedupeSettings)
    assert s.embedder == "pixel" and s.hash.methods == ("phash",) and s.knn.k == 4
    assert isinstance(s.pixel.blur, float) and s.pixel.fine_reject_margin == (0.15, 0.05)
    assert s.clip.pretrained is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.embedder = "clip"
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.hash.radius = 9


def test_settings_keep_mapping_access_and_round_trip():
    s = load_settings("dedupe")
    assert s["hash"]["radius"] == s.hash.radius and "knn" in s
    assert s.to_dict() == load_config("dedupe")
    assert isinstance(load_settings("report"), ReportSettings)


def test_overrides_are_validated_and_normalised():
    s = load_settings("dedupe", ["hash.radius=6", "pixel.blur=2", "embedder=none"])
    assert s.hash.radius == 6 and s.pixel.blur == 2.0 and isinstance(s.pixel.blur, float)
    assert s.embedder == "none"


@pytest.mark.parametrize("override, message", [
    ("embedder=pixl", r"dedupe\.embedder: expected one of pixel, clip, cnn, none; got 'pixl'"),
    ("hash.radius=4.5", r"dedupe\.hash\.radius: expected an integer; got 4\.5"),
    ("hash.mirror=maybe", r"dedupe\.hash\.mirror: expected true or false; got 'maybe'"),
    ("hash.methods=[phash,ahash]", r"dedupe\.hash\.methods\[1\]: expected one of phash, dhash, whash; got 'ahash'"),
    ("knn.min_similarity=high", r"dedupe\.knn\.min_similarity: expected a number; got 'high'"),
    ("policy.inter_class=drop", r"dedupe\.policy\.inter_class: expected one of exclude_all, ignore, as_duplicates"),
    ("pixel.converge_px=0.3", r"dedupe\.pixel\.converge_px: expected a list; got 0\.3"),
])
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_settings("dedupe", [override])


def test_unknown_keys_still_refused():
    with pytest.raises(ConfigError, match=r"unknown option dedupe\.hash\.raduis"):
        load_settings("dedupe", ["hash.raduis=3"])


def test_section_without_schema_is_refused():
    with pytest.raises(ConfigError, match="no typed settings for section 'train'"):
        load_settings("train")


def test_every_yaml_section_has_a_schema():
    assert sorted(p.stem for p in configs_dir().glob("*.yaml")) == sorted(SECTIONS)


# -- every typed section: defaults equal the YAML, overrides applied, unknown keys and bad values refused


@pytest.mark.parametrize("section", ["dedupe", "report", "mislabel", "ingest", "audit", "split"])
def test_defaults_equal_the_yaml(section):
    s = load_settings(section)
    assert s.to_dict() == load_config(section)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(s, s.keys()[0], None)


def test_report_overrides_and_refusals():
    s = load_settings("report", {"top_n": 3, "thumb_size": 64})
    assert (s.top_n, s.thumb_size, s.max_clusters) == (3, 64, load_config("report")["max_clusters"])
    with pytest.raises(ConfigError, match=r"report\.top_n: expected an integer; got 'many'"):
        load_settings("report", ["top_n=many"])
    with pytest.raises(ConfigError, match=r"unknown option report\.topn"):
        load_settings("report", ["topn=3"])


def test_mislabel_settings():
    s = load_settings("mislabel")
    assert isinstance(s, MislabelSettings)
    assert (s.mode, s.folds, s.variant, s.knn.k, s.tta) == ("oof", 5, "combined", 10, True)
    assert isinstance(s.class_prior_power, float) and s.dynamics.aum_threshold == 0.0
    assert dict(s.recipe_overrides) == {}
    with pytest.raises(TypeError):
        s.recipe_overrides["epochs"] = 3  # read-only mapping
    s = load_settings("mislabel", ["folds=3", "knn.weight=1", "recipe_overrides={epochs: 2}", "mode=dynamics"])
    assert s.folds == 3 and s.knn.weight == 1.0 and isinstance(s.knn.weight, float)
    assert dict(s.recipe_overrides) == {"epochs": 2} and s.mode == "dynamics"
    assert s.to_dict()["recipe_overrides"] == {"epochs": 2}


@pytest.mark.parametrize("override, message", [
    ("mode=kfold", r"mislabel\.mode: expected one of oof, dynamics; got 'kfold'"),
    ("folds=1", r"mislabel\.folds: expected a number >= 2; got 1"),
    ("folds=2.5", r"mislabel\.folds: expected an integer; got 2\.5"),
    ("variant=best", r"mislabel\.variant: expected one of combined, knn, margin, self_confidence, aum, cl"),
    ("knn.weight=[1]", r"mislabel\.knn\.weight: expected a number; got \[1\]"),
    ("tta=1", r"mislabel\.tta: expected true or false; got 1"),
    ("recipe_overrides=3", r"mislabel\.recipe_overrides: expected a mapping; got 3"),
    ("dynamics.aum_threshold=low", r"mislabel\.dynamics\.aum_threshold: expected a number; got 'low'"),
])
def test_mislabel_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_settings("mislabel", [override])


def test_mislabel_unknown_keys_refused():
    with pytest.raises(ConfigError, match=r"unknown option mislabel\.knn\.kk"):
        load_settings("mislabel", ["knn.kk=3"])
    with pytest.raises(ConfigError, match=r"unknown option mislabel\.fold"):
        load_settings("mislabel", ["fold=3"])


def test_as_settings_validates_a_plain_mapping():
    cfg = load_config("mislabel")
    assert as_settings("mislabel", cfg) == load_settings("mislabel")
    s = load_settings("mislabel")
    assert as_settings("mislabel", s) is s
    with pytest.raises(ConfigError, match=r"mislabel\.aum_weight: expected a number"):
        as_settings("mislabel", {**cfg, "aum_weight": "half"})
    with pytest.raises(ConfigError, match=r"mislabel\.knn: missing"):
        as_settings("mislabel", {k: v for k, v in cfg.items() if k != "knn"})


def test_ingest_settings():
    s = load_settings("ingest")
    assert isinstance(s, IngestSettings) and isinstance(s.faces, FacesSettings)
    assert (s.image_size, s.workers, s.images, s.usage_from_filename) == (48, 0, "auto", True)
    assert s.faces.rotations == () and s.faces.model_dir is None and dict(s.label_map) == {}
    assert (s.faces.detector, s.faces.fallback, s.faces.mtcnn_min_score) == ("mtcnn", "none", 0.85)
    s = load_settings("ingest", ["faces.upsample=2", "faces.max_enlarge=3", "images=photos",
                                 "label_map={glad: happy, 3: sad, gloomy: 4}"])
    assert s.faces.upsample == 2 and s.faces.max_enlarge == 3.0 and isinstance(s.faces.max_enlarge, float)
    assert s.images == "photos"
    assert dict(s.label_map) == {"glad": "happy", "3": "sad", "gloomy": 4}  # YAML's integer keys read as text


@pytest.mark.parametrize("override, message", [
    ("images=pictures", r"ingest\.images: expected one of auto, crops, photos; got 'pictures'"),
    ("workers=-1", r"ingest\.workers: expected a number >= 0; got -1"),
    ("max_pixels=1e6", r"ingest\.max_pixels: expected an integer; got '1e6'"),
    ("faces.fallback=cnn", r"ingest\.faces\.fallback: expected one of none, hog, mmod; got 'cnn'"),
    ("faces.rotations=25", r"ingest\.faces\.rotations: expected a list; got 25"),
    ("faces.rotations=[25, left]", r"ingest\.faces\.rotations\[1\]: expected a number; got 'left'"),
    ("faces.model_dir=3", r"ingest\.faces\.model_dir: expected a string; got 3"),
    ("label_map=[happy]", r"ingest\.label_map: expected a mapping; got \['happy'\]"),
    ("label_map={glad: [happy]}", r"ingest\.label_map\.glad: expected a string or an integer; got \['happy'\]"),
])
def test_ingest_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_settings("ingest", [override])


def test_ingest_unknown_keys_refused_also_from_a_file(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown option ingest\.faces\.upsampel"):
        load_settings("ingest", ["faces.upsampel=2"])
    extra = tmp_path / "ingest.yaml"
    extra.write_text("workers: 2\nfaces: {rgb_size: 64}\n")
    s = load_settings("ingest", ["workers=3"], extra)
    assert s.workers == 3 and s.faces.rgb_size == 64      # the file, then the overrides
    extra.write_text("imags: photos\n")
    with pytest.raises(ConfigError, match=r"ingest\.yaml: unknown option ingest\.imags"):
        load_settings("ingest", None, extra)


def test_audit_settings():
    s = load_settings("audit")
    assert isinstance(s, AuditSettings) and isinstance(s.model, DefectModelSettings)
    assert s.checks[:2] == ("blank", "low_information") and s.use_originals == "auto"
    assert s.watermark.photo_threshold == "model" and s.model.weights == "bundled" and s.model.adapt == "auto"
    assert isinstance(s.blank.threshold, float) and isinstance(s.model.adapt_budget_s, float)
    assert dict(s.non_face.fusion_weights)["blank"] == 6.7193
    s = load_settings("audit", ["watermark.photo_threshold=0.7", "model.weights=null", "non_face.fusion=false",
                                "model.adapt_budget_s=60", "chunk_size=512"])
    assert s.watermark.photo_threshold == 0.7 and s.model.weights is None and s.non_face.fusion is False
    assert s.model.adapt_budget_s == 60.0 and isinstance(s.model.adapt_budget_s, float) and s.chunk_size == 512


@pytest.mark.parametrize("override, message", [
    ("use_originals=sometimes", r"audit\.use_originals: expected one of auto, always, never; got 'sometimes'"),
    ("chunk_size=0", r"audit\.chunk_size: expected a number >= 1; got 0"),
    ("blank.threshold=high", r"audit\.blank\.threshold: expected a number; got 'high'"),
    ("watermark.photo_threshold=auto", r"audit\.watermark\.photo_threshold: expected 'model' or a number; got 'auto'"),
    ("model.adapt=maybe", r"audit\.model\.adapt: expected one of auto, never, always; got 'maybe'"),
    ("model.epochs=2.5", r"audit\.model\.epochs: expected an integer; got 2\.5"),
    ("non_face.fusion_weights.blank=x", r"audit\.non_face\.fusion_weights\.blank: expected a number; got 'x'"),
    ("checks=blank", r"audit\.checks: expected a list; got 'blank'"),
])
def test_audit_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_settings("audit", [override])


def test_split_settings():
    s = load_settings("split")
    assert isinstance(s, SplitSettings)
    assert (s.name, s.balance, s.export, s.classes) == ("cleaned", "none", (), None)
    assert (s.mislabel.confident, s.mislabel.other, s.mislabel.relabel_min_probability) == ("relabel", "exclude", 0.8)
    assert s.duplicates.actions == ("drop_duplicate", "exclude_conflict", "drop_leak")
    s = load_settings("split", ["classes=happy,sad", "export=[csv, parquet]", "val_fraction=0.2"])
    assert s.classes == "happy,sad" and s.export == ("csv", "parquet") and s.val_fraction == 0.2
    assert load_settings("split", ["classes=[happy, sad]"]).classes == ("happy", "sad")


@pytest.mark.parametrize("override, message", [
    ("balance=sideways", r"split\.balance: expected one of none, undersample, oversample, class_weights, prior"),
    ("export=[tfrecord]", r"split\.export\[0\]: expected one of imagefolder, csv, parquet; got 'tfrecord'"),
    ("mislabel.other=relabel", r"split\.mislabel\.other: expected one of keep, exclude; got 'relabel'"),
    ("mislabel.relabel_min_probability=-1", r"split\.mislabel\.relabel_min_probability: expected a number >= 0"),
    ("duplicates.actions=[drop_all]", r"split\.duplicates\.actions\[0\]: expected one of drop_duplicate"),
    ("raw=yes please", r"split\.raw: expected true or false; got 'yes please'"),
])
def test_split_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_settings("split", [override])
