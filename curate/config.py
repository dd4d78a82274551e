"""YAML defaults from ``configs/`` merged with user files and ``key=value`` overrides."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable

import yaml

from curate.errors import ConfigError  # defined in the error tree; importable from here as before

_PACKAGE_DIR = Path(__file__).resolve().parent


def _resource_dir(installed: str, repo: str) -> Path:
    """Folder shipped in the wheel (``curate/_configs``) or, in a checkout, the repo folder."""
    inside = _PACKAGE_DIR / installed
    return inside if inside.is_dir() else _PACKAGE_DIR.parent / repo


def configs_dir() -> Path:
    """The folder holding the default YAML configs."""
    return _resource_dir("_configs", "configs")


def pipelines_dir() -> Path:
    """The folder holding the bundled pipeline YAML files."""
    return _resource_dir("_pipelines", "pipelines")


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with a clear error naming the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, found {type(data).__name__}")
    return data


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated recursively by ``extra`` (neither is modified)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Turn ``["a.b=3", "c=[1,2]"]`` into a nested dict; values are parsed as YAML scalars."""
    result: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE (e.g. phash.threshold=8)")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: cannot parse value: {exc}") from None
        node = result
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r}: empty key part")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part} is both a value and a section")
        node[parts[-1]] = value
    return result


def load_config(section: str, overrides: dict[str, Any] | Iterable[str] | None = None,
                config_file: str | Path | None = None) -> dict[str, Any]:
    """Defaults of ``configs/<section>.yaml``, then ``config_file``, then ``overrides``.

    ``overrides`` is a nested dict or a list of ``key=value`` strings. Keys that the
    defaults do not know are refused, so a typo never passes silently.
    """
    default_path = configs_dir() / f"{section}.yaml"
    config = read_yaml(default_path) if default_path.exists() else {}
    layers: list[tuple[str, dict[str, Any]]] = []
    if config_file is not None:
        layers.append((str(config_file), read_yaml(config_file)))
    if overrides:
        if not isinstance(overrides, dict):
            overrides = parse_overrides(overrides)
        layers.append(("overrides", overrides))
    for origin, layer in layers:
        if config:
            _check_known_keys(config, layer, origin, section)
        config = deep_merge(config, layer)
    return config


def _check_known_keys(defaults: dict[str, Any], layer: dict[str, Any], origin: str, path: str) -> None:
    for key, value in layer.items():
        if key not in defaults:
            known = ", ".join(sorted(defaults)) or "(none)"
            raise ConfigError(f"{origin}: unknown option {path}.{key}; known options: {known}")
        if isinstance(value, dict) and isinstance(defaults[key], dict) and defaults[key]:
            _check_known_keys(defaults[key], value, origin, f"{path}.{key}")
