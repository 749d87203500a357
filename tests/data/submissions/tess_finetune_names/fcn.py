# FCNs for HW3. FCN-32s freezes as in the PyTorch "finetuning torchvision models" tutorial
# (feature_extract=True trains only the new layers); FCN-8s is frozen in its constructor and
# FCN8s_FT unfreezes it for the fine-tuning part.
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import vgg16, VGG16_Weights


def set_parameter_requires_grad(model, feature_extracting):
    if feature_extracting:
        for param in model.parameters():
            param.requires_grad = False


class FCN32s(nn.Module):
    def __init__(self, num_classes, feature_extract=True, use_pretrained=True):
        super().__init__()
        vgg = vgg16(weights=VGG16_Weights.DEFAULT if use_pretrained else None)
        set_parameter_requires_grad(vgg, feature_extract)
        self.features = vgg.features
        self.classifier = nn.Conv2d(512, num_classes, kernel_size=1)

    def forward(self, x):
        return F.interpolate(self.classifier(self.features(x)), size=x.shape[2:], mode="bilinear")


class FCN8s(nn.Module):
    def __init__(self, num_classes=13, pretrained=True):
        super().__init__()
        self.vgg = vgg16(weights=VGG16_Weights.DEFAULT if pretrained else None).features
        for p in self.vgg.parameters():
            p.requires_grad = False
        self.score = nn.Conv2d(512, num_classes, 1)
        self.score4 = nn.Conv2d(512, num_classes, 1)
        self.score3 = nn.Conv2d(256, num_classes, 1)

    def forward(self, x):
        outs = []
        h = x
        for i, layer in enumerate(self.vgg):
            h = layer(h)
            if i in (16, 23):
                outs.append(h)
        s = F.interpolate(self.score(h), scale_factor=2, mode="bilinear") + self.score4(outs[1])
        s = F.interpolate(s, scale_factor=2, mode="bilinear") + self.score3(outs[0])
        return F.interpolate(s, size=x.shape[2:], mode="bilinear")


class FCN8s_FT(FCN8s):
    def __init__(self, num_classes=13, pretrained=True):
        super().__init__(num_classes, pretrained)
        self.vgg.requires_grad_(True)
