"""Classifier architectures: torchvision backbones adapted to one grey channel, and a small CNN.

Every model is a :class:`Classifier`: input normalisation baked in (so the exported graph
takes plain ``pixel / 255``), a convolutional ``features`` trunk, global average pooling and
ONE linear ``head``. The single linear layer on pooled features makes the class activation
map exact: ``cam[c] = sum_k head.weight[c, k] * features[k]`` and the logit is the spatial
mean of the CAM plus the bias. Weights are never downloaded (``weights=None`` always).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from medviewer.errors import UserError

# Rough mean/std of 8-bit chest X-rays scaled to [0, 1]; only needs to centre the input.
INPUT_MEAN = 0.5
INPUT_STD = 0.25


class UnknownArchitectureError(UserError):
    pass


class Classifier(nn.Module):
    def __init__(self, features: nn.Module, feature_channels: int, num_classes: int,
                 dropout: float = 0.2) -> None:
        super().__init__()
        self.register_buffer("input_mean", torch.tensor(INPUT_MEAN))
        self.register_buffer("input_std", torch.tensor(INPUT_STD))
        self.features = features
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_channels, num_classes)

    def feature_maps(self, images: torch.Tensor) -> torch.Tensor:
        """Last convolutional features [N, K, h, w] for images [N, 1, H, W] in [0, 1]."""
        return self.features((images - self.input_mean) / self.input_std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = self.feature_maps(images).mean(dim=(2, 3))
        return self.head(self.dropout(pooled))

    def logits_and_cam(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [N, C] and class activation maps [N, C, h, w] from one forward pass."""
        features = self.feature_maps(images)
        logits = self.head(features.mean(dim=(2, 3)))
        cam = torch.nn.functional.conv2d(features, self.head.weight[:, :, None, None])
        return logits, cam

    def logits_cam_and_features(self, images: torch.Tensor
                                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """As :meth:`logits_and_cam`, plus the pooled features [N, K] the head reads (the
        out-of-distribution check's input), all from one forward pass."""
        features = self.feature_maps(images)
        pooled = features.mean(dim=(2, 3))
        cam = torch.nn.functional.conv2d(features, self.head.weight[:, :, None, None])
        return self.head(pooled), cam, pooled


class Ensemble(nn.Module):
    """Classifiers of one input size averaged in logit space.

    Averaging logits (not probabilities) keeps the CAM exact: the mean of the members'
    CAMs, spatially averaged, plus the mean bias is the ensemble's logit.
    """

    def __init__(self, members: list[Classifier]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(images) for member in self.members]).mean(dim=0)

    def logits_and_cam(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = [member.logits_and_cam(images) for member in self.members]
        return (torch.stack([logits for logits, _ in outputs]).mean(dim=0),
                torch.stack([cam for _, cam in outputs]).mean(dim=0))

    def logits_cam_and_features(self, images: torch.Tensor
                                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Averaged logits and CAM; the members' pooled features side by side [N, sum K]."""
        outputs = [member.logits_cam_and_features(images) for member in self.members]
        return (torch.stack([o[0] for o in outputs]).mean(dim=0),
                torch.stack([o[1] for o in outputs]).mean(dim=0),
                torch.cat([o[2] for o in outputs], dim=1))


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class _ResidualStage(nn.Sequential):
    """A strided conv, then a residual pair of 3x3 convs."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.down = _conv_bn(cin, cout, stride)
        self.body = nn.Sequential(_conv_bn(cout, cout),
                                  nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(cout))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(x)
        return self.act(x + self.body(x))


def small_cnn(widths: tuple[int, ...] = (24, 32, 64, 128, 192)) -> tuple[nn.Module, int]:
    """A small residual CNN that trains from scratch on a CPU in minutes (~1 M parameters).

    Output stride 16: a 128 px input gives 8x8 activation maps.
    """
    layers: list[nn.Module] = [_conv_bn(1, widths[0], 2)]
    strides = (2, 2, 2, 1)
    for cin, cout, stride in zip(widths[:-1], widths[1:], strides):
        layers.append(_ResidualStage(cin, cout, stride))
    return nn.Sequential(*layers), widths[-1]


def _one_channel(conv: nn.Conv2d) -> nn.Conv2d:
    return nn.Conv2d(1, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                     dilation=conv.dilation, groups=1, bias=conv.bias is not None)


def _resnet(factory: Callable) -> tuple[nn.Module, int]:
    net = factory(weights=None)
    net.conv1 = _one_channel(net.conv1)
    trunk = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool,
                          net.layer1, net.layer2, net.layer3, net.layer4)
    return trunk, net.fc.in_features


def resnet14() -> tuple[nn.Module, int]:
    """ResNet-18 without its last stage: 2.8 M parameters instead of 11 M, output stride 16.

    layer4 holds three quarters of ResNet-18's weights but a quarter of its arithmetic, so
    this keeps most of the depth at a quarter of the file size, and its activation maps
    (and CAM) are twice as fine.
    """
    from torchvision import models as tvm

    net = tvm.resnet18(weights=None)
    net.conv1 = _one_channel(net.conv1)
    trunk = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool,
                          net.layer1, net.layer2, net.layer3)
    return trunk, net.layer3[-1].conv2.out_channels


def _densenet(factory: Callable) -> tuple[nn.Module, int]:
    net = factory(weights=None)
    net.features.conv0 = _one_channel(net.features.conv0)
    # torchvision applies ReLU after the features in forward(); keep it in the trunk.
    return nn.Sequential(net.features, nn.ReLU(inplace=False)), net.classifier.in_features


def _first_conv_in_features0(factory: Callable) -> tuple[nn.Module, int]:
    """EfficientNet / MobileNetV3: features[0][0] is the stem conv."""
    net = factory(weights=None)
    net.features[0][0] = _one_channel(net.features[0][0])
    channels = net.features[-1].out_channels if hasattr(net.features[-1], "out_channels") \
        else net.features[-1][0].out_channels
    return net.features, channels


def _torchvision(name: str) -> Callable[[], tuple[nn.Module, int]]:
    def build() -> tuple[nn.Module, int]:
        from torchvision import models as tvm

        factory = getattr(tvm, name)
        if name.startswith("resnet"):
            return _resnet(factory)
        if name.startswith("densenet"):
            return _densenet(factory)
        return _first_conv_in_features0(factory)

    return build


ARCHITECTURES: dict[str, Callable[[], tuple[nn.Module, int]]] = {
    "smallcnn": small_cnn,
    "resnet14": resnet14,
    **{name: _torchvision(name) for name in (
        "resnet18", "resnet34", "resnet50", "densenet121", "efficientnet_b0",
        "mobilenet_v3_small", "mobilenet_v3_large")},
}


def build_model(arch: str, num_classes: int, dropout: float = 0.2) -> Classifier:
    if arch not in ARCHITECTURES:
        raise UnknownArchitectureError(
            f"The architecture {arch} is not supported (choose one of "
            f"{', '.join(sorted(ARCHITECTURES))}).")
    features, channels = ARCHITECTURES[arch]()
    model = Classifier(features, channels, num_classes, dropout)
    _init_head(model.head)
    return model


def _init_head(head: nn.Linear) -> None:
    nn.init.normal_(head.weight, std=0.01)
    nn.init.zeros_(head.bias)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
