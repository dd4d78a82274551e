"""Typed settings (issue 13 item 2): frozen dataclasses, validation messages naming the key."""
import dataclasses

import pytest

from curate.config import load_config
from curate.errors import ConfigError
from curate.settings import DedupeSettings, ReportSettings, load_settings


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
    with pytest.raises(ConfigError, match="no typed settings for section 'mislabel'"):
        load_settings("mislabel")
