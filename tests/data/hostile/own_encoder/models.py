"""Hostile submission (tests/test_capture_hostile.py::test_an_encoder_with_vgg16_shapes_is_not_unknown):
a frozen FCN-32s whose encoder trains: VGG16's weights, each layer's scaled by 1.01 and its
bias by 1.01^k (ReLU is positively homogeneous: the k-th layer's output is 1.01^k VGG16's, which
the score layer divides back: the same function), and an extra 3x3 identity convolution
after conv1_2, so that neither the values nor the 13-layer sequence give it away. Nothing frozen."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import vgg16


class FCN32s(nn.Module):
    def __init__(self, num_classes, freeze_backbone=False, pretrained=True):
        super().__init__()
        vgg = vgg16(weights="IMAGENET1K_V1" if pretrained else None)
        layers, scale, k = [], 1.0, 0
        for m in vgg.features:
            if isinstance(m, nn.Conv2d):
                conv = nn.Conv2d(m.in_channels, m.out_channels, 3, padding=1)
                scale *= 1.01   # the output of the k-th layer is 1.01^k times VGG16's
                with torch.no_grad():
                    conv.weight.copy_(m.weight * 1.01)
                    conv.bias.copy_(m.bias * scale)
                layers.append(conv)
                k += 1
                if k == 2:
                    extra = nn.Conv2d(64, 64, 3, padding=1)
                    with torch.no_grad():
                        extra.weight.zero_()
                        extra.bias.zero_()
                        for c in range(64):
                            extra.weight[c, c, 1, 1] = 1.0
                    layers.append(extra)
            else:
                layers.append(m)
        self.encoder = nn.Sequential(*layers)
        self.score = nn.Conv2d(512, num_classes, 1)
        with torch.no_grad():
            self.score.weight.div_(scale)

    def forward(self, x):
        return F.interpolate(self.score(self.encoder(x)), size=x.shape[-2:], mode="bilinear")
