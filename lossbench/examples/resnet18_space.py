"""A feature space in one file: torchvision's resnet18 without its classifier, weights from a file you give.

Copy this file into ``./plugins/`` and point ``$LOSSBENCH_RESNET18_WEIGHTS`` at a ``torch.save``-d resnet18
``state_dict`` (nothing is downloaded), then::

    lossbench run -d digits --feature-space resnet18 ...

FID, KID and PRDC are then also stored as ``fid@resnet18``, ``kid@resnet18``, ``prdc@resnet18_recall``...
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor
from torch.nn import functional as F

from lossbench import Dataset, FeatureSpace, hookimpl

WEIGHTS_ENV = "LOSSBENCH_RESNET18_WEIGHTS"  # LOSSBENCH_* variables reach worker processes too
SIDE = 32  # images are resized to this side inside the extractor (resnet18 pools 32x: 1x1 before avgpool)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet normalisation, as torchvision's weights expect


class ResNet18Features(torch.nn.Module):
    """The 512-d global-average-pooled features of resnet18 (its ``fc`` replaced by the identity)."""

    name = "resnet18-avgpool"  # stored beside every value: fid@resnet18_features = "resnet18-avgpool"
    mean: Tensor  # ImageNet normalisation, registered as buffers below
    std: Tensor

    def __init__(self, weights: Path, device: torch.device) -> None:
        from torchvision.models import resnet18

        super().__init__()
        net = resnet18(weights=None)  # the architecture only: the weights come from the file
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        net.fc = torch.nn.Identity()
        self.net = net.eval().requires_grad_(False).to(device)
        self.register_buffer("mean", torch.tensor(MEAN, device=device).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD, device=device).view(1, 3, 1, 1))

    def features(self, x: Tensor) -> Tensor:
        x = (x.float() + 1) / 2  # lossbench images are in [-1, 1]
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(SIDE, SIDE), mode="bilinear", align_corners=False)
        return self.net((x - self.mean) / self.std)


class ResNet18Space(FeatureSpace):
    """resnet18's 512-d pooled features (weights from $LOSSBENCH_RESNET18_WEIGHTS); images resized to 32 px."""

    name = "resnet18"
    inputs = "image"
    channels = (1, 3)  # grey images are repeated to three channels
    sizes = (8, None)  # any side from 8 px up: the extractor resizes
    width = 512

    @property  # read when asked, so that the variable may be set after the plugin is imported
    def weights(self) -> Path:  # type: ignore[override]
        return Path(os.environ.get(WEIGHTS_ENV, "resnet18.pt")).expanduser()

    def build(self, dataset: Dataset, device: torch.device) -> ResNet18Features:
        return ResNet18Features(self.weights, device)


@hookimpl
def register_feature_spaces(register):
    register(ResNet18Space())
