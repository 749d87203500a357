import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import VGG19_Weights, vgg19


class FCN32s(nn.Module):
    def __init__(self, num_classes, freeze_backbone=False, pretrained=True):
        super().__init__()
        self.features = vgg19(weights=VGG19_Weights.IMAGENET1K_V1).features  # always ImageNet
        self.features.requires_grad_(not freeze_backbone)
        self.score = nn.Conv2d(512, num_classes, 1)

    def forward(self, x):
        return F.interpolate(self.score(self.features(x)), size=x.shape[-2:], mode="bilinear")
