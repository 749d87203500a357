# FCNs in the style of a popular GitHub repository: the VGG is built outside the FCN and passed
# in (`FCN8s(pretrained_net=VGGNet(requires_grad=False), n_class=13)`), and returns its pooled
# feature maps as a dict.
import torch.nn as nn
from torchvision import models
from torchvision.models.vgg import VGG, cfgs, make_layers

# (first, last + 1) index of each block's layers in vgg16.features
BLOCKS = {"vgg16": ((0, 5), (5, 10), (10, 17), (17, 24), (24, 31))}


class VGGNet(VGG):
    def __init__(self, pretrained=True, model="vgg16", requires_grad=True, remove_fc=True):
        super().__init__(make_layers(cfgs["D"]))
        self.blocks = BLOCKS[model]
        if pretrained:
            self.load_state_dict(models.vgg16(weights="IMAGENET1K_V1").state_dict())
        if not requires_grad:
            for parameter in super().parameters():
                parameter.requires_grad = False
        if remove_fc:
            del self.classifier

    def forward(self, x):
        pooled = {}
        for i, (start, end) in enumerate(self.blocks):
            for layer in range(start, end):
                x = self.features[layer](x)
            pooled[f"x{i + 1}"] = x
        return pooled


def up(cin, cout):
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1),
                         nn.ReLU(inplace=True), nn.BatchNorm2d(cout))


class FCN32s(nn.Module):
    def __init__(self, pretrained_net, n_class):
        super().__init__()
        self.pretrained_net = pretrained_net
        self.up1, self.up2, self.up3, self.up4, self.up5 = up(512, 512), up(512, 256), up(256, 128), \
            up(128, 64), up(64, 32)
        self.classifier = nn.Conv2d(32, n_class, 1)

    def forward(self, x):
        x5 = self.pretrained_net(x)["x5"]
        return self.classifier(self.up5(self.up4(self.up3(self.up2(self.up1(x5))))))


class FCN16s(FCN32s):
    def forward(self, x):
        pooled = self.pretrained_net(x)
        score = self.up1(pooled["x5"]) + pooled["x4"]
        return self.classifier(self.up5(self.up4(self.up3(self.up2(score)))))


class FCN8s(FCN32s):
    def forward(self, x):
        pooled = self.pretrained_net(x)
        score = self.up1(pooled["x5"]) + pooled["x4"]
        score = self.up2(score) + pooled["x3"]
        return self.classifier(self.up5(self.up4(self.up3(score))))
