# FCN for HW3. Backbone: VGG16 conv layers from torchvision. fc6/fc7 are my own convolutions
# (trained from scratch: the frozen variants freeze only the VGG convolutions).
import torch
import torch.nn as nn
import torchvision


class FCN(nn.Module):
    def __init__(self, num_classes=13, mode="32s", freeze=False, pretrained=True):
        super().__init__()
        assert mode in ("32s", "16s", "8s")
        self.mode = mode
        vgg = torchvision.models.vgg16(weights=torchvision.models.VGG16_Weights.DEFAULT if pretrained else None)
        self.backbone = vgg.features
        if freeze:
            for param in self.backbone.parameters():
                param.requires_grad = False
        self.fc6 = nn.Conv2d(512, 4096, kernel_size=7, padding=3)
        self.fc7 = nn.Conv2d(4096, 4096, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout2d()
        self.score_fr = nn.Conv2d(4096, num_classes, 1)
        self.score_pool4 = nn.Conv2d(512, num_classes, 1)
        self.score_pool3 = nn.Conv2d(256, num_classes, 1)

    def forward(self, x):
        h, w = x.shape[-2:]
        feats = {}
        y = x
        for i, layer in enumerate(self.backbone):
            y = layer(y)
            if i == 16:
                feats["pool3"] = y
            elif i == 23:
                feats["pool4"] = y
        y = self.drop(self.relu(self.fc6(y)))
        y = self.drop(self.relu(self.fc7(y)))
        y = self.score_fr(y)
        if self.mode in ("16s", "8s"):
            y = nn.functional.interpolate(y, scale_factor=2, mode="bilinear") + self.score_pool4(feats["pool4"])
        if self.mode == "8s":
            y = nn.functional.interpolate(y, scale_factor=2, mode="bilinear") + self.score_pool3(feats["pool3"])
        return nn.functional.interpolate(y, size=(h, w), mode="bilinear")
