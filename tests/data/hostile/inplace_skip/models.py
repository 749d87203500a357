"""Hostile submission (tests/test_capture_hostile.py::test_a_skip_written_in_place_is_a_skip): a
"no-skip" U-Net that keeps its full-resolution skip by copying its first feature in place into a
view of a tensor made by zeros_like (which only reads a shape), and concatenating that tensor.
Its captured program keeps the in-place copy as it is (torch.export's graph is not
functionalised), and the concatenation names the zeros, not the copy."""
import torch
import torch.nn as nn
import torch.nn.functional as F


def _block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU())


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
        for up in self.ups:
            h = up(h)
        kept = torch.zeros_like(first)
        kept[:, :].copy_(first)
        return self.outc(torch.cat([kept, h], dim=1))
