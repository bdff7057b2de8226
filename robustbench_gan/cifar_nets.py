"""The architectures robust CIFAR models are published with, written here: PreAct-ResNet-18 (He et al. 2016,
"Identity Mappings in Deep Residual Networks"; the adversarial-training baseline of Rice, Wong & Kolter 2020) and
Wide ResNets (Zagoruyko & Komodakis 2016; WRN-28-10 and WRN-34-10 are the networks of Madry et al. 2018, TRADES
(Zhang et al. 2019) and most RobustBench CIFAR entries).

Their submodule names follow the layout those checkpoints use (``conv1``, ``layer1.0.bn1``, ``linear``;
``block1.layer.0.convShortcut``, ``bn1``, ``fc``), so a published state_dict loads as it is. They take pixels in
[0, 1]: where a checkpoint's authors normalised inside their model, give the same ``mean``/``std`` to the wrapper
(``[data]`` or per model). Pooling is global, so other input sizes work too (at 32x32 it is the usual 4x4 / 8x8
average pool)."""
from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn


class PreActBlock(nn.Module):
    """BN-ReLU-conv twice, with the identity (or a 1x1 projection) added; ``shortcut_from`` says what the
    projection sees: the pre-activated input (``activation``, He et al. 2016) or the raw one (``input``)."""

    def __init__(self, in_planes: int, planes: int, stride: int, shortcut_from: str) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut_from = shortcut_from
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        if hasattr(self, "shortcut"):
            skip = self.shortcut(out if self.shortcut_from == "activation" else x)
        else:
            skip = x
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + skip


class PreActResNet(nn.Module):
    """A pre-activation ResNet of :class:`PreActBlock` stages at 64/128/256/512 channels; ``final_bn``: a BN-ReLU
    before the pooling (Rice et al. 2020's layout, key ``bn``)."""

    def __init__(self, blocks: Sequence[int], *, in_channels: int = 3, num_classes: int = 10,
                 shortcut_from: str = "activation", final_bn: bool = True) -> None:
        super().__init__()
        if shortcut_from not in ("activation", "input"):
            raise ValueError(f"shortcut_from must be 'activation' or 'input', got {shortcut_from!r}")
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        planes_in = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks)):
            stage = []
            for j in range(int(n)):
                stage.append(PreActBlock(planes_in, planes, 1 if i == 0 or j > 0 else 2, shortcut_from))
                planes_in = planes
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
        self.final_bn = final_bn
        if final_bn:
            self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))
        if self.final_bn:
            out = F.relu(self.bn(out))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


class WideBlock(nn.Module):
    """A Wide ResNet block: BN-ReLU-conv3x3, BN-ReLU-conv3x3; where the width or stride changes, the pre-activated
    input goes through a 1x1 projection (``convShortcut``)."""

    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.dropout = dropout
        self.equal = in_planes == planes and stride == 1
        if not self.equal:
            self.convShortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        act = F.relu(self.bn1(x))
        out = F.relu(self.bn2(self.conv1(act)))
        if self.dropout > 0:
            out = F.dropout(out, p=self.dropout, training=self.training)
        out = self.conv2(out)
        return out + (x if self.equal else self.convShortcut(act))


class WideStage(nn.Module):
    """``n`` blocks, the first changing width and stride (key ``layer``)."""

    def __init__(self, n: int, in_planes: int, planes: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.layer = nn.Sequential(*(WideBlock(in_planes if i == 0 else planes, planes, stride if i == 0 else 1,
                                               dropout) for i in range(n)))

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """WRN-``depth``-``width``: a 3x3 stem of 16 channels, three stages of (depth - 4) / 6 blocks at 16, 32 and 64
    times ``width`` channels (strides 1, 2, 2), BN-ReLU, global average pooling and a linear layer (``fc``)."""

    def __init__(self, depth: int = 28, width: int = 10, *, in_channels: int = 3, num_classes: int = 10,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if (depth - 4) % 6 or depth < 10:
            raise ValueError(f"depth must be 6n + 4 (10, 16, 22, 28, 34, ...), got {depth}")
        n = (depth - 4) // 6
        channels = (16, 16 * width, 32 * width, 64 * width)
        self.conv1 = nn.Conv2d(in_channels, channels[0], 3, stride=1, padding=1, bias=False)
        self.block1 = WideStage(n, channels[0], channels[1], 1, dropout)
        self.block2 = WideStage(n, channels[1], channels[2], 2, dropout)
        self.block3 = WideStage(n, channels[2], channels[3], 2, dropout)
        self.bn1 = nn.BatchNorm2d(channels[3])
        self.fc = nn.Linear(channels[3], num_classes)
        for m in self.modules():  # He initialisation of the convolutions, as Zagoruyko & Komodakis
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.relu(self.bn1(out))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))
