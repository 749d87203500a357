"""Residual U-Net: U_Net with every conv_block replaced by a residual block
(two 3x3 convs + shortcut, 1x1 conv on the shortcut when the channels change)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .unet import up_conv


class res_conv_block(nn.Module):
    def __init__(self, ch_in, ch_out):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(ch_in, ch_out, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(ch_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(ch_out, ch_out, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(ch_out),
        )
        if ch_in != ch_out:
            self.shortcut = nn.Sequential(nn.Conv2d(ch_in, ch_out, kernel_size=1, bias=False),
                                          nn.BatchNorm2d(ch_out))
        else:
            self.shortcut = nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.conv(x) + self.shortcut(x))


class ResU_Net(nn.Module):
    def __init__(self, img_ch=3, output_ch=13, base=32):
        super().__init__()
        c1, c2, c3, c4, c5 = base, base * 2, base * 4, base * 8, base * 16
        self.Maxpool = nn.MaxPool2d(kernel_size=2, stride=2)

        self.Conv1 = res_conv_block(img_ch, c1)
        self.Conv2 = res_conv_block(c1, c2)
        self.Conv3 = res_conv_block(c2, c3)
        self.Conv4 = res_conv_block(c3, c4)
        self.Conv5 = res_conv_block(c4, c5)

        self.Up5 = up_conv(c5, c4)
        self.Up_conv5 = res_conv_block(c5, c4)
        self.Up4 = up_conv(c4, c3)
        self.Up_conv4 = res_conv_block(c4, c3)
        self.Up3 = up_conv(c3, c2)
        self.Up_conv3 = res_conv_block(c3, c2)
        self.Up2 = up_conv(c2, c1)
        self.Up_conv2 = res_conv_block(c2, c1)

        self.Conv_1x1 = nn.Conv2d(c1, output_ch, kernel_size=1)

    def forward(self, x):
        x1 = self.Conv1(x)
        x2 = self.Conv2(self.Maxpool(x1))
        x3 = self.Conv3(self.Maxpool(x2))
        x4 = self.Conv4(self.Maxpool(x3))
        x5 = self.Conv5(self.Maxpool(x4))

        d5 = self.Up_conv5(torch.cat((x4, self.Up5(x5)), dim=1))
        d4 = self.Up_conv4(torch.cat((x3, self.Up4(d5)), dim=1))
        d3 = self.Up_conv3(torch.cat((x2, self.Up3(d4)), dim=1))
        d2 = self.Up_conv2(torch.cat((x1, self.Up2(d3)), dim=1))

        out = self.Conv_1x1(d2)
        # probabilities per pixel, so the output can go straight into the plots
        return F.softmax(out, dim=1)
