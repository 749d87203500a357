# HW3 training script. Run from this folder:  python train.py
# Change MODEL below to train the other variants (I ran them one by one on Colab / the lab GPU).
import os

import numpy as np
import torch
import torch.nn as nn
import wandb
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from segmodels import FCN, UNet

DATA_DIR = "data/carla"
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


class CarlaDataset(Dataset):
    def __init__(self, root, size=256):
        self.img_dir = os.path.join(root, "CameraRGB")
        self.mask_dir = os.path.join(root, "CameraSeg")
        self.files = sorted(os.listdir(self.img_dir))
        self.size = size

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        name = self.files[i]
        img = Image.open(os.path.join(self.img_dir, name)).convert("RGB").resize((self.size, self.size))
        mask = Image.open(os.path.join(self.mask_dir, name)).resize((self.size, self.size), Image.NEAREST)
        img = (np.asarray(img, dtype=np.float32) / 255.0 - MEAN) / STD
        mask = np.asarray(mask)[:, :, 0]  # class id is in the red channel
        return torch.from_numpy(img).permute(2, 0, 1), torch.from_numpy(mask.copy()).long()


def compute_miou(conf):
    iou = np.diag(conf) / (conf.sum(0) + conf.sum(1) - np.diag(conf))
    return np.nanmean(iou)


def evaluate(model, loader, n_classes=13):
    model.eval()
    conf = np.zeros((n_classes, n_classes), dtype=np.int64)
    with torch.no_grad():
        for x, y in loader:
            pred = model(x.to(device)).argmax(1).cpu().numpy()
            conf += np.bincount(n_classes * y.numpy().ravel() + pred.ravel(),
                                minlength=n_classes ** 2).reshape(n_classes, n_classes)
    return compute_miou(conf)


def train(model, train_loader, val_loader, epochs=50, lr=1e-4):
    model = model.to(device)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    criterion = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            opt.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            opt.step()
            total += loss.item()
        miou = evaluate(model, val_loader)
        print(f"epoch {epoch}: loss {total / len(train_loader):.4f} val mIoU {miou:.4f}")
        wandb.log({"train_loss": total / len(train_loader), "val_miou": miou})
    return model


MODEL = "unet_attention"
configs = {
    "fcn32s_frozen": dict(size=224, make=lambda: FCN(13, "fcn32s", freeze_backbone=True)),
    "fcn16s_frozen": dict(size=224, make=lambda: FCN(13, "fcn16s", freeze_backbone=True)),
    "fcn8s_frozen": dict(size=224, make=lambda: FCN(13, "fcn8s", freeze_backbone=True)),
    "fcn32s": dict(size=224, make=lambda: FCN(13, "fcn32s")),
    "fcn16s": dict(size=224, make=lambda: FCN(13, "fcn16s")),
    "fcn8s": dict(size=224, make=lambda: FCN(13, "fcn8s")),
    "unet": dict(size=256, make=lambda: UNet(3, 13)),
    "unet_noskip": dict(size=256, make=lambda: UNet(3, 13, use_skip_connections=False)),
    "unet_residual": dict(size=256, make=lambda: UNet(3, 13, use_residual_block=True)),
    "unet_attention": dict(size=256, make=lambda: UNet(3, 13, use_gated_attention=True)),
}

wandb.init(project="hw3-segmentation", name=MODEL, config={"model": MODEL, "epochs": 50})
cfg = configs[MODEL]
train_set = CarlaDataset(os.path.join(DATA_DIR, "train"), size=cfg["size"])
val_set = CarlaDataset(os.path.join(DATA_DIR, "val"), size=cfg["size"])
train_loader = DataLoader(train_set, batch_size=8, shuffle=True, num_workers=2)
val_loader = DataLoader(val_set, batch_size=8)
model = train(cfg["make"](), train_loader, val_loader, epochs=50)
torch.save(model.state_dict(), f"{MODEL}.pth")
wandb.finish()
