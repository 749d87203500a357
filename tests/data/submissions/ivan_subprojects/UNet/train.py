import argparse

import torch

from src.model import UNet, UNetNoSkip
from src.unet import AttentionUNet, ResidualUNet

MODELS = {"unet": UNet, "noskip": UNetNoSkip, "residual": ResidualUNet, "attention": AttentionUNet}

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="unet", choices=list(MODELS))
    args = parser.parse_args()
    print(MODELS[args.model](num_classes=13))
