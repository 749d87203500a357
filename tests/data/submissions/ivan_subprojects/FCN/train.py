import torch

from src.model import FCN8s, FCN16s, FCN32s

if __name__ == "__main__":
    for cls in (FCN32s, FCN16s, FCN8s):
        model = cls(num_classes=13, freeze_backbone=True)
        print(cls.__name__, sum(p.numel() for p in model.parameters()))
