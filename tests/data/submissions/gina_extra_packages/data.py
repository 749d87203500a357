# CARLA dataset loading for HW3. Uses OpenCV and albumentations (pip install opencv-python albumentations)
import os

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2
from dotenv import load_dotenv
from torch.utils.data import Dataset

load_dotenv()
DATA_ROOT = os.environ.get("CARLA_ROOT", "/content/drive/MyDrive/carla")


def get_transforms(size=256, train=True):
    ops = [A.Resize(size, size)]
    if train:
        ops += [A.HorizontalFlip(p=0.5), A.RandomBrightnessContrast(p=0.2)]
    ops += [A.Normalize(), ToTensorV2()]
    return A.Compose(ops)


class CarlaDataset(Dataset):
    def __init__(self, root=DATA_ROOT, split="train", transform=None):
        self.images = sorted(os.listdir(os.path.join(root, split, "CameraRGB")))
        self.root, self.split, self.transform = root, split, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        name = self.images[i]
        image = cv2.cvtColor(cv2.imread(os.path.join(self.root, self.split, "CameraRGB", name)), cv2.COLOR_BGR2RGB)
        mask = cv2.imread(os.path.join(self.root, self.split, "CameraSeg", name))[:, :, 2]
        out = self.transform(image=image, mask=mask)
        return out["image"], out["mask"].long()
