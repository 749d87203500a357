# CV HW3 - Frank
# FCN-32s/16s/8s (VGG16) and the four U-Nets. The building blocks (double conv, residual
# block, attention gate, bilinear init) are in utils.py, shared with my HW2 code.
import torch
import torch.nn as nn
import torchvision

from utils import AttentionGate, DoubleConv, ResidualBlock, bilinear_upsample_layer

NUM_CLASSES = 13


# ----------------------------------------------------------------------------- FCN

class VGGEncoder(nn.Module):
    """conv1..pool5 of VGG16, fc6/fc7 as convolutions; returns pool3, pool4, fc7."""

    def __init__(self, pretrained=True):
        super().__init__()
        vgg = torchvision.models.vgg16(weights=torchvision.models.VGG16_Weights.DEFAULT if pretrained else None)
        self.block3 = vgg.features[:17]
        self.block4 = vgg.features[17:24]
        self.block5 = vgg.features[24:]
        self.fc6 = nn.Conv2d(512, 4096, 7, padding=3)
        self.fc7 = nn.Conv2d(4096, 4096, 1)
        with torch.no_grad():
            self.fc6.weight.copy_(vgg.classifier[0].weight.view(4096, 512, 7, 7))
            self.fc6.bias.copy_(vgg.classifier[0].bias)
            self.fc7.weight.copy_(vgg.classifier[3].weight.view(4096, 4096, 1, 1))
            self.fc7.bias.copy_(vgg.classifier[3].bias)
        self.act = nn.Sequential(nn.ReLU(inplace=True), nn.Dropout2d(0.5))

    def forward(self, x):
        p3 = self.block3(x)
        p4 = self.block4(p3)
        p5 = self.block5(p4)
        return p3, p4, self.act(self.fc7(self.act(self.fc6(p5))))


class FCN32s(nn.Module):
    def __init__(self, num_classes=NUM_CLASSES, freeze_backbone=False, pretrained=True):
        super().__init__()
        self.encoder = VGGEncoder(pretrained)
        if freeze_backbone:
            for p in self.encoder.parameters():
                p.requires_grad = False
        self.score = nn.Conv2d(4096, num_classes, 1)
        self.up32 = bilinear_upsample_layer(num_classes, 32)

    def forward(self, x):
        _, _, h = self.encoder(x)
        return self.up32(self.score(h))


class FCN16s(FCN32s):
    def __init__(self, num_classes=NUM_CLASSES, freeze_backbone=False, pretrained=True):
        super().__init__(num_classes, freeze_backbone, pretrained)
        del self.up32
        self.score_pool4 = nn.Conv2d(512, num_classes, 1)
        self.up2 = bilinear_upsample_layer(num_classes, 2)
        self.up16 = bilinear_upsample_layer(num_classes, 16)

    def forward(self, x):
        _, p4, h = self.encoder(x)
        return self.up16(self.up2(self.score(h)) + self.score_pool4(p4))


class FCN8s(FCN16s):
    def __init__(self, num_classes=NUM_CLASSES, freeze_backbone=False, pretrained=True):
        super().__init__(num_classes, freeze_backbone, pretrained)
        del self.up16
        self.score_pool3 = nn.Conv2d(256, num_classes, 1)
        self.up2_pool4 = bilinear_upsample_layer(num_classes, 2)
        self.up8 = bilinear_upsample_layer(num_classes, 8)

    def forward(self, x):
        p3, p4, h = self.encoder(x)
        s = self.up2(self.score(h)) + self.score_pool4(p4)
        s = self.up2_pool4(s) + self.score_pool3(p3)
        return self.up8(s)


# ----------------------------------------------------------------------------- U-Nets

class UNet(nn.Module):
    """4 levels, 2 convs per block, max-pool down, transposed conv up.
    block: DoubleConv or ResidualBlock; skips=False drops the skip connections;
    attention=True puts an attention gate on every skip."""

    def __init__(self, num_classes=NUM_CLASSES, in_channels=3, width=32, skips=True, block=DoubleConv,
                 attention=False):
        super().__init__()
        self.skips, self.attention = skips, attention
        ch = [width * 2 ** i for i in range(5)]          # 32 64 128 256 512
        self.enc = nn.ModuleList([block(in_channels, ch[0])] + [block(ch[i], ch[i + 1]) for i in range(4)])
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList([nn.ConvTranspose2d(ch[i + 1], ch[i], 2, stride=2) for i in reversed(range(4))])
        self.dec = nn.ModuleList([block(ch[i] * (2 if skips else 1), ch[i]) for i in reversed(range(4))])
        self.gates = nn.ModuleList([AttentionGate(ch[i], ch[i + 1], ch[i] // 2) for i in reversed(range(4))]) \
            if attention else None
        self.head = nn.Conv2d(ch[0], num_classes, 1)

    def forward(self, x):
        feats = []
        for i, block in enumerate(self.enc):
            x = block(x if i == 0 else self.pool(x))
            feats.append(x)
        for i, (up, dec) in enumerate(zip(self.up, self.dec)):
            skip = feats[-2 - i]
            g = x                      # gating signal: the coarser decoder feature
            x = up(x)
            if self.skips:
                if self.attention:
                    skip = self.gates[i](skip, g)
                x = torch.cat([skip, x], dim=1)
            x = dec(x)
        return self.head(x)


class UNetNoSkip(UNet):
    def __init__(self, num_classes=NUM_CLASSES, in_channels=3, width=32):
        super().__init__(num_classes, in_channels, width, skips=False)


class ResidualUNet(UNet):
    def __init__(self, num_classes=NUM_CLASSES, in_channels=3, width=32):
        super().__init__(num_classes, in_channels, width, block=ResidualBlock)


class AttentionUNet(UNet):
    def __init__(self, num_classes=NUM_CLASSES, in_channels=3, width=32):
        super().__init__(num_classes, in_channels, width, attention=True)
