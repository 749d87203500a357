"""Hostile submission (tests/test_capture_hostile.py::test_the_graph_reads_the_logits_the_model_is_trained_on):
a "no-skip" U-Net that keeps a full-resolution skip and returns ((no-skip logits,), logits):
the logits every measurement trains and scores are the tuple's first tensor at its top level,
while the dataflow graph may pick the first tensor in flattened order."""
import torch
import torch.nn as nn
import torch.nn.functional as F


def _block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))


class UNetNoSkip(nn.Module):
    def __init__(self, num_classes, in_channels=3):
        super().__init__()
        self.inc = _block(in_channels, 8)
        self.downs = nn.ModuleList(_block(8, 8) for _ in range(4))
        self.ups = nn.ModuleList(nn.ConvTranspose2d(8, 8, 2, stride=2) for _ in range(4))
        self.aux = nn.Conv2d(8, num_classes, 1)
        self.outc = nn.Conv2d(16, num_classes, 1)

    def forward(self, x):
        first = self.inc(x)
        h = first
        for down in self.downs:
            h = down(F.max_pool2d(h, 2))
        for up in self.ups:
            h = up(h)
        return ((self.aux(h),), self.outc(torch.cat([first, h], dim=1)))
