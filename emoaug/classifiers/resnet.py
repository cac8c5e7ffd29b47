"""ResNet-50 on log-mel spectrograms (as in Kim & Lee 2024), randomly initialised.

The torchvision network expects 3-channel images; the stem convolution is replaced by one with
``in_channels`` inputs so a mel spectrogram is a 1-channel image ``[B, 1, n_mels, n_frames]``.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn


class MelResNet(nn.Module):
    """``[B, n_mels, n_frames]`` (or ``[B, in_channels, M, T]``) -> logits; ``embed`` gives ``[B, 2048]``."""

    def __init__(self, net: torchvision.models.ResNet, in_channels: int):
        super().__init__()
        self.net = net
        self.in_channels = in_channels
        self.embedding_dim = net.fc.in_features

    def _as_image(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3 and self.in_channels == 1:
            x = x.unsqueeze(1)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"MelResNet expects [B, M, T] or [B, {self.in_channels}, M, T], got {tuple(x.shape)}")
        return x

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled output of the last residual stage (the input of ``fc``)."""
        net = self.net
        h = net.maxpool(net.relu(net.bn1(net.conv1(self._as_image(x)))))
        h = net.layer4(net.layer3(net.layer2(net.layer1(h))))
        return torch.flatten(net.avgpool(h), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.fc(self.embed(x))


def resnet50(n_classes: int, *, in_channels: int = 1) -> MelResNet:
    """torchvision ResNet-50 with ``weights=None`` (never downloads) and an ``in_channels`` stem."""
    net = torchvision.models.resnet50(weights=None, num_classes=n_classes)
    old = net.conv1
    net.conv1 = nn.Conv2d(
        in_channels,
        old.out_channels,
        kernel_size=old.kernel_size,
        stride=old.stride,
        padding=old.padding,
        bias=False,
    )
    # same initialisation torchvision applies to every other convolution of the network
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    return MelResNet(net, in_channels)
