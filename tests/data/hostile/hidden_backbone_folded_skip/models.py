"""Hostile submission (tests/test_capture_hostile.py::test_a_hidden_backbone_and_a_folded_skip_are_seen),
written by a student who has read segrade's source; neither patches anything, both are captured
as they are.

FCN32s: A frozen FCN-32s whose real backbone trains. VGG16's convolutions are copied into
parameters that are not called `weight` (F.conv2d on them), one in three stored transposed
(permuted back in forward), one in three as a sum of two tensors, ((w - r) + r); plus a
frozen decoy (torchvision's conv1_1, left as it is) on a 1/32 average of the input, added
times zero so that it stays in the graph.

UNetNoSkip: A "no-skip" U-Net whose full-resolution encoder feature reaches the decoder losslessly,
folded into channels at 1/16 of the size (pixel_unshuffle) and unfolded again (pixel_shuffle):
every tensor on that path is 1/16 of the input's height.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import vgg16


class _Hidden(nn.Module):
    def __init__(self, conv, mode):
        super().__init__()
        w = conv.weight.detach().clone()
        self.mode = mode
        if mode == 1:
            self.kernel = nn.Parameter(w.permute(2, 3, 1, 0).contiguous())
        elif mode == 2:
            r = torch.randn_like(w)
            self.kernel = nn.Parameter(w - r)
            self.rest = nn.Parameter(r)
        else:
            self.kernel = nn.Parameter(w)
        self.shift = nn.Parameter(conv.bias.detach().clone())

    def forward(self, x):
        if self.mode == 1:
            w = self.kernel.permute(3, 2, 0, 1)
        elif self.mode == 2:
            w = self.kernel + self.rest
        else:
            w = self.kernel
        return F.conv2d(x, w, self.shift, padding=1)


class FCN32s(nn.Module):
    def __init__(self, num_classes, freeze_backbone=False, pretrained=True):
        super().__init__()
        vgg = vgg16(weights="IMAGENET1K_V1" if pretrained else None)
        layers, k = [], 0
        for m in vgg.features:
            if isinstance(m, nn.Conv2d):
                layers.append(_Hidden(m, k % 3))
                k += 1
            else:
                layers.append(m)
        self.body = nn.Sequential(*layers)
        self.decoy = vgg.features[0]
        if freeze_backbone:
            for p in self.decoy.parameters():
                p.requires_grad = False
        self.score = nn.Conv2d(512, num_classes, 1)

    def forward(self, x):
        out = F.interpolate(self.score(self.body(x)), size=x.shape[-2:], mode="bilinear")
        return out + 0 * self.decoy(F.avg_pool2d(x, 32)).mean()


def _block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))


class UNetNoSkip(nn.Module):
    def __init__(self, num_classes, in_channels=3):
        super().__init__()
        self.inc = _block(in_channels, 8)
        self.downs = nn.ModuleList(_block(8, 8) for _ in range(4))
        self.ups = nn.ModuleList(nn.ConvTranspose2d(8, 8, 2, stride=2) for _ in range(4))
        self.outc = nn.Conv2d(16, num_classes, 1)

    def forward(self, x):
        first = self.inc(x)
        h = first
        for down in self.downs:
            h = down(F.max_pool2d(h, 2))
        folded = F.pixel_unshuffle(first, 16)          # 8 x H x W -> 2048 x H/16 x W/16
        h = torch.cat([h, folded * 1.0], dim=1)        # "the bottleneck": 1/16
        h, folded = h[:, :8], h[:, 8:]
        for up in self.ups:
            h = up(h)
        return self.outc(torch.cat([F.pixel_shuffle(folded, 16), h], dim=1))
