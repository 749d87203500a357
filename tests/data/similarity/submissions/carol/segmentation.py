"""Carol Diaz -- U-Net family. Residual blocks are optional; attention via flag."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from helpers import train_model, CarlaDataset  # noqa: F401


class Residual(nn.Module):
    def __init__(self, a, b, residual):
        super().__init__()
        self.residual = residual
        self.f = nn.Sequential(nn.Conv2d(a, b, 3, 1, 1), nn.BatchNorm2d(b), nn.ReLU(),
                               nn.Conv2d(b, b, 3, 1, 1), nn.BatchNorm2d(b))
        self.skip = nn.Conv2d(a, b, 1) if (residual and a != b) else nn.Identity()

    def forward(self, x):
        y = self.f(x)
        return F.relu(y + self.skip(x)) if self.residual else F.relu(y)


class UNet(nn.Module):
    def __init__(self, in_channels=3, out_channels=13, residual=False, skips=True, base=32):
        super().__init__()
        w = [base * 2 ** i for i in range(5)]
        self.skips = skips
        self.down = nn.ModuleList([Residual(in_channels if i == 0 else w[i - 1], w[i], residual) for i in range(4)])
        self.bottom = Residual(w[3], w[4], residual)
        self.up = nn.ModuleList([nn.ConvTranspose2d(w[i + 1], w[i], 4, stride=2, padding=1) for i in reversed(range(4))])
        self.dec = nn.ModuleList([Residual(w[i] * (2 if skips else 1), w[i], residual) for i in reversed(range(4))])
        self.final = nn.Conv2d(w[0], out_channels, 1)

    def forward(self, x):
        saved = []
        for layer in self.down:
            x = layer(x)
            saved.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for up, dec in zip(self.up, self.dec):
            x = up(x)
            s = saved.pop()
            x = dec(torch.cat([x, s], dim=1) if self.skips else x)
        return self.final(x)
