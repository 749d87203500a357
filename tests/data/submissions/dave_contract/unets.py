# Prompts used with ChatGPT: "explain the attention gate of Attention U-Net (Oktay 2018) with
# pytorch code", "why does my residual block fail when in_channels != out_channels".
#
# HW3 parts 3-6 - U-Net, U-Net without skips, residual U-Net, attention U-Net.
# Interface from the course contract: Class(num_classes, in_channels=3).
import torch
from torch import nn


def conv_bn_relu(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class PlainBlock(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(*conv_bn_relu(cin, cout), *conv_bn_relu(cout, cout))


class ResBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.f = nn.Sequential(*conv_bn_relu(cin, cout),
                               nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout))
        self.proj = nn.Identity() if cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.f(x) + self.proj(x))


class Gate(nn.Module):
    """alpha = sigmoid(psi(relu(Wx x + Wg g))), g = up-sampled decoder feature (same size as x)."""

    def __init__(self, x_ch, g_ch, mid_ch):
        super().__init__()
        self.wx = nn.Conv2d(x_ch, mid_ch, 1, bias=False)
        self.wg = nn.Conv2d(g_ch, mid_ch, 1)
        self.psi = nn.Conv2d(mid_ch, 1, 1)

    def forward(self, x, g):
        alpha = torch.sigmoid(self.psi(torch.relu(self.wx(x) + self.wg(g))))
        return alpha * x


class _UNet(nn.Module):
    BLOCK = PlainBlock
    SKIPS = True
    GATES = False

    def __init__(self, num_classes, in_channels=3, width=64):
        super().__init__()
        ch = [width, width * 2, width * 4, width * 8, width * 16]
        block = self.BLOCK
        self.enc = nn.ModuleList([block(in_channels, ch[0])] + [block(ch[i], ch[i + 1]) for i in range(3)])
        self.pool = nn.MaxPool2d(2)
        self.mid = block(ch[3], ch[4])
        self.up = nn.ModuleList([nn.ConvTranspose2d(ch[i + 1], ch[i], 2, stride=2) for i in (3, 2, 1, 0)])
        dec_in = [ch[i] * (2 if self.SKIPS else 1) for i in (3, 2, 1, 0)]
        self.dec = nn.ModuleList([block(dec_in[j], ch[i]) for j, i in enumerate((3, 2, 1, 0))])
        if self.GATES:
            self.gates = nn.ModuleList([Gate(ch[i], ch[i], ch[i] // 2) for i in (3, 2, 1, 0)])
        self.classifier = nn.Conv2d(ch[0], num_classes, 1)

    def forward(self, x):
        skips = []
        for i, block in enumerate(self.enc):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = self.mid(self.pool(x))
        for j in range(4):
            x = self.up[j](x)
            if self.SKIPS:
                s = skips[3 - j]
                if self.GATES:
                    s = self.gates[j](s, x)
                x = torch.cat([s, x], dim=1)
            x = self.dec[j](x)
        return self.classifier(x)


class UNet(_UNet):
    pass


class UNetNoSkip(_UNet):
    SKIPS = False


class ResidualUNet(_UNet):
    BLOCK = ResBlock


class AttentionUNet(_UNet):
    GATES = True


if __name__ == "__main__":
    for cls in (UNet, UNetNoSkip, ResidualUNet, AttentionUNet):
        net = cls(13)
        print(cls.__name__, tuple(net(torch.randn(1, 3, 256, 256)).shape),
              sum(p.numel() for p in net.parameters()))
