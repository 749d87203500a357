"""All four U-Nets share the encoder of an abstract UNet base; each subclass decodes its own way."""
import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """Base class: the encoder. Subclasses implement decode()."""

    def __init__(self, num_classes=13, in_channels=3, widths=(16, 32, 64, 128, 256)):
        super().__init__()
        self.widths = widths
        self.encoders = nn.ModuleList()
        c = in_channels
        for w in widths:
            self.encoders.append(conv_block(c, w))
            c = w
        self.ups = nn.ModuleList(nn.ConvTranspose2d(w * 2, w, 2, stride=2) for w in reversed(widths[:-1]))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def encode(self, x):
        skips = []
        for i, enc in enumerate(self.encoders):
            x = enc(x)
            if i < len(self.encoders) - 1:
                skips.append(x)
                x = F.max_pool2d(x, 2)
        return x, skips

    def decode(self, x, skips):
        raise NotImplementedError("subclasses decode")

    def forward(self, x):
        x, skips = self.encode(x)
        return self.head(self.decode(x, skips))


class VanillaUNet(UNet):
    def __init__(self, num_classes=13, in_channels=3, widths=(16, 32, 64, 128, 256)):
        super().__init__(num_classes, in_channels, widths)
        self.decoders = nn.ModuleList(conv_block(w * 2, w) for w in reversed(widths[:-1]))

    def decode(self, x, skips):
        for up, dec, s in zip(self.ups, self.decoders, reversed(skips)):
            x = dec(torch.cat([s, up(x)], dim=1))
        return x


class NoSkipUNet(UNet):
    def __init__(self, num_classes=13, in_channels=3, widths=(16, 32, 64, 128, 256)):
        super().__init__(num_classes, in_channels, widths)
        self.decoders = nn.ModuleList(conv_block(w, w) for w in reversed(widths[:-1]))

    def decode(self, x, skips):
        for up, dec in zip(self.ups, self.decoders):
            x = dec(up(x))
        return x
