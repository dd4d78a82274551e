"""Training recipes: YAML files in ``configs/train/`` merged over :data:`DEFAULTS`.

``load_recipe("cpu_fast")`` reads ``configs/train/cpu_fast.yaml``; a path to any YAML file
works too. Overrides are ``["epochs=5", "model_args.width=0.5"]`` or a nested dict. Unknown
keys and bad values are refused with a message naming the key.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from curate.config import ConfigError, configs_dir, deep_merge, parse_overrides, read_yaml

DEFAULTS: dict[str, Any] = {
    "name": "custom",
    "description": "",
    "model": "baseline_cnn",      # baseline_cnn | five_layer_cnn | vgg_fer | resnet18_fer | backbone
    "model_args": {},             # e.g. {width: 0.5, dropout: 0.3}
    "backbone": None,             # model backbone: resnet18 (torchvision), timm:NAME or open_clip:ARCH
    "checkpoint": None,           # model backbone: local state_dict file (.pth/.pt/.bin/.safetensors); null = scratch
    "init": None,                 # FER nets: null (random) | expression (the bundled expression model) | PATH.pt of
                                  # an expression model: start from its trunk (its network and arguments replace
                                  # model/model_args), with a new head for the split's classes
    "freeze": "backbone",         # what freeze_epochs freezes: backbone (all but the head) or a list of layers
    "freeze_epochs": 0,           # train only the unfrozen part for this many first epochs (0 = never freeze)
    "input": "auto",              # auto (colour crops for backbones when the workspace has them) | grey | colour
    "image_size": 48,             # images are resized to this side first
    "input_size": 48,             # random crop (train) / centre crop (eval) side fed to the net
    "epochs": 30,
    "min_steps": "raw",           # raise epochs until training takes at least this many optimizer steps (0 = off);
                                  # raw (train-eval on a split): the steps the recipe's epochs take on the split's
                                  # train images before cleaning, so a cleaned split trains as long as the raw one
    "batch_size": 128,
    "optimizer": "sgd",           # sgd | adamw | adam
    "lr": 0.05,                   # peak learning rate
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5.0e-4,
    "schedule": "onecycle",       # onecycle | cosine | plateau | none
    "warmup_pct": 0.15,           # one-cycle: share of steps warming up
    "plateau_patience": 3,
    "plateau_factor": 0.5,
    "label_smoothing": 0.0,
    "augment": "mid",             # none | low | mid | high, or a dict of parameters
    "class_weights": "none",      # none | balanced | sqrt (inverse frequency, or its square root)
    "early_stopping": 0,          # patience in epochs on val accuracy; 0 = off
    "mixed_precision": True,      # bf16/fp16 autocast on CUDA only
    "tta": True,                  # test-time augmentation at evaluation (flip + crops)
    "eval_batch_size": 512,
    "num_threads": 0,             # CPU threads; 0 = all cores available to this process
    "channels_last": True,
    "max_minutes": 0,             # stop training after this wall time (0 = no limit)
    "small_loss_drop": 0.0,       # share of each batch's highest-loss images left out of the gradient (noisy
                                  # labels: they are the likely wrong ones); 0 = off
    "small_loss_warmup": 0,       # epochs trained on every image before small_loss_drop applies
    "snapshots": 0,               # OOF: also average predictions of the last N epochs' models (snapshot ensemble)
}

_CHOICES = {
    "input": ("auto", "grey", "colour"),
    "optimizer": ("sgd", "adamw", "adam"),
    "schedule": ("onecycle", "cosine", "plateau", "none"),
    "class_weights": ("none", "balanced", "sqrt"),
}


def recipes_dir() -> Path:
    """Folder of the bundled recipes (configs/train)."""
    return configs_dir() / "train"


def available_recipes() -> list[str]:
    """Names of the bundled recipes."""
    return sorted(p.stem for p in recipes_dir().glob("*.yaml"))


def _recipe_file(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.exists():
            raise ConfigError(f"{path}: recipe file not found")
        return path
    candidate = recipes_dir() / f"{name_or_path}.yaml"
    if not candidate.exists():
        raise ConfigError(f"unknown recipe {str(name_or_path)!r}; bundled recipes: {', '.join(available_recipes())}")
    return candidate


def load_recipe(name_or_path: str | Path | dict | None, overrides: dict[str, Any] | Iterable[str] | None = None
                ) -> dict[str, Any]:
    """A complete, validated recipe dict from a bundled name, a YAML path or a dict."""
    if name_or_path is None:
        layer: dict[str, Any] = {}
        origin = "defaults"
    elif isinstance(name_or_path, dict):
        layer, origin = dict(name_or_path), "recipe dict"
    else:
        path = _recipe_file(name_or_path)
        layer, origin = read_yaml(path), str(path)
        layer.setdefault("name", path.stem)
    recipe = _merge_checked(DEFAULTS, layer, origin)
    if overrides:
        extra = overrides if isinstance(overrides, dict) else parse_overrides(overrides)
        recipe = _merge_checked(recipe, extra, "overrides")
    validate_recipe(recipe)
    return recipe


def _merge_checked(base: dict[str, Any], layer: dict[str, Any], origin: str) -> dict[str, Any]:
    for key in layer:
        if key not in DEFAULTS:
            raise ConfigError(f"{origin}: unknown recipe key {key!r}; known keys: {', '.join(sorted(DEFAULTS))}")
    merged = deep_merge(base, layer)
    if "model_args" in layer and isinstance(layer["model_args"], dict):
        merged["model_args"] = deep_merge(base.get("model_args") or {}, layer["model_args"])
    return merged


def _count(value: Any) -> bool:
    """Whether ``value`` is an integer >= 0 (a bool is not)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def validate_recipe(recipe: dict[str, Any]) -> None:
    """Refuse impossible values with a message naming the key."""
    from curate.train.augment import augment_params
    from curate.train.models import BACKBONE, RECIPE_MODELS, parse_backbone

    if recipe["model"] not in RECIPE_MODELS:
        raise ConfigError(f"recipe model {recipe['model']!r}: known models: {', '.join(RECIPE_MODELS)}")
    if recipe["model"] == BACKBONE:
        if not recipe["backbone"]:
            raise ConfigError("recipe model backbone needs backbone: an architecture such as resnet18 "
                              "(torchvision), timm:convnext_tiny or open_clip:ViT-B-32")
        try:
            parse_backbone(str(recipe["backbone"]))
        except ValueError as exc:
            raise ConfigError(f"recipe backbone: {exc}") from None
    else:
        for key in ("backbone", "checkpoint"):
            if recipe[key]:
                raise ConfigError(f"recipe {key} {recipe[key]!r} needs model: backbone (model is {recipe['model']})")
    if recipe["init"] is not None and (not isinstance(recipe["init"], str) or recipe["model"] == BACKBONE):
        raise ConfigError(f"recipe init must be null, expression or the path of an expression-model .pt file, and "
                          f"needs a FER net (model is {recipe['model']}), got {recipe['init']!r}")
    if recipe["checkpoint"] is not None and not isinstance(recipe["checkpoint"], str):
        raise ConfigError(f"recipe checkpoint must be a file path or null, got {recipe['checkpoint']!r}")
    if not _count(recipe["freeze_epochs"]):
        raise ConfigError(f"recipe freeze_epochs must be an integer >= 0, got {recipe['freeze_epochs']!r}")
    if recipe["min_steps"] != "raw" and not _count(recipe["min_steps"]):
        raise ConfigError(f"recipe min_steps must be an integer >= 0 or raw, got {recipe['min_steps']!r}")
    freeze = recipe["freeze"]
    if not (freeze == "backbone" or (isinstance(freeze, list) and freeze and all(isinstance(f, str) for f in freeze))):
        raise ConfigError(f"recipe freeze must be 'backbone' or a list of layer names (e.g. [conv1, bn1, layer1]), "
                          f"got {freeze!r}")
    for key, options in _CHOICES.items():
        if recipe[key] not in options:
            raise ConfigError(f"recipe {key} {recipe[key]!r}: choose one of {', '.join(options)}")
    for key in ("epochs", "batch_size", "image_size", "input_size", "eval_batch_size"):
        if not isinstance(recipe[key], int) or recipe[key] < 1:
            raise ConfigError(f"recipe {key} must be a positive integer, got {recipe[key]!r}")
    if recipe["input_size"] > recipe["image_size"]:
        raise ConfigError(f"recipe input_size {recipe['input_size']} exceeds image_size {recipe['image_size']}")
    if not 0 <= float(recipe["label_smoothing"]) < 1:
        raise ConfigError(f"recipe label_smoothing must be in [0, 1), got {recipe['label_smoothing']!r}")
    if float(recipe["lr"]) <= 0:
        raise ConfigError(f"recipe lr must be > 0, got {recipe['lr']!r}")
    if not isinstance(recipe["model_args"], dict):
        raise ConfigError("recipe model_args must be a mapping")
    try:
        augment_params(recipe["augment"])
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"recipe augment: {exc}") from None
