"""FCN-32s / FCN-16s / FCN-8s on a VGG16 backbone (Long et al., 2015).

fc6/fc7 of VGG16 are turned into convolutions, the score layers are 1x1 convs and the
upsampling layers are transposed convs initialised to bilinear interpolation.
"""
import torch
import torch.nn as nn
from torchvision.models import vgg16


def bilinear_kernel(in_channels, out_channels, kernel_size):
    # from the d2l.ai book, chapter on FCNs
    factor = (kernel_size + 1) // 2
    if kernel_size % 2 == 1:
        center = factor - 1
    else:
        center = factor - 0.5
    og = (torch.arange(kernel_size).reshape(-1, 1), torch.arange(kernel_size).reshape(1, -1))
    filt = (1 - torch.abs(og[0] - center) / factor) * (1 - torch.abs(og[1] - center) / factor)
    weight = torch.zeros((in_channels, out_channels, kernel_size, kernel_size))
    weight[range(in_channels), range(out_channels), :, :] = filt
    return weight


def upsampler(n_classes, factor):
    up = nn.ConvTranspose2d(n_classes, n_classes, kernel_size=2 * factor, stride=factor,
                            padding=factor // 2, bias=False)
    up.weight.data.copy_(bilinear_kernel(n_classes, n_classes, 2 * factor))
    return up


class FCNBase(nn.Module):
    """VGG16 conv1-conv5 + fc6/fc7 as convs + the fc7 score layer. weights: None or
    "IMAGENET1K_V1" (passed straight to torchvision)."""

    def __init__(self, n_classes=13, weights=None, freeze_backbone=False):
        super().__init__()
        vgg = vgg16(weights=weights)
        self.features = vgg.features  # pool3 = features[16], pool4 = [23], pool5 = [30]

        self.fc6 = nn.Conv2d(512, 4096, kernel_size=7, padding=3)
        self.fc7 = nn.Conv2d(4096, 4096, kernel_size=1)
        self.fc6.weight.data.copy_(vgg.classifier[0].weight.data.view(4096, 512, 7, 7))
        self.fc6.bias.data.copy_(vgg.classifier[0].bias.data)
        self.fc7.weight.data.copy_(vgg.classifier[3].weight.data.view(4096, 4096, 1, 1))
        self.fc7.bias.data.copy_(vgg.classifier[3].bias.data)
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout2d(p=0.5)

        self.score_fr = nn.Conv2d(4096, n_classes, kernel_size=1)

        if freeze_backbone:
            # freeze the pretrained VGG part, only the new layers are trained
            self.features.requires_grad = False
            self.fc6.requires_grad = False
            self.fc7.requires_grad = False

    def encode(self, x):
        pool3 = self.features[:17](x)         # 1/8
        pool4 = self.features[17:24](pool3)   # 1/16
        pool5 = self.features[24:](pool4)     # 1/32
        h = self.drop(self.relu(self.fc6(pool5)))
        h = self.drop(self.relu(self.fc7(h)))
        return pool3, pool4, h


class VGG16_FCN32s(FCNBase):
    def __init__(self, n_classes=13, weights=None, freeze_backbone=False):
        super().__init__(n_classes, weights, freeze_backbone)
        self.upscore32 = upsampler(n_classes, 32)

    def forward(self, x):
        _, _, h = self.encode(x)
        return self.upscore32(self.score_fr(h))


class VGG16_FCN16s(FCNBase):
    def __init__(self, n_classes=13, weights=None, freeze_backbone=False):
        super().__init__(n_classes, weights, freeze_backbone)
        self.score_pool4 = nn.Conv2d(512, n_classes, kernel_size=1)
        self.upscore2 = upsampler(n_classes, 2)
        self.upscore16 = upsampler(n_classes, 16)

    def forward(self, x):
        _, pool4, h = self.encode(x)
        s = self.upscore2(self.score_fr(h)) + self.score_pool4(pool4)   # 1/16
        return self.upscore16(s)


class VGG16_FCN8s(FCNBase):
    def __init__(self, n_classes=13, weights=None, freeze_backbone=False):
        super().__init__(n_classes, weights, freeze_backbone)
        self.score_pool4 = nn.Conv2d(512, n_classes, kernel_size=1)
        self.score_pool3 = nn.Conv2d(256, n_classes, kernel_size=1)
        self.upscore2 = upsampler(n_classes, 2)
        self.upscore_pool4 = upsampler(n_classes, 2)
        self.upscore8 = upsampler(n_classes, 8)

    def forward(self, x):
        pool3, pool4, h = self.encode(x)
        s = self.upscore2(self.score_fr(h)) + self.score_pool4(pool4)   # 1/16
        s = self.upscore_pool4(s) + self.score_pool3(pool3)             # 1/8
        return self.upscore8(s)
