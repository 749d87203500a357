"""Reference U-Nets (Ronneberger et al., MICCAI 2015), in the modern padded form.

Part of segrade's reference solution. This file is written exactly like a student submission
that follows the contract: a plain module with absolute imports of torch and the standard
library only, imported on its own by file path.

Public names:
    UNet, UNetNoSkip, ResidualUNet, AttentionUNet(num_classes, in_channels=3, base_channels=64)
    DoubleConv, ResidualBlock, AttentionGate, Down, Up (building blocks), DEPTH, MULTIPLE

All four share one macro-structure: encoder blocks at 1/1, 1/2, 1/4, 1/8 of the input
(w, 2w, 4w, 8w channels, w = base_channels), a bottleneck at 1/16 (16w), max-pool down,
transposed-conv up, a 1x1 conv to the class logits. They differ only in the block and the skip:
    UNet           double-conv blocks, skips concatenated
    UNetNoSkip     double-conv blocks, no skips (the decoder sees only the 1/16 bottleneck)
    ResidualUNet   residual blocks (an add inside each block), skips concatenated
    AttentionUNet  double-conv blocks, every skip scaled by an additive attention gate

forward(x): N x in_channels x H x W -> N x num_classes x H x W logits.
"""

import torch
import torch.nn.functional as F
from torch import nn

# Number of down-sampling steps; the bottleneck is at 1/2**DEPTH of the input.
DEPTH = 4
# Inputs are padded to a multiple of this, so every pooling step halves exactly.
MULTIPLE = 2**DEPTH


def _conv_bn(in_channels: int, out_channels: int, kernel_size: int = 3) -> list[nn.Module]:
    # No conv bias: the BatchNorm right after it has its own shift.
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
    ]


class DoubleConv(nn.Sequential):
    """(3x3 conv -> BN -> ReLU) x 2, padded so the size is kept."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            *_conv_bn(in_channels, out_channels), nn.ReLU(inplace=True),
            *_conv_bn(out_channels, out_channels), nn.ReLU(inplace=True),
        )


class ResidualBlock(nn.Module):
    """y = relu(F(x) + shortcut(x)), F = conv-BN-ReLU-conv-BN; the shortcut is the identity
    when the channel count is kept, else a 1x1 conv + BN."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv_bn(in_channels, out_channels), nn.ReLU(inplace=True),
            *_conv_bn(out_channels, out_channels),
        )
        self.shortcut = (
            nn.Identity() if in_channels == out_channels
            else nn.Sequential(*_conv_bn(in_channels, out_channels, kernel_size=1))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al. 2018).

    alpha = sigmoid(psi(relu(W_x x + W_g g))): one coefficient in [0, 1] per pixel of the skip
    feature x, computed from x and the gating signal g, which comes from the coarser decoder
    level (its up-conv output, already at x's resolution). The gate returns alpha * x.
    """

    def __init__(self, skip_channels: int, gate_channels: int, inter_channels: int) -> None:
        super().__init__()
        self.W_x = nn.Sequential(*_conv_bn(skip_channels, inter_channels, kernel_size=1))
        self.W_g = nn.Sequential(*_conv_bn(gate_channels, inter_channels, kernel_size=1))
        self.psi = nn.Sequential(*_conv_bn(inter_channels, 1, kernel_size=1), nn.Sigmoid())

    def coefficients(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Attention coefficients alpha, N x 1 x H x W, in [0, 1]."""
        return self.psi(F.relu(self.W_x(x) + self.W_g(g)))

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return self.coefficients(x, g) * x


class Down(nn.Sequential):
    """Max-pool /2, then a block."""

    def __init__(self, in_channels: int, out_channels: int, block: type[nn.Module]) -> None:
        super().__init__(nn.MaxPool2d(2), block(in_channels, out_channels))


class Up(nn.Module):
    """Transposed conv x2 (halving the channels), then a block.

    With `skip`, the encoder feature of the same resolution (gated when `gate`) is concatenated
    before the block; without it, the block sees the up-conv output only.
    """

    def __init__(self, in_channels: int, out_channels: int, block: type[nn.Module],
                 skip: bool = True, gate: bool = False) -> None:
        super().__init__()
        up_channels = in_channels // 2
        self.up = nn.ConvTranspose2d(in_channels, up_channels, 2, stride=2)
        self.uses_skip = skip
        self.gate = (
            AttentionGate(out_channels, up_channels, out_channels // 2) if skip and gate else None
        )
        self.block = block(up_channels + (out_channels if skip else 0), out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        g = self.up(x)
        if not self.uses_skip:
            return self.block(g)
        if self.gate is not None:
            skip = self.gate(skip, g)
        return self.block(torch.cat([skip, g], dim=1))


class _UNetBase(nn.Module):
    """The shared macro-structure; subclasses only pick the block and the skip kind."""

    def __init__(self, num_classes: int, in_channels: int, base_channels: int, *,
                 block: type[nn.Module] = DoubleConv, skips: bool = True,
                 gates: bool = False) -> None:
        super().__init__()
        widths = [base_channels * 2**level for level in range(DEPTH + 1)]  # 64 ... 1024
        self.inc = block(in_channels, widths[0])
        self.downs = nn.ModuleList(
            Down(widths[i], widths[i + 1], block) for i in range(DEPTH)
        )
        self.ups = nn.ModuleList(
            Up(widths[i + 1], widths[i], block, skip=skips, gate=gates)
            for i in reversed(range(DEPTH))
        )
        self.outc = nn.Conv2d(widths[0], num_classes, 1)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # Pad right/bottom to a multiple of 16 so every level halves exactly; cropped back below.
        x = F.pad(x, (0, (-w) % MULTIPLE, 0, (-h) % MULTIPLE))
        features = [self.inc(x)]  # 1/1, 1/2, 1/4, 1/8, then the 1/16 bottleneck
        for down in self.downs:
            features.append(down(features[-1]))
        y = features.pop()
        for up, skip in zip(self.ups, reversed(features)):
            y = up(y, skip if up.uses_skip else None)
        return self.outc(y)[..., :h, :w]


class UNet(_UNetBase):
    """Vanilla U-Net: double-conv blocks, encoder features concatenated at every level."""

    def __init__(self, num_classes: int, in_channels: int = 3, base_channels: int = 64) -> None:
        super().__init__(num_classes, in_channels, base_channels)


class UNetNoSkip(_UNetBase):
    """U-Net without skip connections: everything the output sees went through 1/16."""

    def __init__(self, num_classes: int, in_channels: int = 3, base_channels: int = 64) -> None:
        super().__init__(num_classes, in_channels, base_channels, skips=False)


class ResidualUNet(_UNetBase):
    """U-Net whose blocks are residual (an add inside each block); long skips stay concats."""

    def __init__(self, num_classes: int, in_channels: int = 3, base_channels: int = 64) -> None:
        super().__init__(num_classes, in_channels, base_channels, block=ResidualBlock)


class AttentionUNet(_UNetBase):
    """U-Net with an additive attention gate on every skip, gated by the coarser level."""

    def __init__(self, num_classes: int, in_channels: int = 3, base_channels: int = 64) -> None:
        super().__init__(num_classes, in_channels, base_channels, gates=True)
