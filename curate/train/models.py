"""FER network zoo for 48x48 grey faces: one place that builds every model the toolkit trains.

Every model maps ``(B, 1, H, W)`` float tensors to logits and has ``.features(x) -> (B, D)``,
the penultimate embedding used by the mislabel check and by dedupe's embedder.

Names (``build_model(name, ...)``):

* ``baseline_cnn``   three conv blocks + global pooling: a quick, small reference model;
* ``five_layer_cnn`` five conv layers + two dense layers, the classic Kaggle-era FER CNN;
* ``vgg_fer``        VGG-style: four stages of two 3x3 convs with batch norm (the family of the
  73.28 % single-model FER2013 result, Khaireddin & Chen 2021, arXiv:2105.03588); ``width``
  scales the channels (1.0 = 64-128-256-512), so a compact variant trains on a CPU;
* ``resnet18_fer``   ResNet-18 adapted to small grey inputs (3x3 stride-1 stem, no max-pool);
* ``backbone``       an ImageNet-style colour architecture (:class:`BackboneNet`): a torchvision
  model (``arch: resnet18``), a timm model (``timm:NAME``) or an open_clip image tower
  (``open_clip:ARCH``), built without weights (nothing is ever downloaded), its classifier
  replaced by a new linear head; :func:`load_backbone_checkpoint` fills it from a local file.

FER nets take one grey channel normalised by the trainer's fixed mean/std; a backbone takes
three channels with its own per-channel normalisation (``input_mean``/``input_std``, ImageNet's
for torchvision) and a grey input is replicated to three channels by that normalisation.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

MODEL_NAMES: tuple[str, ...] = ("baseline_cnn", "five_layer_cnn", "vgg_fer", "resnet18_fer")
"""The FER nets (one grey channel, any width)."""

BACKBONE = "backbone"
RECIPE_MODELS: tuple[str, ...] = MODEL_NAMES + (BACKBONE,)
"""Every ``model`` a recipe may name."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BACKBONE_SOURCES = ("torchvision", "timm", "open_clip")


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class FERNet(nn.Module):
    """A trunk (conv layers), an embedding head (``features``) and a linear classifier."""

    def __init__(self, trunk: nn.Module, embed: nn.Module, embed_dim: int, num_classes: int,
                 dropout: float, name: str, in_size: int):
        super().__init__()
        self.trunk = trunk
        self.embed = embed
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(embed_dim, num_classes)
        self.name = name
        self.in_size = int(in_size)
        self.embed_dim = int(embed_dim)
        self.num_classes = int(num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate embedding (B, D)."""
        return self.embed(self.trunk(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(x)))


def _baseline_cnn(num_classes: int, in_size: int, width: float = 1.0, dropout: float = 0.3) -> FERNet:
    c = [max(8, int(round(v * width))) for v in (32, 64, 128)]
    trunk = nn.Sequential(
        _conv_bn(1, c[0]), nn.MaxPool2d(2),
        _conv_bn(c[0], c[1]), nn.MaxPool2d(2),
        _conv_bn(c[1], c[2]), nn.MaxPool2d(2),
    )
    embed = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return FERNet(trunk, embed, c[2], num_classes, dropout, "baseline_cnn", in_size)


def _five_layer_cnn(num_classes: int, in_size: int, width: float = 1.0, dropout: float = 0.4,
                    hidden: int = 512) -> FERNet:
    c = [max(8, int(round(v * width))) for v in (64, 64, 128, 128, 256)]
    trunk = nn.Sequential(
        _conv_bn(1, c[0]), _conv_bn(c[0], c[1]), nn.MaxPool2d(2),
        _conv_bn(c[1], c[2]), _conv_bn(c[2], c[3]), nn.MaxPool2d(2),
        _conv_bn(c[3], c[4]), nn.MaxPool2d(2),
    )
    side = in_size // 8
    embed = nn.Sequential(nn.AdaptiveAvgPool2d(min(3, side)), nn.Flatten(),
                          nn.Linear(c[4] * min(3, side) ** 2, hidden, bias=False), nn.BatchNorm1d(hidden),
                          nn.ReLU(inplace=True))
    return FERNet(trunk, embed, hidden, num_classes, dropout, "five_layer_cnn", in_size)


def _vgg_fer(num_classes: int, in_size: int, width: float = 1.0, dropout: float = 0.4,
             hidden: int = 0) -> FERNet:
    c = [max(8, int(round(v * width))) for v in (64, 128, 256, 512)]
    layers: list[nn.Module] = []
    cin = 1
    for cout in c:
        layers += [_conv_bn(cin, cout), _conv_bn(cout, cout), nn.MaxPool2d(2)]
        cin = cout
    trunk = nn.Sequential(*layers)
    hidden = hidden or 2 * c[3]
    embed = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout / 2),
                          nn.Linear(c[3], hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True))
    return FERNet(trunk, embed, hidden, num_classes, dropout, "vgg_fer", in_size)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.short = (nn.Identity() if stride == 1 and cin == cout else
                      nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.short(x))


def _resnet18_fer(num_classes: int, in_size: int, width: float = 1.0, dropout: float = 0.2) -> FERNet:
    c = [max(8, int(round(v * width))) for v in (64, 128, 256, 512)]
    layers: list[nn.Module] = [_conv_bn(1, c[0])]
    cin = c[0]
    for i, cout in enumerate(c):
        stride = 1 if i == 0 else 2
        layers += [_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)]
        cin = cout
    trunk = nn.Sequential(*layers)
    embed = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return FERNet(trunk, embed, c[3], num_classes, dropout, "resnet18_fer", in_size)


class BackboneNet(nn.Module):
    """A pretrained-style feature extractor (``body``: images -> (B, D)) and a new linear head.

    ``head_prefix`` names the source architecture's own classifier (``fc`` for a ResNet), whose
    keys a published checkpoint holds and :func:`load_backbone_checkpoint` leaves out.
    ``fixed_size``: the side the body needs (ViTs); other sides are resized to it.
    """

    def __init__(self, body: nn.Module, embed_dim: int, num_classes: int, dropout: float, in_size: int, arch: str,
                 mean: tuple[float, ...], std: tuple[float, ...], head_prefix: str | None,
                 fixed_size: int | None = None, key_prefix: str = ""):
        super().__init__()
        self.backbone = body
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(embed_dim, num_classes)
        self.name = BACKBONE
        self.arch = arch
        self.in_size = int(in_size)
        self.embed_dim = int(embed_dim)
        self.num_classes = int(num_classes)
        self.in_channels = 3
        self.input_mean = tuple(float(v) for v in mean)
        self.input_std = tuple(float(v) for v in std)
        self.head_prefix = head_prefix
        self.key_prefix = key_prefix
        self.fixed_size = fixed_size

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features (B, D)."""
        if self.fixed_size and x.shape[-1] != self.fixed_size:
            x = nn.functional.interpolate(x, size=(self.fixed_size, self.fixed_size), mode="bilinear",
                                          align_corners=False)
        out = self.backbone(x)
        return out.flatten(1) if out.ndim > 2 else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(x)))


def parse_backbone(arch: str) -> tuple[str, str]:
    """``resnet18`` -> (torchvision, resnet18); ``timm:NAME``; ``open_clip:ARCH``. ValueError when unknown."""
    source, _, name = arch.partition(":") if ":" in arch else ("torchvision", "", arch)
    source = source.strip().lower().replace("-", "_")
    name = name.strip()
    if source not in BACKBONE_SOURCES or not name:
        raise ValueError(f"backbone {arch!r}: expected NAME (torchvision), timm:NAME or open_clip:ARCH")
    if source == "torchvision":
        import torchvision

        known = torchvision.models.list_models(module=torchvision.models)
        if name not in known:
            raise ValueError(f"backbone {name!r} is not a torchvision classification model "
                             f"(e.g. resnet18, resnet50, mobilenet_v3_large, efficientnet_b0, convnext_tiny)")
    return source, name


def _replace_last_linear(model: nn.Module) -> tuple[str, int]:
    """Swap the last nn.Linear of a torchvision classifier for nn.Identity: (its name, its input features)."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = (name, module)
    if last is None:
        raise ValueError(f"{type(model).__name__}: no linear classifier to replace")
    name, module = last
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    setattr(parent, name.rpartition(".")[2], nn.Identity())
    return name, int(module.in_features)


def _backbone_net(num_classes: int, in_size: int, arch: str = "resnet18", dropout: float = 0.2) -> BackboneNet:
    source, name = parse_backbone(arch)
    if source == "torchvision":
        import torchvision

        body = torchvision.models.get_model(name, weights=None)
        if hasattr(body, "aux_logits"):  # inception / googlenet: the auxiliary head is not used
            body.aux_logits = False
            for aux in ("AuxLogits", "aux1", "aux2"):
                if hasattr(body, aux):
                    setattr(body, aux, None)
        head, dim = _replace_last_linear(body)
        fixed = getattr(body, "image_size", None)  # torchvision ViTs check their input side
        return BackboneNet(body, dim, num_classes, dropout, in_size, arch, IMAGENET_MEAN, IMAGENET_STD, head,
                           int(fixed) if fixed else None)
    if source == "timm":
        import timm

        body = timm.create_model(name, pretrained=False)
        cfg = dict(getattr(body, "pretrained_cfg", None) or getattr(body, "default_cfg", {}) or {})
        head = cfg.get("classifier") or "fc"
        head = head[0] if isinstance(head, (list, tuple)) else head
        body.reset_classifier(0)
        fixed = int(cfg["input_size"][-1]) if hasattr(body, "patch_embed") and cfg.get("input_size") else None
        return BackboneNet(body, int(body.num_features), num_classes, dropout, in_size, arch,
                           tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD)), head, fixed)
    import open_clip

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # "no pretrained weights loaded": we load them ourselves
    try:
        clip = open_clip.create_model(name, pretrained=None)
    finally:
        logging.disable(previous)
    body = clip.visual
    cfg = getattr(body, "preprocess_cfg", {}) or {}
    size = cfg.get("size", getattr(body, "image_size", 224))
    size = size[-1] if isinstance(size, (list, tuple)) else size
    return BackboneNet(body, int(body.output_dim), num_classes, dropout, in_size, arch,
                       tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)),
                       tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD)), None, int(size), key_prefix="visual.")


def checkpoint_file(path: str | Path) -> Path:
    """The local checkpoint file ``path`` (``~`` expanded); a CurateError naming it when it is missing."""
    from curate.errors import CurateError

    path = Path(path).expanduser()
    if not path.is_file():
        raise CurateError(f"checkpoint {path}: file not found (a local state_dict file; curate never downloads "
                          "weights - see README, 'Fine-tuning a pretrained backbone')")
    return path


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a local checkpoint file: a state_dict saved by torch (``.pth``, ``.pt``, ``.bin``;
    read with ``weights_only=True``) or ``.safetensors``; a dict wrapping it under ``state_dict``,
    ``model`` or ``module`` is unwrapped, and DataParallel's ``module.`` prefix removed."""
    from curate.errors import CurateError

    path = checkpoint_file(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise CurateError(f"checkpoint {path}: not a readable PyTorch state_dict ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:200] if str(exc) else ''})") from None
    for key in ("state_dict", "model", "module", "state_dict_ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict) and \
                not any(isinstance(v, torch.Tensor) for v in state.values()):
            state = state[key]
            break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CurateError(f"checkpoint {path}: expected a state_dict (parameter name -> tensor), found "
                          f"{type(state).__name__}")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def load_backbone_checkpoint(model: BackboneNet, path: str | Path) -> dict[str, Any]:
    """Fill ``model.backbone`` from a local checkpoint of its architecture; the head stays new.

    The source classifier's keys (``fc.*`` for a ResNet) are left out; every other tensor of the
    backbone must be in the file with its shape (BatchNorm's ``num_batches_tracked``, absent from
    older torchvision files, excepted), else a CurateError names the file and the keys that differ.
    Returns what was loaded.
    """
    from curate.errors import CurateError

    path = Path(path).expanduser()
    state = read_state_dict(path)
    if model.key_prefix and any(k.startswith(model.key_prefix) for k in state):  # a whole CLIP: its image tower
        state = {k[len(model.key_prefix):]: v for k, v in state.items() if k.startswith(model.key_prefix)}
    dropped = []
    if model.head_prefix:
        head = model.head_prefix + "."
        dropped = [k for k in state if k.startswith(head)]
        state = {k: v for k, v in state.items() if not k.startswith(head)}
    target = model.backbone.state_dict()
    for key, value in target.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value.clone()
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in target.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        def few(keys: list[str]) -> str:
            return ", ".join(keys[:4]) + (f" ... (+{len(keys) - 4})" if len(keys) > 4 else "")

        parts = ([f"{len(missing)} backbone tensor(s) missing ({few(missing)})"] if missing else []) \
            + ([f"{len(unexpected)} unexpected ({few(unexpected)})"] if unexpected else []) \
            + ([f"{len(shapes)} of another shape ({few(shapes)})"] if shapes else [])
        raise CurateError(f"checkpoint {path} does not match backbone {model.arch}: " + "; ".join(parts)
                          + f". Is it a {model.arch} state_dict as torchvision/timm/open_clip publish it?")
    model.backbone.load_state_dict(state, strict=True)
    return {"checkpoint": str(path), "tensors": len(state), "head_left_out": sorted(dropped)}


_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "baseline_cnn": _baseline_cnn,
    "five_layer_cnn": _five_layer_cnn,
    "vgg_fer": _vgg_fer,
    "resnet18_fer": _resnet18_fer,
    BACKBONE: _backbone_net,
}


def build_model(name: str, num_classes: int, in_size: int = 48, **kwargs: Any) -> nn.Module:
    """Build a freshly initialised model; ``kwargs`` (e.g. ``width``, ``dropout``; ``arch`` for a
    backbone) tune it. A backbone keeps its architecture's own initialisation; its head is new."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(RECIPE_MODELS)}")
    if in_size < 16:
        raise ValueError(f"in_size {in_size} is too small (>= 16 needed)")
    try:
        model = _BUILDERS[name](num_classes, in_size, **kwargs)
    except TypeError as exc:
        raise ValueError(f"model {name}: bad option ({exc})") from None
    model.model_args = dict(kwargs)
    if isinstance(model, BackboneNet):
        nn.init.normal_(model.classifier.weight, 0, 0.01)
        nn.init.zeros_(model.classifier.bias)
        return model
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_from_recipe(recipe: dict[str, Any], num_classes: int) -> nn.Module:
    """The model a recipe names, at its input size (a backbone gets its ``backbone`` architecture)."""
    kwargs = dict(recipe["model_args"])
    if recipe["model"] == BACKBONE:
        kwargs["arch"] = str(recipe["backbone"])
    return build_model(recipe["model"], num_classes, in_size=recipe["input_size"], **kwargs)
