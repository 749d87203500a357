# models for hw3: FCN32 / FCN16 / FCN8 + the 4 unets
# Bob - CV course HW3
# U-Net code is based on mateuszbuda/brain-segmentation-pytorch (init_features=32), adapted
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import vgg16

from utils import NUM_CLASSES, bilinear_kernel, count_params, set_requires_grad


###############################################################################
# FCN
###############################################################################

class VGGBackbone(nn.Module):
    """vgg16 conv1..conv5 + fc6/fc7 as convs. returns pool3, pool4 and the fc7 features"""

    def __init__(self, pretrained_backbone=True):
        super().__init__()
        net = vgg16(weights="DEFAULT" if pretrained_backbone else None)
        self.features = net.features
        fc6 = nn.Conv2d(512, 4096, kernel_size=7, padding=3)
        fc7 = nn.Conv2d(4096, 4096, kernel_size=1)
        # reuse the fully connected weights
        fc6.weight.data = net.classifier[0].weight.data.view(4096, 512, 7, 7).clone()
        fc6.bias.data = net.classifier[0].bias.data.clone()
        fc7.weight.data = net.classifier[3].weight.data.view(4096, 4096, 1, 1).clone()
        fc7.bias.data = net.classifier[3].bias.data.clone()
        self.fc = nn.Sequential(fc6, nn.ReLU(inplace=True), nn.Dropout2d(),
                                fc7, nn.ReLU(inplace=True), nn.Dropout2d())

    def forward(self, x):
        out = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i == 16:
                out['pool3'] = x
            elif i == 23:
                out['pool4'] = x
        out['fc7'] = self.fc(x)
        return out


def _up2(n):
    up = nn.ConvTranspose2d(n, n, kernel_size=4, stride=2, padding=1, bias=False)
    up.weight.data.copy_(bilinear_kernel(n, n, 4))
    return up


class FCN32(nn.Module):
    def __init__(self, n_classes=NUM_CLASSES, update_weights=True, pretrained_backbone=True):
        super().__init__()
        self.backbone = VGGBackbone(pretrained_backbone)
        set_requires_grad(self.backbone, update_weights)  # update_weights=False -> frozen vgg
        self.classifier = nn.Conv2d(4096, n_classes, 1)

    def forward(self, x):
        size = x.shape[2:]
        feats = self.backbone(x)
        score = self.classifier(feats['fc7'])
        # upsample x32 straight back to the input size
        return F.interpolate(score, size=size, mode='bilinear', align_corners=False)


class FCN16(nn.Module):
    def __init__(self, n_classes=NUM_CLASSES, update_weights=True, pretrained_backbone=True):
        super().__init__()
        self.backbone = VGGBackbone(pretrained_backbone)
        set_requires_grad(self.backbone, update_weights)
        self.classifier = nn.Conv2d(4096, n_classes, 1)
        self.score_pool4 = nn.Conv2d(512, n_classes, 1)
        self.up2 = _up2(n_classes)

    def forward(self, x):
        size = x.shape[2:]
        feats = self.backbone(x)
        score = self.up2(self.classifier(feats['fc7']))      # 1/32 -> 1/16
        score = score + self.score_pool4(feats['pool4'])
        return F.interpolate(score, size=size, mode='bilinear', align_corners=False)  # x16


class FCN8(nn.Module):
    def __init__(self, n_classes=NUM_CLASSES, update_weights=True, pretrained_backbone=True):
        super().__init__()
        self.backbone = VGGBackbone(pretrained_backbone)
        set_requires_grad(self.backbone, update_weights)
        self.classifier = nn.Conv2d(4096, n_classes, 1)
        self.score_pool4 = nn.Conv2d(512, n_classes, 1)
        self.score_pool3 = nn.Conv2d(256, n_classes, 1)
        self.up2_a = _up2(n_classes)
        self.up2_b = _up2(n_classes)

    def forward(self, x):
        size = x.shape[2:]
        feats = self.backbone(x)
        score = self.up2_a(self.classifier(feats['fc7'])) + self.score_pool4(feats['pool4'])  # 1/16
        score = self.up2_b(score) + self.score_pool3(feats['pool3'])                          # 1/8
        return F.interpolate(score, size=size, mode='bilinear', align_corners=False)


###############################################################################
# U-Nets
###############################################################################

def conv_block(in_channels, features, name):
    return nn.Sequential(OrderedDict([
        (name + 'conv1', nn.Conv2d(in_channels, features, kernel_size=3, padding=1, bias=False)),
        (name + 'norm1', nn.BatchNorm2d(features)),
        (name + 'relu1', nn.ReLU(inplace=True)),
        (name + 'conv2', nn.Conv2d(features, features, kernel_size=3, padding=1, bias=False)),
        (name + 'norm2', nn.BatchNorm2d(features)),
        (name + 'relu2', nn.ReLU(inplace=True)),
    ]))


class VanillaUNet(nn.Module):
    def __init__(self, in_channels=3, out_channels=NUM_CLASSES, init_features=32):
        super().__init__()
        f = init_features
        self.encoder1 = conv_block(in_channels, f, 'enc1')
        self.pool1 = nn.MaxPool2d(2, 2)
        self.encoder2 = conv_block(f, f * 2, 'enc2')
        self.pool2 = nn.MaxPool2d(2, 2)
        self.encoder3 = conv_block(f * 2, f * 4, 'enc3')
        self.pool3 = nn.MaxPool2d(2, 2)
        self.encoder4 = conv_block(f * 4, f * 8, 'enc4')
        self.pool4 = nn.MaxPool2d(2, 2)

        self.bottleneck = conv_block(f * 8, f * 16, 'bottleneck')

        self.upconv4 = nn.ConvTranspose2d(f * 16, f * 8, kernel_size=2, stride=2)
        self.decoder4 = conv_block(f * 8 * 2, f * 8, 'dec4')
        self.upconv3 = nn.ConvTranspose2d(f * 8, f * 4, kernel_size=2, stride=2)
        self.decoder3 = conv_block(f * 4 * 2, f * 4, 'dec3')
        self.upconv2 = nn.ConvTranspose2d(f * 4, f * 2, kernel_size=2, stride=2)
        self.decoder2 = conv_block(f * 2 * 2, f * 2, 'dec2')
        self.upconv1 = nn.ConvTranspose2d(f * 2, f, kernel_size=2, stride=2)
        self.decoder1 = conv_block(f * 2, f, 'dec1')

        self.conv = nn.Conv2d(f, out_channels, kernel_size=1)

    def forward(self, x):
        enc1 = self.encoder1(x)
        enc2 = self.encoder2(self.pool1(enc1))
        enc3 = self.encoder3(self.pool2(enc2))
        enc4 = self.encoder4(self.pool3(enc3))
        bottleneck = self.bottleneck(self.pool4(enc4))

        dec4 = self.upconv4(bottleneck)
        dec4 = torch.cat((dec4, enc4), dim=1)
        dec4 = self.decoder4(dec4)
        dec3 = self.upconv3(dec4)
        dec3 = torch.cat((dec3, enc3), dim=1)
        dec3 = self.decoder3(dec3)
        dec2 = self.upconv2(dec3)
        dec2 = torch.cat((dec2, enc2), dim=1)
        dec2 = self.decoder2(dec2)
        dec1 = self.upconv1(dec2)
        dec1 = torch.cat((dec1, enc1), dim=1)
        dec1 = self.decoder1(dec1)
        return self.conv(dec1)  # logits, CrossEntropyLoss does the softmax


class NoSkipUNet(VanillaUNet):
    """same encoder/decoder, but the decoder never sees the encoder features"""

    def __init__(self, in_channels=3, out_channels=NUM_CLASSES, init_features=32):
        super().__init__(in_channels, out_channels, init_features)
        f = init_features
        # decoders now only get the upsampled channels (no concat -> half the input channels)
        self.decoder4 = conv_block(f * 8, f * 8, 'dec4')
        self.decoder3 = conv_block(f * 4, f * 4, 'dec3')
        self.decoder2 = conv_block(f * 2, f * 2, 'dec2')
        self.decoder1 = conv_block(f, f, 'dec1')

    def forward(self, x):
        enc1 = self.encoder1(x)
        enc2 = self.encoder2(self.pool1(enc1))
        enc3 = self.encoder3(self.pool2(enc2))
        enc4 = self.encoder4(self.pool3(enc3))
        bottleneck = self.bottleneck(self.pool4(enc4))

        dec4 = self.decoder4(self.upconv4(bottleneck))
        dec3 = self.decoder3(self.upconv3(dec4))
        dec2 = self.decoder2(self.upconv2(dec3))
        dec1 = self.decoder1(self.upconv1(dec2))
        return self.conv(dec1)


class ResBlock(nn.Module):
    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        # 1x1 conv on the shortcut if the channels differ
        self.skip = nn.Conv2d(in_ch, out_ch, 1, bias=False) if in_ch != out_ch else None

    def forward(self, x):
        res = x if self.skip is None else self.skip(x)
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        return F.relu(x + res)


class ResUNet(nn.Module):
    def __init__(self, in_channels=3, out_channels=NUM_CLASSES, init_features=32):
        super().__init__()
        chs = [init_features * 2 ** i for i in range(5)]  # 32 64 128 256 512
        self.enc = nn.ModuleList()
        prev = in_channels
        for c in chs[:-1]:
            self.enc.append(ResBlock(prev, c))
            prev = c
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = ResBlock(chs[-2], chs[-1])
        self.ups = nn.ModuleList()
        self.dec = nn.ModuleList()
        for c in reversed(chs[:-1]):
            self.ups.append(nn.ConvTranspose2d(c * 2, c, 2, stride=2))
            self.dec.append(ResBlock(c * 2, c))
        self.head = nn.Conv2d(chs[0], out_channels, 1)

    def forward(self, x):
        skips = []
        for block in self.enc:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, block, s in zip(self.ups, self.dec, reversed(skips)):
            x = up(x)
            x = block(torch.cat([s, x], dim=1))
        return self.head(x)


class AttentionBlock(nn.Module):
    """Attention gate like in the paper: x (skip, fine) is brought to the grid of g (gating,
    coarse) with a strided 1x1... well 2x2 conv, the coefficients are upsampled back."""

    def __init__(self, x_ch, g_ch, inter_ch):
        super().__init__()
        self.theta_x = nn.Conv2d(x_ch, inter_ch, kernel_size=2, stride=2, bias=False)
        self.phi_g = nn.Conv2d(g_ch, inter_ch, kernel_size=1)
        self.psi = nn.Conv2d(inter_ch, 1, kernel_size=1)

    def forward(self, x, g):
        theta = self.theta_x(x)
        phi = self.phi_g(g)
        f = F.relu(theta + phi)
        alpha = torch.sigmoid(self.psi(f))
        alpha = F.interpolate(alpha, size=x.shape[2:], mode='bilinear', align_corners=False)
        return x * alpha


class AttentionUNet(VanillaUNet):
    def __init__(self, in_channels=3, out_channels=NUM_CLASSES, init_features=32):
        super().__init__(in_channels, out_channels, init_features)
        f = init_features
        self.att4 = AttentionBlock(f * 8, f * 16, f * 4)
        self.att3 = AttentionBlock(f * 4, f * 8, f * 2)
        self.att2 = AttentionBlock(f * 2, f * 4, f)
        self.att1 = AttentionBlock(f, f * 2, f // 2)

    def forward(self, x):
        enc1 = self.encoder1(x)
        enc2 = self.encoder2(self.pool1(enc1))
        enc3 = self.encoder3(self.pool2(enc2))
        enc4 = self.encoder4(self.pool3(enc3))
        bottleneck = self.bottleneck(self.pool4(enc4))

        # gating signal = the coarser decoder level (before it is upsampled)
        dec4 = self.decoder4(torch.cat((self.upconv4(bottleneck), self.att4(enc4, bottleneck)), dim=1))
        dec3 = self.decoder3(torch.cat((self.upconv3(dec4), self.att3(enc3, dec4)), dim=1))
        dec2 = self.decoder2(torch.cat((self.upconv2(dec3), self.att2(enc2, dec3)), dim=1))
        dec1 = self.decoder1(torch.cat((self.upconv1(dec2), self.att1(enc1, dec2)), dim=1))
        return self.conv(dec1)


if __name__ == '__main__':
    for cls in [VanillaUNet, NoSkipUNet, ResUNet, AttentionUNet]:
        m = cls()
        print(cls.__name__, m(torch.randn(1, 3, 256, 256)).shape, count_params(m))
    for cls in [FCN32, FCN16, FCN8]:
        m = cls(update_weights=False, pretrained_backbone=False)
        print(cls.__name__, m(torch.randn(1, 3, 224, 224)).shape, count_params(m, trainable_only=True))
