"""Attention U-Net (Oktay et al., 2018): an additive attention gate on every skip.

The gate follows LeeJunHyun/Image_Segmentation: the gating signal g is the decoder feature
after the up-conv (already at the size of the skip feature x), alpha = sigmoid(psi(relu(W_g g + W_x x)))
is one number per pixel, and the skip that goes into the concat is x * alpha.
"""
import torch
import torch.nn as nn

from .unet import conv_block, up_conv


class Attention_block(nn.Module):
    def __init__(self, F_g, F_l, F_int):
        super().__init__()
        self.W_g = nn.Sequential(
            nn.Conv2d(F_g, F_int, kernel_size=1, stride=1, padding=0, bias=True),
            nn.BatchNorm2d(F_int),
        )
        self.W_x = nn.Sequential(
            nn.Conv2d(F_l, F_int, kernel_size=1, stride=1, padding=0, bias=True),
            nn.BatchNorm2d(F_int),
        )
        self.psi = nn.Sequential(
            nn.Conv2d(F_int, 1, kernel_size=1, stride=1, padding=0, bias=True),
            nn.BatchNorm2d(1),
            nn.Sigmoid(),
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, g, x):
        g1 = self.W_g(g)
        x1 = self.W_x(x)
        psi = self.relu(g1 + x1)
        psi = self.psi(psi)
        return x * psi


class AttU_Net(nn.Module):
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
        self.Att5 = Attention_block(F_g=c4, F_l=c4, F_int=c3)
        self.Up_conv5 = conv_block(c5, c4)

        self.Up4 = up_conv(c4, c3)
        self.Att4 = Attention_block(F_g=c3, F_l=c3, F_int=c2)
        self.Up_conv4 = conv_block(c4, c3)

        self.Up3 = up_conv(c3, c2)
        self.Att3 = Attention_block(F_g=c2, F_l=c2, F_int=c1)
        self.Up_conv3 = conv_block(c3, c2)

        self.Up2 = up_conv(c2, c1)
        self.Att2 = Attention_block(F_g=c1, F_l=c1, F_int=c1 // 2)
        self.Up_conv2 = conv_block(c2, c1)

        self.Conv_1x1 = nn.Conv2d(c1, output_ch, kernel_size=1)

    def forward(self, x):
        # encoding path
        x1 = self.Conv1(x)
        x2 = self.Conv2(self.Maxpool(x1))
        x3 = self.Conv3(self.Maxpool(x2))
        x4 = self.Conv4(self.Maxpool(x3))
        x5 = self.Conv5(self.Maxpool(x4))

        # decoding + gated skips
        d5 = self.Up5(x5)
        x4 = self.Att5(g=d5, x=x4)
        d5 = self.Up_conv5(torch.cat((x4, d5), dim=1))

        d4 = self.Up4(d5)
        x3 = self.Att4(g=d4, x=x3)
        d4 = self.Up_conv4(torch.cat((x3, d4), dim=1))

        d3 = self.Up3(d4)
        x2 = self.Att3(g=d3, x=x2)
        d3 = self.Up_conv3(torch.cat((x2, d3), dim=1))

        d2 = self.Up2(d3)
        x1 = self.Att2(g=d2, x=x1)
        d2 = self.Up_conv2(torch.cat((x1, d2), dim=1))

        return self.Conv_1x1(d2)
