# Bob Nguyen, HW3. Four U-Nets as separate classes.
import torch
from torch import nn


def double_conv(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class VanillaUNet(nn.Module):
    def __init__(self, num_classes=13):
        super().__init__()
        self.e1, self.e2, self.e3, self.e4 = double_conv(3, 64), double_conv(64, 128), double_conv(128, 256), double_conv(256, 512)
        self.mid = double_conv(512, 1024)
        self.pool = nn.MaxPool2d(2, 2)
        self.u4 = nn.ConvTranspose2d(1024, 512, 2, stride=2)
        self.d4 = double_conv(1024, 512)
        self.u3 = nn.ConvTranspose2d(512, 256, 2, stride=2)
        self.d3 = double_conv(512, 256)
        self.u2 = nn.ConvTranspose2d(256, 128, 2, stride=2)
        self.d2 = double_conv(256, 128)
        self.u1 = nn.ConvTranspose2d(128, 64, 2, stride=2)
        self.d1 = double_conv(128, 64)
        self.out = nn.Conv2d(64, num_classes, 1)

    def forward(self, x):
        s1 = self.e1(x)
        s2 = self.e2(self.pool(s1))
        s3 = self.e3(self.pool(s2))
        s4 = self.e4(self.pool(s3))
        b = self.mid(self.pool(s4))
        y = self.d4(torch.cat([self.u4(b), s4], 1))
        y = self.d3(torch.cat([self.u3(y), s3], 1))
        y = self.d2(torch.cat([self.u2(y), s2], 1))
        y = self.d1(torch.cat([self.u1(y), s1], 1))
        return self.out(y)


class NoSkipUNet(nn.Module):
    def __init__(self, num_classes=13):
        super().__init__()
        self.enc = nn.ModuleList([double_conv(3, 64), double_conv(64, 128), double_conv(128, 256), double_conv(256, 512)])
        self.mid = double_conv(512, 1024)
        self.ups = nn.ModuleList([nn.ConvTranspose2d(c * 2, c, 2, stride=2) for c in (512, 256, 128, 64)])
        self.dec = nn.ModuleList([double_conv(c, c) for c in (512, 256, 128, 64)])
        self.out = nn.Conv2d(64, num_classes, 1)

    def forward(self, x):
        for block in self.enc:
            x = nn.functional.max_pool2d(block(x), 2)
        x = self.mid(x)
        for up, block in zip(self.ups, self.dec):
            x = block(up(x))
        return self.out(x)


# training is in train.ipynb (not included, it only calls train_model from starter.py)
