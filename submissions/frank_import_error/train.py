# Trains every model one after the other and saves the curves (run on Colab with a T4).
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from models import FCN8s, FCN16s, FCN32s, AttentionUNet, ResidualUNet, UNet, UNetNoSkip
from utils import CarlaDataset, mean_iou, plot_history

EPOCHS = {"fcn": 30, "unet": 50}
device = "cuda" if torch.cuda.is_available() else "cpu"


def fit(model, train_loader, val_loader, epochs, lr=1e-4):
    opt = torch.optim.Adam((p for p in model.parameters() if p.requires_grad), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    history = {"loss": [], "miou": []}
    for epoch in range(epochs):
        model.train()
        for x, y in train_loader:
            opt.zero_grad()
            loss = loss_fn(model(x.to(device)), y.to(device))
            loss.backward()
            opt.step()
        history["loss"].append(loss.item())
        history["miou"].append(mean_iou(model, val_loader, device))
        print(epoch, history["loss"][-1], history["miou"][-1])
    return history


if __name__ == "__main__":
    runs = {
        "fcn32s_frozen": (lambda: FCN32s(freeze_backbone=True), 224, "fcn"),
        "fcn16s_frozen": (lambda: FCN16s(freeze_backbone=True), 224, "fcn"),
        "fcn8s_frozen": (lambda: FCN8s(freeze_backbone=True), 224, "fcn"),
        "fcn32s": (lambda: FCN32s(), 224, "fcn"),
        "fcn16s": (lambda: FCN16s(), 224, "fcn"),
        "fcn8s": (lambda: FCN8s(), 224, "fcn"),
        "unet": (UNet, 256, "unet"),
        "unet_noskip": (UNetNoSkip, 256, "unet"),
        "unet_residual": (ResidualUNet, 256, "unet"),
        "unet_attention": (AttentionUNet, 256, "unet"),
    }
    for name, (make, size, family) in runs.items():
        train_loader = DataLoader(CarlaDataset("data/train", size), batch_size=8, shuffle=True)
        val_loader = DataLoader(CarlaDataset("data/val", size), batch_size=8)
        model = make().to(device)
        history = fit(model, train_loader, val_loader, EPOCHS[family], lr=1e-4 if family == "fcn" else 1e-3)
        torch.save(model.state_dict(), f"{name}.pt")
        plot_history(history, f"{name}.png")
