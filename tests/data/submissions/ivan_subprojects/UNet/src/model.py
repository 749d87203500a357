import torch
import torch.nn as nn
import torch.nn.functional as F

from src.blocks import DoubleConv


class UNet(nn.Module):
    def __init__(self, in_channels=3, num_classes=13, block=DoubleConv, widths=(16, 32, 64, 128, 256)):
        super().__init__()
        self.enc = nn.ModuleList()
        c = in_channels
        for w in widths:
            self.enc.append(block(c, w))
            c = w
        self.up = nn.ModuleList(nn.ConvTranspose2d(w * 2, w, 2, stride=2) for w in reversed(widths[:-1]))
        self.dec = nn.ModuleList(block(w * 2, w) for w in reversed(widths[:-1]))
        self.out = nn.Conv2d(widths[0], num_classes, 1)

    def encode(self, x):
        skips = []
        for i, enc in enumerate(self.enc):
            x = enc(x)
            if i < len(self.enc) - 1:
                skips.append(x)
                x = F.max_pool2d(x, 2)
        return x, skips

    def forward(self, x):
        x, skips = self.encode(x)
        for up, dec, s in zip(self.up, self.dec, reversed(skips)):
            x = dec(torch.cat([s, up(x)], 1))
        return self.out(x)


class UNetNoSkip(UNet):
    def __init__(self, in_channels=3, num_classes=13, widths=(16, 32, 64, 128, 256)):
        super().__init__(in_channels, num_classes, DoubleConv, widths)
        self.dec = nn.ModuleList(DoubleConv(w, w) for w in reversed(widths[:-1]))

    def forward(self, x):
        x, _ = self.encode(x)
        for up, dec in zip(self.up, self.dec):
            x = dec(up(x))
        return self.out(x)
