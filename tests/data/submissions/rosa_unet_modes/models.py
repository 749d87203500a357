# HW3 models. One class per family, chosen by a string, and get_model() for the training script.
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


class SegModel(nn.Module):
    """FCN on VGG16. arch in {"fcn32s", "fcn16s", "fcn8s"}"""

    def __init__(self, arch="fcn32s", num_classes=13, freeze=True, pretrained=True):
        super().__init__()
        assert arch in ("fcn32s", "fcn16s", "fcn8s"), arch
        self.arch = arch
        vgg = torchvision.models.vgg16(weights="IMAGENET1K_V1" if pretrained else None)
        self.block3 = vgg.features[:17]
        self.block4 = vgg.features[17:24]
        self.block5 = vgg.features[24:]
        if freeze:
            for p in vgg.features.parameters():
                p.requires_grad = False
        self.head = nn.Sequential(nn.Conv2d(512, 512, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(512, num_classes, 1))
        self.score4 = nn.Conv2d(512, num_classes, 1)
        self.score3 = nn.Conv2d(256, num_classes, 1)

    def forward(self, x):
        size = x.shape[-2:]
        p3 = self.block3(x)
        p4 = self.block4(p3)
        out = self.head(self.block5(p4))
        if self.arch in ("fcn16s", "fcn8s"):
            out = F.interpolate(out, scale_factor=2, mode="bilinear", align_corners=False) + self.score4(p4)
        if self.arch == "fcn8s":
            out = F.interpolate(out, scale_factor=2, mode="bilinear", align_corners=False) + self.score3(p3)
        return F.interpolate(out, size=size, mode="bilinear", align_corners=False)


def conv_block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ResBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                                  nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout))
        self.short = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x):
        return F.relu(self.body(x) + self.short(x))


class Gate(nn.Module):
    def __init__(self, cg, cx, ci):
        super().__init__()
        self.wg, self.wx, self.psi = nn.Conv2d(cg, ci, 1), nn.Conv2d(cx, ci, 1), nn.Conv2d(ci, 1, 1)

    def forward(self, g, x):
        return x * torch.sigmoid(self.psi(F.relu(self.wg(g) + self.wx(x))))


class UNet(nn.Module):
    """mode: "vanilla", "noskip", "residual" or "attention" """

    def __init__(self, num_classes=13, mode="vanilla", width=16):
        super().__init__()
        self.mode = mode
        block = ResBlock if mode == "residual" else conv_block
        w = [width * 2 ** i for i in range(5)]
        self.enc = nn.ModuleList([block(3, w[0])] + [block(w[i], w[i + 1]) for i in range(4)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(w[i + 1], w[i], 2, stride=2) for i in reversed(range(4))])
        skip = mode != "noskip"
        self.dec = nn.ModuleList([block(w[i] * (2 if skip else 1), w[i]) for i in reversed(range(4))])
        if mode == "attention":
            self.gates = nn.ModuleList([Gate(w[i], w[i], max(w[i] // 2, 1)) for i in reversed(range(4))])
        self.out = nn.Conv2d(w[0], num_classes, 1)

    def forward(self, x):
        feats = []
        for i, enc in enumerate(self.enc):
            x = enc(x if i == 0 else F.max_pool2d(x, 2))
            feats.append(x)
        x = feats.pop()
        for j, (up, dec) in enumerate(zip(self.up, self.dec)):
            x = up(x)
            skip = feats.pop()
            if self.mode == "noskip":
                x = dec(x)
                continue
            if self.mode == "attention":
                skip = self.gates[j](x, skip)
            x = dec(torch.cat([skip, x], dim=1))
        return self.out(x)


def get_model(name, num_classes=13):
    if name.startswith("fcn"):
        arch, _, how = name.partition("_")
        return SegModel(arch=arch, num_classes=num_classes, freeze=(how == "frozen"))
    return UNet(num_classes=num_classes, mode=name.replace("unet_", "") if name != "unet" else "vanilla")
