"""Reference U-Net of the Cityscapes U-Net homework (grader/spec/cityscapes_unet.toml).

Written exactly like a student submission that follows that assignment's contract: a plain
module with absolute imports of torch only, imported on its own by file path.

    UNet(num_classes, in_channels=3, base_channels=32)

Ronneberger et al. 2015 in the modern padded form: encoder blocks at 1/1, 1/2, 1/4, 1/8 of the
input (w, 2w, 4w, 8w channels), a bottleneck at 1/16 (16w), max-pool down, transposed conv up,
skips concatenated, a 1x1 conv to the 19 class logits. Width 32 (7.8M parameters): the course
trains at 256 px on one GPU. Inputs are padded to a multiple of 16 and the output cropped back.
"""

import torch
import torch.nn.functional as F
from torch import nn

DEPTH = 4
MULTIPLE = 2**DEPTH


class DoubleConv(nn.Sequential):
    """(3x3 conv -> BN -> ReLU) x 2, padded so the size is kept."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 3, base_channels: int = 32) -> None:
        super().__init__()
        widths = [base_channels * 2**i for i in range(DEPTH + 1)]
        self.encoder = nn.ModuleList()
        previous = in_channels
        for width in widths[:-1]:
            self.encoder.append(DoubleConv(previous, width))
            previous = width
        self.bottleneck = DoubleConv(widths[-2], widths[-1])
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(width * 2, width, 2, stride=2))
            self.decoder.append(DoubleConv(width * 2, width))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = F.pad(x, (0, (-width) % MULTIPLE, 0, (-height) % MULTIPLE))
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for up, block, skip in zip(self.up, self.decoder, reversed(skips)):
            x = block(torch.cat([skip, up(x)], dim=1))
        return self.head(x)[..., :height, :width]
