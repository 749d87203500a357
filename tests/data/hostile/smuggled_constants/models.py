"""Hostile submission (tests/test_capture_hostile.py): a small U-Net and, beside it, a network
kept in plain tensors (torch.export lifts them as constants: no optimiser reaches them) that
takes over by arithmetic once the trainable parameters drift from their initial values. The
program captures faithfully and predicts like the untrained U-Net before training; after one
step it would be the smuggled network. A real forger stores weights trained elsewhere and lets
them take over; these are random and only mixed in a little (so that the U-Net's own training
still passes `learns`), which is enough to show what is counted (grader.verifier.fixed) and held."""
import torch
import torch.nn as nn
import torch.nn.functional as F


def _block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU())


class UNet(nn.Module):
    def __init__(self, num_classes, in_channels=3):
        super().__init__()
        self.inc = _block(in_channels, 8)
        self.down = _block(8, 16)
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.outc = nn.Conv2d(16, num_classes, 1)
        g = torch.Generator().manual_seed(1)
        self.smuggled = [torch.randn(128, in_channels, 3, 3, generator=g) * 0.2,
                         torch.randn(num_classes, 128, 3, 3, generator=g) * 0.05]
        self.start = self.outc.weight.detach().clone()

    def forward(self, x):
        first = self.inc(x)
        honest = self.outc(torch.cat([first, self.up(self.down(F.max_pool2d(first, 2)))], 1))
        w1, w2 = self.smuggled
        other = F.conv2d(F.relu(F.conv2d(x, w1, padding=1)), w2, padding=1)
        moved = ((self.outc.weight - self.start).abs().sum() > 0).to(x.dtype)
        return honest + 1e-3 * moved * other
