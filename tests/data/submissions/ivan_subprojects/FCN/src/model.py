import torch
import torch.nn as nn
from torchvision import models

from src.utils import bilinear_kernel


class _FCNBase(nn.Module):
    def __init__(self, num_classes=13, freeze_backbone=False, pretrained=True):
        super().__init__()
        vgg = models.vgg16(weights="DEFAULT" if pretrained else None)
        self.features = vgg.features
        if freeze_backbone:
            for p in self.features.parameters():
                p.requires_grad_(False)
        self.score_pool5 = nn.Conv2d(512, num_classes, 1)
        self.score_pool4 = nn.Conv2d(512, num_classes, 1)
        self.score_pool3 = nn.Conv2d(256, num_classes, 1)
        self.up2 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, padding=1, bias=False)
        self.up2.weight.data.copy_(bilinear_kernel(num_classes, 4))

    def pools(self, x):
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in (16, 23, 30):
                out.append(x)
        return out


class FCN32s(_FCNBase):
    def forward(self, x):
        _, _, p5 = self.pools(x)
        return nn.functional.interpolate(self.score_pool5(p5), size=x.shape[-2:], mode="bilinear")


class FCN16s(_FCNBase):
    def forward(self, x):
        _, p4, p5 = self.pools(x)
        s = self.up2(self.score_pool5(p5)) + self.score_pool4(p4)
        return nn.functional.interpolate(s, size=x.shape[-2:], mode="bilinear")


class FCN8s(_FCNBase):
    def forward(self, x):
        p3, p4, p5 = self.pools(x)
        s = self.up2(self.score_pool5(p5)) + self.score_pool4(p4)
        s = self.up2(s) + self.score_pool3(p3)
        return nn.functional.interpolate(s, size=x.shape[-2:], mode="bilinear")
