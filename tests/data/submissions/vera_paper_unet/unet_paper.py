# U-Net exactly as in Ronneberger et al. 2015: unpadded 3x3 convs, skip features center-cropped.
# The output is smaller than the input, so I resize the logits back at the end.
import torch
import torch.nn as nn
import torch.nn.functional as F


def center_crop(t, target_hw):
    _, _, h, w = t.shape
    th, tw = target_hw
    dy, dx = (h - th) // 2, (w - tw) // 2
    return t[:, :, dy:dy + th, dx:dx + tw]


class Block(nn.Module):
    def __init__(self, cin, cout, padding=0):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, padding=padding)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=padding)

    def forward(self, x):
        return F.relu(self.c2(F.relu(self.c1(x))))


class UNet(nn.Module):
    def __init__(self, in_channels=3, num_classes=13, depth=4, wf=5, padding=0, skip=True):
        super().__init__()
        self.skip = skip
        ch = [2 ** (wf + i) for i in range(depth + 1)]
        self.down = nn.ModuleList([Block(in_channels if i == 0 else ch[i - 1], ch[i], padding) for i in range(depth + 1)])
        self.ups = nn.ModuleList([nn.ConvTranspose2d(ch[i + 1], ch[i], 2, stride=2) for i in reversed(range(depth))])
        self.dec = nn.ModuleList([Block(ch[i] * (2 if skip else 1), ch[i], padding) for i in reversed(range(depth))])
        self.last = nn.Conv2d(ch[0], num_classes, 1)

    def forward(self, x):
        size = x.shape[-2:]
        bridges = []
        for i, blk in enumerate(self.down):
            x = blk(x)
            if i != len(self.down) - 1:
                bridges.append(x)
                x = F.max_pool2d(x, 2)
        for up, dec in zip(self.ups, self.dec):
            x = up(x)
            b = bridges.pop()
            if self.skip:
                x = torch.cat([center_crop(b, x.shape[-2:]), x], 1)
            x = dec(x)
        return F.interpolate(self.last(x), size=size, mode="bilinear", align_corners=False)


class UNetNoSkip(UNet):
    def __init__(self, in_channels=3, num_classes=13, depth=4, wf=5, padding=0):
        super().__init__(in_channels, num_classes, depth, wf, padding, skip=False)
