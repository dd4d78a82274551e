"""FER network zoo for 48x48 grey faces: one place that builds every model the toolkit trains.

Every model maps ``(B, 1, H, W)`` float tensors to logits and has ``.features(x) -> (B, D)``,
the penultimate embedding used by the mislabel check and by dedupe's embedder.

Names (``build_model(name, ...)``):

* ``baseline_cnn``   three conv blocks + global pooling: a quick, small reference model;
* ``five_layer_cnn`` five conv layers + two dense layers, the classic Kaggle-era FER CNN;
* ``vgg_fer``        VGG-style: four stages of two 3x3 convs with batch norm (the family of the
  73.28 % single-model FER2013 result, Khaireddin & Chen 2021, arXiv:2105.03588); ``width``
  scales the channels (1.0 = 64-128-256-512), so a compact variant trains on a CPU;
* ``resnet18_fer``   ResNet-18 adapted to small grey inputs (3x3 stride-1 stem, no max-pool).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

MODEL_NAMES: tuple[str, ...] = ("baseline_cnn", "five_layer_cnn", "vgg_fer", "resnet18_fer")


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


_BUILDERS: dict[str, Callable[..., FERNet]] = {
    "baseline_cnn": _baseline_cnn,
    "five_layer_cnn": _five_layer_cnn,
    "vgg_fer": _vgg_fer,
    "resnet18_fer": _resnet18_fer,
}


def build_model(name: str, num_classes: int, in_size: int = 48, **kwargs: Any) -> FERNet:
    """Build a freshly initialised FER model; ``kwargs`` (e.g. ``width``, ``dropout``) tune it."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODEL_NAMES)}")
    if in_size < 16:
        raise ValueError(f"in_size {in_size} is too small (>= 16 needed)")
    try:
        model = _BUILDERS[name](num_classes, in_size, **kwargs)
    except TypeError as exc:
        raise ValueError(f"model {name}: bad option ({exc})") from None
    model.model_args = dict(kwargs)
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
