# utils for hw3 (dataset + small helpers)
# Bob - CV course HW3
import os

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

CLASS_NAMES = ['Unlabeled', 'Building', 'Fence', 'Other', 'Pedestrian', 'Pole', 'RoadLine',
               'Road', 'Sidewalk', 'Vegetation', 'Car', 'Wall', 'TrafficSign']
NUM_CLASSES = len(CLASS_NAMES)

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class CarlaSegDataset(Dataset):
    """CameraRGB/ + CameraSeg/ folders, the class id is stored in the red channel of the mask png."""

    def __init__(self, root_dir, img_size=(256, 256)):
        self.root_dir = root_dir
        self.img_size = img_size
        self.images = sorted(os.listdir(os.path.join(root_dir, 'CameraRGB')))

    def __len__(self):
        return len(self.images)

    def __getitem__(self, idx):
        fname = self.images[idx]
        img = Image.open(os.path.join(self.root_dir, 'CameraRGB', fname)).convert('RGB')
        seg = Image.open(os.path.join(self.root_dir, 'CameraSeg', fname))
        img = img.resize(self.img_size[::-1], Image.BILINEAR)
        seg = seg.resize(self.img_size[::-1], Image.NEAREST)
        img = torch.tensor(np.array(img), dtype=torch.float32).permute(2, 0, 1) / 255.
        img = (img - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
        seg = torch.tensor(np.array(seg)[:, :, 0], dtype=torch.long)
        return img, seg


def mask_to_binary_masks(mask):
    """Q1: split a HxW label mask into 13 binary masks -> dict {class name: HxW bool array}"""
    mask = np.asarray(mask)
    return {name: (mask == i) for i, name in enumerate(CLASS_NAMES)}


def bilinear_kernel(in_channels, out_channels, kernel_size):
    # bilinear init for ConvTranspose2d (from the d2l book)
    factor = (kernel_size + 1) // 2
    if kernel_size % 2 == 1:
        center = factor - 1
    else:
        center = factor - 0.5
    og = (torch.arange(kernel_size).reshape(-1, 1), torch.arange(kernel_size).reshape(1, -1))
    filt = (1 - torch.abs(og[0] - center) / factor) * (1 - torch.abs(og[1] - center) / factor)
    weight = torch.zeros((in_channels, out_channels, kernel_size, kernel_size))
    weight[range(in_channels), range(out_channels), :, :] = filt
    return weight


def set_requires_grad(module, flag):
    for p in module.parameters():
        p.requires_grad = flag


def count_params(model, trainable_only=False):
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def miou(conf_matrix):
    tp = np.diag(conf_matrix)
    denom = conf_matrix.sum(0) + conf_matrix.sum(1) - tp
    with np.errstate(invalid='ignore', divide='ignore'):
        iou = tp / denom
    return float(np.nanmean(iou))
