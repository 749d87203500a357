# Alice Martin - assignment 3, U-Nets
# LLM declaration: none used.
import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvBlock(nn.Module):
    """Two 3x3 convolutions with GroupNorm and LeakyReLU (batch size is small on my GPU)."""

    def __init__(self, in_ch, out_ch, groups=8):
        super().__init__()
        self.conv_a = nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1)
        self.norm_a = nn.GroupNorm(groups, out_ch)
        self.conv_b = nn.Conv2d(out_ch, out_ch, kernel_size=3, padding=1)
        self.norm_b = nn.GroupNorm(groups, out_ch)

    def forward(self, x):
        x = F.leaky_relu(self.norm_a(self.conv_a(x)), 0.1)
        return F.leaky_relu(self.norm_b(self.conv_b(x)), 0.1)


class GateBlock(nn.Module):
    """Additive attention gate (Oktay 2018): the decoder signal decides which encoder pixels pass."""

    def __init__(self, skip_ch, gate_ch, mid_ch):
        super().__init__()
        self.theta = nn.Conv2d(skip_ch, mid_ch, kernel_size=1, bias=False)
        self.phi = nn.Conv2d(gate_ch, mid_ch, kernel_size=1)
        self.psi = nn.Conv2d(mid_ch, 1, kernel_size=1)

    def forward(self, skip, gate):
        gate = F.interpolate(gate, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        alpha = torch.sigmoid(self.psi(F.relu(self.theta(skip) + self.phi(gate))))
        return skip * alpha


class UpStage(nn.Module):
    """Bilinear upsampling followed by a 1x1 conv (no checkerboard artefacts), then a ConvBlock."""

    def __init__(self, in_ch, skip_ch, out_ch, use_skip=True, use_gate=False):
        super().__init__()
        self.reduce = nn.Conv2d(in_ch, out_ch, kernel_size=1)
        self.use_skip, self.use_gate = use_skip, use_gate
        self.gate = GateBlock(skip_ch, out_ch, max(skip_ch // 4, 8)) if use_gate else None
        self.block = ConvBlock(out_ch + (skip_ch if use_skip else 0), out_ch)

    def forward(self, x, skip):
        x = self.reduce(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
        if self.use_skip:
            if self.gate is not None:
                skip = self.gate(skip, x)
            x = torch.cat([skip, x], dim=1)
        return self.block(x)


class UNet(nn.Module):
    """One U-Net for the vanilla, no-skip and attention variants (flags)."""

    def __init__(self, n_channels=3, n_classes=13, use_skip_connections=True, use_gated_attention=False,
                 widths=(48, 96, 192, 384, 768)):
        super().__init__()
        self.encoders = nn.ModuleList()
        previous = n_channels
        for width in widths[:-1]:
            self.encoders.append(ConvBlock(previous, width))
            previous = width
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = nn.Sequential(ConvBlock(widths[-2], widths[-1]), nn.Dropout2d(0.3))
        self.decoders = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.decoders.append(UpStage(previous * 2 if width == widths[-2] else previous, width, width,
                                         use_skip_connections, use_gated_attention))
            previous = width
        self.head = nn.Conv2d(widths[0], n_classes, kernel_size=1)

    def forward(self, x):
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for decoder, skip in zip(self.decoders, reversed(skips)):
            x = decoder(x, skip)
        return self.head(x)


def count_parameters(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
