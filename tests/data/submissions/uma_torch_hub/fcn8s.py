import torch
import torch.nn as nn
import torch.nn.functional as F

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


class FCN8s(nn.Module):
    def __init__(self, num_classes=13, freeze_backbone=False):
        super().__init__()
        vgg = torch.hub.load('pytorch/vision:v0.10.0', 'vgg16', pretrained=True)
        self.features = vgg.features
        if freeze_backbone:
            for p in self.features.parameters():
                p.requires_grad = False
        self.score_fr = nn.Conv2d(512, num_classes, 1)
        self.score_pool4 = nn.Conv2d(512, num_classes, 1)
        self.score_pool3 = nn.Conv2d(256, num_classes, 1)

    def forward(self, x):
        feats = {}
        h = x
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in (16, 23):
                feats[i] = h
        s = self.score_fr(h)
        s = F.interpolate(s, scale_factor=2, mode="bilinear") + self.score_pool4(feats[23])
        s = F.interpolate(s, scale_factor=2, mode="bilinear") + self.score_pool3(feats[16])
        return F.interpolate(s, scale_factor=8, mode="bilinear")
