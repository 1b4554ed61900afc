"""The demo classifier: a ResNet-20 for CIFAR-10 (He et al. 2016, section 4.2).

Kept tiny (0.27 M parameters, about 1.1 MB of float32 weights) so that it ships
inside the package and attacks on it run in seconds on a laptop CPU.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
# Per-channel statistics of the CIFAR-10 training set; the model wrapper
# normalises with them so callers always pass images in [0, 1].
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        # Modules, not F.relu: a defense that acts after every activation (SAP) can reach them.
        self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            # Option B of the paper (1x1 projection): as cheap as padding here
            # and a little more accurate.
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNet20(nn.Module):
    """ResNet-20: 3 stages of 3 basic blocks, widths 16/32/64.

    Input: normalised images (N, 3, 32, 32). Output: logits (N, 10).
    """

    def __init__(self, num_classes: int = 10, width: int = 16, in_channels: int = 3) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(in_channels, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        layers: list[nn.Module] = []
        c_in = w
        for c_out, stride in ((w, 1), (2 * w, 2), (4 * w, 2)):
            for i in range(3):
                layers.append(_Block(c_in, c_out, stride if i == 0 else 1))
                c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class SmallVGG(nn.Module):
    """A small VGG-style network (Simonyan and Zisserman 2015): plain 3x3 convolutions, no shortcuts.

    Three stages of two conv-BN-ReLU layers, widths w/2w/4w (32/64/128), each followed by 2x2 max
    pooling, then global average pooling and one linear layer: 0.29 M parameters at w = 32, about
    the demo ResNet-20's compute. The transfer tables' model of another architecture.

    Input: normalised images (N, 3, 32, 32). Output: logits (N, 10).
    """

    def __init__(self, num_classes: int = 10, width: int = 32, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for c_out in (width, 2 * width, 4 * width):
            for _ in range(2):
                layers += [nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
                c_in = c_out
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


# The demo models' architectures by the name their weights' metadata records, with the default width.
ARCHITECTURES = {"ResNet20": (ResNet20, 16), "SmallVGG": (SmallVGG, 32)}


def build_net(architecture: str = "ResNet20", width: int | None = None, thermometer: int = 0) -> nn.Module:
    """An untrained demo network of the named architecture (``ARCHITECTURES``) and first-stage width;
    with ``thermometer`` l > 0, behind the l-level thermometer encoding (:mod:`.thermometer`)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown demo architecture {architecture!r}; choose from {', '.join(ARCHITECTURES)}")
    cls, default = ARCHITECTURES[architecture]
    net = cls(width=default if width is None else width, in_channels=3 * thermometer if thermometer else 3)
    if thermometer:
        from .thermometer import ThermometerNet

        return ThermometerNet(net, CIFAR10_MEAN, CIFAR10_STD, thermometer)
    return net
