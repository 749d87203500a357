import torch
import torch.nn as nn

from src.blocks import AttentionGate, DoubleConv, ResBlock
from src.model import UNet


class ResidualUNet(UNet):
    def __init__(self, in_channels=3, num_classes=13, widths=(16, 32, 64, 128, 256)):
        super().__init__(in_channels, num_classes, ResBlock, widths)


class AttentionUNet(UNet):
    def __init__(self, in_channels=3, num_classes=13, widths=(16, 32, 64, 128, 256)):
        super().__init__(in_channels, num_classes, DoubleConv, widths)
        self.gates = nn.ModuleList(AttentionGate(w, w, max(w // 2, 1)) for w in reversed(widths[:-1]))

    def forward(self, x):
        x, skips = self.encode(x)
        for up, dec, gate, s in zip(self.up, self.dec, self.gates, reversed(skips)):
            x = up(x)
            x = dec(torch.cat([gate(x, s), x], 1))
        return self.out(x)
