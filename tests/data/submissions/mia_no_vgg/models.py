# FCN-32s/16s/8s. I wrote my own encoder instead of VGG (VGG was too slow on my laptop).
import torch
import torch.nn as nn
import torch.nn.functional as F


def block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.b1, self.b2, self.b3 = block(3, 64), block(64, 128), block(128, 256)
        self.b4, self.b5 = block(256, 512), block(512, 512)

    def forward(self, x):
        p3 = self.b3(self.b2(self.b1(x)))
        p4 = self.b4(p3)
        return p3, p4, self.b5(p4)


class FCN8s(nn.Module):
    def __init__(self, num_classes, freeze_backbone=False, pretrained=True):
        super().__init__()
        self.encoder = Encoder()
        if freeze_backbone:
            self.encoder.requires_grad_(False)
        self.s5, self.s4, self.s3 = nn.Conv2d(512, num_classes, 1), nn.Conv2d(512, num_classes, 1), nn.Conv2d(256, num_classes, 1)

    def forward(self, x):
        p3, p4, p5 = self.encoder(x)
        y = F.interpolate(self.s5(p5), size=p4.shape[-2:], mode="bilinear") + self.s4(p4)
        y = F.interpolate(y, size=p3.shape[-2:], mode="bilinear") + self.s3(p3)
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear")
