# U-Nets for HW3 part 3. einops for the reshapes in the attention gate.
import cv2  # only used in the notebook for visualisation
import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
from sklearn.metrics import confusion_matrix


def double_conv(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    def __init__(self, n_channels=3, n_classes=13, base=16):
        super().__init__()
        widths = [base, base * 2, base * 4, base * 8, base * 16]
        self.downs = nn.ModuleList()
        cin = n_channels
        for w in widths:
            self.downs.append(double_conv(cin, w))
            cin = w
        self.ups = nn.ModuleList()
        self.up_convs = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.ups.append(nn.ConvTranspose2d(w * 2, w, 2, stride=2))
            self.up_convs.append(double_conv(w * 2, w))
        self.head = nn.Conv2d(base, n_classes, 1)

    def forward(self, x):
        skips = []
        for i, down in enumerate(self.downs):
            x = down(x)
            if i < len(self.downs) - 1:
                skips.append(x)
                x = F.max_pool2d(x, 2)
        for up, conv, skip in zip(self.ups, self.up_convs, reversed(skips)):
            x = conv(torch.cat([skip, up(x)], dim=1))
        logits = self.head(x)
        # (b, c, h, w) stays (b, c, h, w): kept from when the head was a Linear over tokens
        return rearrange(rearrange(logits, "b c h w -> b (h w) c"), "b (h w) c -> b c h w", h=x.shape[2])


class UNetNoSkip(UNet):
    def __init__(self, n_channels=3, n_classes=13, base=16):
        super().__init__(n_channels, n_classes, base)
        cv2.setNumThreads(0)  # dataloader workers fight over threads otherwise
        for i, w in enumerate(reversed([base, base * 2, base * 4, base * 8])):
            self.up_convs[i] = double_conv(w, w)

    def forward(self, x):
        for i, down in enumerate(self.downs):
            x = down(x)
            if i < len(self.downs) - 1:
                x = F.max_pool2d(x, 2)
        for up, conv in zip(self.ups, self.up_convs):
            x = conv(up(x))
        return self.head(x)


def pixel_confusion(pred, target, n_classes=13):
    return confusion_matrix(target.flatten().cpu().numpy(), pred.flatten().cpu().numpy(),
                            labels=list(range(n_classes)))


# Tried the library's U-Net for the residual part; it trains much faster on Colab.
import segmentation_models_pytorch as smp


class ResidualUNet(smp.Unet):
    def __init__(self, num_classes=13):
        super().__init__(encoder_name="resnet34", encoder_weights=None, classes=num_classes)
