# Prompts used with ChatGPT: "how do I convert the fc6 and fc7 layers of torchvision vgg16 into
# convolutions", "bilinear initialization for ConvTranspose2d in pytorch". The rest is mine.
#
# HW3 part 2 - FCN-32s / FCN-16s / FCN-8s, interface from the course's submission contract.
import torch
import torchvision
from torch import nn


def make_bilinear_upsampler(n_classes, factor):
    """ConvTranspose2d that upsamples by `factor`, initialised as bilinear interpolation
    (kernel 2*factor, stride factor, padding factor/2 -> exactly factor x the size)."""
    k = 2 * factor
    layer = nn.ConvTranspose2d(n_classes, n_classes, k, stride=factor, padding=factor // 2, bias=False)
    center = factor - 0.5
    ramp = 1 - torch.abs(torch.arange(k, dtype=torch.float32) - center) / factor
    kernel = ramp[:, None] * ramp[None, :]
    with torch.no_grad():
        layer.weight.zero_()
        for c in range(n_classes):
            layer.weight[c, c] = kernel
    return layer


class VGG16Encoder(nn.Module):
    """conv1-conv5 of VGG16 and fc6/fc7 as convs. forward -> (pool3, pool4, fc7 activations)."""

    def __init__(self, pretrained=True):
        super().__init__()
        vgg = torchvision.models.vgg16(weights="IMAGENET1K_V1" if pretrained else None)
        layers = list(vgg.features.children())
        self.conv1_3 = nn.Sequential(*layers[:17])    # ... pool3  (stride 8)
        self.conv4 = nn.Sequential(*layers[17:24])    # ... pool4  (stride 16)
        self.conv5 = nn.Sequential(*layers[24:31])    # ... pool5  (stride 32)

        fc6, fc7 = vgg.classifier[0], vgg.classifier[3]
        self.fc6 = nn.Conv2d(512, 4096, kernel_size=7, padding=3)
        self.fc7 = nn.Conv2d(4096, 4096, kernel_size=1)
        with torch.no_grad():
            self.fc6.weight.copy_(fc6.weight.reshape(4096, 512, 7, 7))
            self.fc6.bias.copy_(fc6.bias)
            self.fc7.weight.copy_(fc7.weight.reshape(4096, 4096, 1, 1))
            self.fc7.bias.copy_(fc7.bias)
        self.drop = nn.Dropout2d(0.5)

    def forward(self, x):
        p3 = self.conv1_3(x)
        p4 = self.conv4(p3)
        p5 = self.conv5(p4)
        h = self.drop(torch.relu(self.fc6(p5)))
        h = self.drop(torch.relu(self.fc7(h)))
        return p3, p4, h


class _FCN(nn.Module):
    def __init__(self, num_classes, freeze_backbone=False, pretrained=True):
        super().__init__()
        self.encoder = VGG16Encoder(pretrained)
        self.score_fr = nn.Conv2d(4096, num_classes, 1)
        self.frozen = freeze_backbone
        if freeze_backbone:
            self.encoder.requires_grad_(False)

    def train(self, mode=True):
        super().train(mode)
        if self.frozen:
            self.encoder.eval()  # no dropout updates in a frozen backbone either
        return self


class FCN32s(_FCN):
    def __init__(self, num_classes, freeze_backbone=False, pretrained=True):
        super().__init__(num_classes, freeze_backbone, pretrained)
        self.up32 = make_bilinear_upsampler(num_classes, 32)

    def forward(self, x):
        _, _, h = self.encoder(x)
        return self.up32(self.score_fr(h))


class FCN16s(_FCN):
    def __init__(self, num_classes, freeze_backbone=False, pretrained=True):
        super().__init__(num_classes, freeze_backbone, pretrained)
        self.score_pool4 = nn.Conv2d(512, num_classes, 1)
        self.up2 = make_bilinear_upsampler(num_classes, 2)
        self.up16 = make_bilinear_upsampler(num_classes, 16)

    def forward(self, x):
        _, p4, h = self.encoder(x)
        fused = self.up2(self.score_fr(h)) + self.score_pool4(p4)
        return self.up16(fused)


class FCN8s(_FCN):
    def __init__(self, num_classes, freeze_backbone=False, pretrained=True):
        super().__init__(num_classes, freeze_backbone, pretrained)
        self.score_pool4 = nn.Conv2d(512, num_classes, 1)
        self.score_pool3 = nn.Conv2d(256, num_classes, 1)
        self.up2_pool5 = make_bilinear_upsampler(num_classes, 2)
        self.up2_pool4 = make_bilinear_upsampler(num_classes, 2)
        self.up8 = make_bilinear_upsampler(num_classes, 8)

    def forward(self, x):
        p3, p4, h = self.encoder(x)
        fused = self.up2_pool5(self.score_fr(h)) + self.score_pool4(p4)   # 1/16
        fused = self.up2_pool4(fused) + self.score_pool3(p3)              # 1/8
        return self.up8(fused)


if __name__ == "__main__":
    for cls in (FCN32s, FCN16s, FCN8s):
        net = cls(13, freeze_backbone=True, pretrained=False)
        out = net(torch.randn(1, 3, 224, 224))
        print(cls.__name__, tuple(out.shape),
              sum(p.numel() for p in net.parameters() if p.requires_grad), "trainable")
