"""FCN-32s / FCN-16s / FCN-8s (Long et al. 2015) on a VGG16 backbone.

One class for the three variants, pick with variant="fcn32s" | "fcn16s" | "fcn8s".
"""
import torch
import torch.nn as nn
from torchvision import models

from .blocks import get_upsampling_weight

VARIANTS = ("fcn32s", "fcn16s", "fcn8s")


class FCN(nn.Module):
    def __init__(self, num_classes, variant="fcn8s", freeze_backbone=False, pretrained=True):
        super().__init__()
        variant = variant.lower()
        if not variant.startswith("fcn"):
            variant = "fcn" + variant  # so "8s" works too
        assert variant in VARIANTS, f"unknown variant {variant}"
        self.variant = variant
        self.num_classes = num_classes

        if pretrained:
            vgg = models.vgg16(weights=models.VGG16_Weights.IMAGENET1K_V1)
        else:
            vgg = models.vgg16(weights=None)

        feats = vgg.features
        # vgg16 features: pool3 is index 16, pool4 is 23, pool5 is 30
        self.to_pool3 = feats[:17]    # 1/8,  256 channels
        self.to_pool4 = feats[17:24]  # 1/16, 512 channels
        self.to_pool5 = feats[24:]    # 1/32, 512 channels

        # fc6 / fc7 of VGG turned into convolutions ("convolutionalization")
        # padding=3 so that the 7x7 conv keeps the 1/32 map size (instead of the padding=100 trick)
        self.fc6 = nn.Conv2d(512, 4096, kernel_size=7, padding=3)
        self.fc7 = nn.Conv2d(4096, 4096, kernel_size=1)
        self.fc6.weight.data.copy_(vgg.classifier[0].weight.data.view(4096, 512, 7, 7))
        self.fc6.bias.data.copy_(vgg.classifier[0].bias.data)
        self.fc7.weight.data.copy_(vgg.classifier[3].weight.data.view(4096, 4096, 1, 1))
        self.fc7.bias.data.copy_(vgg.classifier[3].bias.data)
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout2d(p=0.5)

        # ---- head (always trained) ----
        self.score_fr = nn.Conv2d(4096, num_classes, kernel_size=1)
        if variant == "fcn32s":
            self.upscore = nn.ConvTranspose2d(num_classes, num_classes, 64, stride=32, padding=16, bias=False)
        else:
            self.score_pool4 = nn.Conv2d(512, num_classes, kernel_size=1)
            self.upscore2 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, padding=1, bias=False)
            if variant == "fcn16s":
                self.upscore = nn.ConvTranspose2d(num_classes, num_classes, 32, stride=16, padding=8, bias=False)
            else:
                self.score_pool3 = nn.Conv2d(256, num_classes, kernel_size=1)
                self.upscore_pool4 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, padding=1, bias=False)
                self.upscore = nn.ConvTranspose2d(num_classes, num_classes, 16, stride=8, padding=4, bias=False)

        self._init_head()

        if freeze_backbone:
            for p in self.backbone_parameters():
                p.requires_grad = False

    def _init_head(self):
        for m in self.modules():
            if isinstance(m, nn.ConvTranspose2d):
                k = m.kernel_size[0]
                m.weight.data.copy_(get_upsampling_weight(m.in_channels, m.out_channels, k))
        # skip scores start at 0 like in the paper
        for name in ("score_pool4", "score_pool3"):
            if hasattr(self, name):
                nn.init.zeros_(getattr(self, name).weight)
                nn.init.zeros_(getattr(self, name).bias)

    def backbone_parameters(self):
        for block in (self.to_pool3, self.to_pool4, self.to_pool5, self.fc6, self.fc7):
            yield from block.parameters()

    def forward(self, x):
        pool3 = self.to_pool3(x)
        pool4 = self.to_pool4(pool3)
        pool5 = self.to_pool5(pool4)

        h = self.drop(self.relu(self.fc6(pool5)))
        h = self.drop(self.relu(self.fc7(h)))
        h = self.score_fr(h)  # 1/32

        if self.variant == "fcn32s":
            return self.upscore(h)

        h = self.upscore2(h) + self.score_pool4(pool4)  # 1/16
        if self.variant == "fcn16s":
            return self.upscore(h)

        h = self.upscore_pool4(h) + self.score_pool3(pool3)  # 1/8
        return self.upscore(h)


if __name__ == "__main__":
    m = FCN(13, "fcn8s", pretrained=False)
    print(m(torch.randn(1, 3, 224, 224)).shape)
