"""HW3 part 2: one FCN class for the three variants, chosen with an Enum."""
from enum import Enum

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import VGG16_Weights, vgg16


class FCNVariant(Enum):
    FCN32S = "fcn32s"
    FCN16S = "fcn16s"
    FCN8S = "fcn8s"


class FCN(nn.Module):
    def __init__(self, variant: FCNVariant, num_classes: int, freeze_backbone: bool = True,
                 pretrained: bool = True):
        super().__init__()
        self.variant = variant
        vgg = vgg16(weights=VGG16_Weights.IMAGENET1K_V1 if pretrained else None)
        features = list(vgg.features.children())
        self.to_pool3 = nn.Sequential(*features[:17])
        self.to_pool4 = nn.Sequential(*features[17:24])
        self.to_pool5 = nn.Sequential(*features[24:])
        if freeze_backbone:
            for p in self.parameters():
                p.requires_grad = False
        self.score5 = nn.Conv2d(512, num_classes, 1)
        self.score4 = nn.Conv2d(512, num_classes, 1)
        self.score3 = nn.Conv2d(256, num_classes, 1)

    def forward(self, x):
        size = x.shape[-2:]
        p3 = self.to_pool3(x)
        p4 = self.to_pool4(p3)
        out = self.score5(self.to_pool5(p4))
        if self.variant in (FCNVariant.FCN16S, FCNVariant.FCN8S):
            out = F.interpolate(out, size=p4.shape[-2:], mode="bilinear", align_corners=False) + self.score4(p4)
        if self.variant.value == "fcn8s":
            out = F.interpolate(out, size=p3.shape[-2:], mode="bilinear", align_corners=False) + self.score3(p3)
        return F.interpolate(out, size=size, mode="bilinear", align_corners=False)
