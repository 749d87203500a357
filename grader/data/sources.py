"""Open a split of the assignment's dataset, whatever its kind, and keep the test seed secret.

For the synthetic scenes, train and val come from public seeds in the spec; the test
split's seed comes from SEGRADE_TEST_SEED or is drawn fresh (62 random bits), so it
cannot be derived from anything a submission sees. It is only ever used in the
grading process, which renders the hidden labels itself.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from grader.data import SPLITS
from grader.spec import DatasetConfig

TEST_SEED_ENV = "SEGRADE_TEST_SEED"
# Default number of synthetic images per split when the caller does not say.
DEFAULT_LENGTH = {"train": 1000, "val": 200, "test": 200}


def secret_test_seed() -> int:
    """The synthetic test split's seed: SEGRADE_TEST_SEED if set, else a fresh random one."""
    value = os.environ.get(TEST_SEED_ENV)
    if value is None:
        return secrets.randbits(62)
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{TEST_SEED_ENV} must be an integer, got {value!r}") from None


def open_split(config: DatasetConfig, split: str, *, size: int | tuple[int, int] = 64,
               length: int | None = None, test_seed: int | None = None) -> Dataset:
    """The items of one split, (uint8 3xHxW image, int64 HxW mask); 1xHxW images where the
    spec says `channels = 1`. `size` and `length` apply to synthetic data only; real data
    keeps its own size (transforms resize it)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    dataset = _open(config, split, size, length, test_seed)
    return Grayscale(dataset) if config.channels == 1 else dataset


class Grayscale(Dataset):
    """The items of `dataset` with each RGB image as one luminance channel (a course whose
    spec says `channels = 1`): PIL's own conversion to mode "L", so an image stored as
    grayscale and read as RGB comes back as it was stored."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        image, mask = self.dataset[index]
        return (luminance(image) if image.shape[0] == 3 else image), mask


def luminance(image):
    """uint8 3 x H x W RGB -> uint8 1 x H x W, as PIL converts RGB to "L" (ITU-R 601-2)."""
    import torch

    r, g, b = image.to(torch.int32)
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).to(torch.uint8)[None]


def _open(config: DatasetConfig, split: str, size, length, test_seed) -> Dataset:
    if config.kind == "synthetic":
        from grader.data.synthetic import SyntheticRoadScenes

        if split == "test":
            if test_seed is None:
                raise ValueError("the synthetic test split needs the secret test seed (secret_test_seed())")
            seed = test_seed
        else:
            seed = config.train_seed if split == "train" else config.val_seed
        return SyntheticRoadScenes(seed, length or DEFAULT_LENGTH[split], size)

    from grader.data.folders import open_dataset

    return open_dataset(config.kind, config.root, split, num_classes=len(config.class_names),
                        palette=config.palette, **config.options)


def export_split(dataset: Dataset, out_dir: str | Path, split: str, limit: int | None = None) -> int:
    """Write items in the generic folder layout: OUT/split/images/NNNNN.png (RGB, or L) and
    OUT/split/masks/NNNNN.png (single channel, class ids). Returns the number written."""
    from PIL import Image

    images, masks = Path(out_dir) / split / "images", Path(out_dir) / split / "masks"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    for i in range(count):
        image, mask = dataset[i]
        pixels = image.permute(1, 2, 0).numpy()
        Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).save(images / f"{i:05d}.png")
        Image.fromarray(mask.numpy().astype(np.uint8), mode="L").save(masks / f"{i:05d}.png")
    return count
