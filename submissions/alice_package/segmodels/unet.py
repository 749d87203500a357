"""U-Net (Ronneberger et al. 2015) with switches for the HW3 experiments:

    UNet(...)                                  -> vanilla U-Net
    UNet(..., use_skip_connections=False)      -> no skip connections
    UNet(..., use_residual_block=True)         -> residual U-Net
    UNet(..., use_gated_attention=True)        -> attention U-Net
"""
import torch.nn as nn

from .blocks import DoubleConv, Down, OutConv, ResidualDoubleConv, Up


class UNet(nn.Module):
    def __init__(self, n_channels=3, n_classes=13, use_skip_connections=True,
                 use_residual_block=False, use_gated_attention=False):
        super().__init__()
        self.n_channels = n_channels
        self.n_classes = n_classes
        self.use_skip_connections = use_skip_connections
        res = use_residual_block
        att = use_gated_attention
        skip = use_skip_connections

        self.inc = ResidualDoubleConv(n_channels, 64) if res else DoubleConv(n_channels, 64)
        self.down1 = Down(64, 128, residual=res)
        self.down2 = Down(128, 256, residual=res)
        self.down3 = Down(256, 512, residual=res)
        self.down4 = Down(512, 1024, residual=res)
        self.up1 = Up(1024, 512, use_skip=skip, residual=res, attention=att)
        self.up2 = Up(512, 256, use_skip=skip, residual=res, attention=att)
        self.up3 = Up(256, 128, use_skip=skip, residual=res, attention=att)
        self.up4 = Up(128, 64, use_skip=skip, residual=res, attention=att)
        self.outc = OutConv(64, n_classes)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        if self.use_skip_connections:
            x = self.up1(x5, x4)
            x = self.up2(x, x3)
            x = self.up3(x, x2)
            x = self.up4(x, x1)
        else:
            x = self.up1(x5)
            x = self.up2(x)
            x = self.up3(x)
            x = self.up4(x)
        logits = self.outc(x)
        return logits
