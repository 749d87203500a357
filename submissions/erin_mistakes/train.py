# HW3 - training script for all the models (FCNs and U-Nets).
#   python train.py --model fcn8s --freeze --epochs 30
#   python train.py --model attunet --epochs 60 --size 256
# LLM use (course policy): I asked ChatGPT "how do I plot the train loss and val mIoU curves
# side by side with matplotlib and save them to a png" for plot_curves() below. The rest is mine.
import argparse
import json
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from models import AttU_Net, ResU_Net, U_Net, U_Net_NoSkip, VGG16_FCN8s, VGG16_FCN16s, VGG16_FCN32s

CLASSES = ["Unlabeled", "Building", "Fence", "Other", "Pedestrian", "Pole", "RoadLine",
           "Road", "Sidewalk", "Vegetation", "Car", "Wall", "TrafficSign"]
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


class CarlaSeg(Dataset):
    """Lyft-Udacity CARLA: CameraRGB/*.png and CameraSeg/*.png, class id in the red channel."""

    def __init__(self, root, size):
        self.root = root
        self.size = size
        self.names = sorted(os.listdir(os.path.join(root, "CameraRGB")))

    def __len__(self):
        return len(self.names)

    def __getitem__(self, i):
        name = self.names[i]
        img = Image.open(os.path.join(self.root, "CameraRGB", name)).convert("RGB")
        mask = Image.open(os.path.join(self.root, "CameraSeg", name))
        img = img.resize((self.size, self.size), Image.BILINEAR)
        mask = mask.resize((self.size, self.size), Image.NEAREST)
        x = torch.from_numpy(np.array(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
        x = (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
        y = torch.from_numpy(np.array(mask)[:, :, 0].astype(np.int64))  # red channel = class id
        return x, y


def build_model(name, freeze):
    weights = "IMAGENET1K_V1"
    if name == "fcn32s":
        return VGG16_FCN32s(13, weights=weights, freeze_backbone=freeze)
    if name == "fcn16s":
        return VGG16_FCN16s(13, weights=weights, freeze_backbone=freeze)
    if name == "fcn8s":
        return VGG16_FCN8s(13, weights=weights, freeze_backbone=freeze)
    return {"unet": U_Net, "unet_noskip": U_Net_NoSkip, "resunet": ResU_Net, "attunet": AttU_Net}[name](3, 13)


def miou(conf):
    # IoU per class over the whole set, classes that never appear (and are never predicted) are skipped
    inter = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    return np.nanmean(iou), iou


@torch.no_grad()
def evaluate(model, loader, device):
    model.eval()
    conf = np.zeros((13, 13), dtype=np.int64)
    for x, y in loader:
        pred = model(x.to(device)).argmax(1).cpu().numpy().ravel()
        conf += np.bincount(13 * y.numpy().ravel() + pred, minlength=13 * 13).reshape(13, 13)
    return miou(conf)


def plot_curves(history, path):
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(history["loss"], label="train loss")
    ax1.set_xlabel("epoch")
    ax1.legend()
    ax2.plot(history["val_miou"], label="val mIoU", color="tab:orange")
    ax2.set_xlabel("epoch")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


parser = argparse.ArgumentParser()
parser.add_argument("--model", default="unet",
                    choices=["fcn32s", "fcn16s", "fcn8s", "unet", "unet_noskip", "resunet", "attunet"])
parser.add_argument("--freeze", action="store_true")
parser.add_argument("--epochs", type=int, default=50)
parser.add_argument("--size", type=int, default=256)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--data", default="data")
args = parser.parse_args()

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
train_loader = DataLoader(CarlaSeg(os.path.join(args.data, "dataA"), args.size), batch_size=16, shuffle=True,
                          num_workers=4)
val_loader = DataLoader(CarlaSeg(os.path.join(args.data, "dataB"), args.size), batch_size=16)
test_loader = DataLoader(CarlaSeg(os.path.join(args.data, "dataC"), args.size), batch_size=16)

model = build_model(args.model, args.freeze).to(device)
n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
print(f"{args.model}: {n_train / 1e6:.1f}M trainable parameters")
optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=args.lr)
criterion = nn.CrossEntropyLoss()

run_name = args.model + ("_frozen" if args.freeze else "")
os.makedirs("runs", exist_ok=True)
history = {"loss": [], "val_miou": []}
best = 0.0
for epoch in range(args.epochs):
    model.train()
    total, start = 0.0, time.time()
    for x, y in tqdm(train_loader, desc=f"epoch {epoch}"):
        x, y = x.to(device), y.to(device)
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
    val_miou, _ = evaluate(model, val_loader, device)
    history["loss"].append(total / len(train_loader))
    history["val_miou"].append(float(val_miou))
    print(f"epoch {epoch}: loss {history['loss'][-1]:.3f}  val mIoU {val_miou:.3f}  ({time.time() - start:.0f}s)")
    if val_miou > best:
        best = val_miou
        torch.save(model.state_dict(), f"runs/{run_name}.pt")

model.load_state_dict(torch.load(f"runs/{run_name}.pt"))
test_miou, per_class = evaluate(model, test_loader, device)
print(f"test mIoU {test_miou:.3f}")
for name, iou in zip(CLASSES, per_class):
    print(f"  {name:12s} {iou:.3f}")
plot_curves(history, f"runs/{run_name}_curves.png")
with open(f"runs/{run_name}.json", "w") as f:
    json.dump({"test_miou": float(test_miou), "history": history}, f)
