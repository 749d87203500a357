"""Baselines that need no model: what a score must beat to mean anything.

- majority: every pixel gets the most frequent training class;
- colour lookup: every pixel gets the class most often seen with its (quantised) colour
  in the training images. A dataset where this scores close to a trained network would
  let a model "segment" by colour alone.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from grader.data import IGNORE_INDEX
from grader.grading.metrics import ConfusionMatrix, SegmentationScores


def _quantise(image: torch.Tensor, levels: int) -> torch.Tensor:
    """uint8 3 x H x W (or 1 x H x W, grayscale) -> H x W colour-bin index in [0, levels**3)."""
    q = image.expand(3, -1, -1).long() * levels // 256   # a grayscale image: its one channel three times
    return (q[0] * levels + q[1]) * levels + q[2]


def fit_colour_lookup(train: Dataset, num_classes: int, levels: int = 32) -> torch.Tensor:
    """The best colour -> class table for the training items (uint8 image, id mask):
    for each colour bin, the class it most often carries. Unseen colours get the
    majority class."""
    counts = torch.zeros(levels**3, num_classes, dtype=torch.int64)
    for image, mask in train:
        bins, labels = _quantise(image, levels).reshape(-1), mask.reshape(-1).long()
        keep = labels != IGNORE_INDEX
        counts.view(-1).index_add_(0, bins[keep] * num_classes + labels[keep], torch.ones_like(bins[keep]))
    table = counts.argmax(dim=1)
    table[counts.sum(dim=1) == 0] = int(counts.sum(dim=0).argmax())
    return table


def score_colour_lookup(table: torch.Tensor, data: Dataset, num_classes: int) -> SegmentationScores:
    levels = round(table.numel() ** (1 / 3))
    cm = ConfusionMatrix(num_classes)
    for image, mask in data:
        cm.update(table[_quantise(image, levels)][None], mask[None])
    return cm.compute()


def score_majority(train: Dataset, data: Dataset, num_classes: int) -> SegmentationScores:
    counts = torch.zeros(num_classes, dtype=torch.int64)
    for _, mask in train:
        labels = mask[mask != IGNORE_INDEX].long()
        counts += torch.bincount(labels, minlength=num_classes)
    majority = int(counts.argmax())
    cm = ConfusionMatrix(num_classes)
    for _, mask in data:
        cm.update(torch.full_like(mask, majority)[None], mask[None])
    return cm.compute()
