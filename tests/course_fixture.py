"""A small course for the tests of a second assignment: the shipped Cityscapes U-Net spec
(grader/spec/cityscapes_unet.toml) copied with a generated dataset in the Cityscapes folder
layout and a shortened smoke profile, its reference solution, and two student U-Nets.

    make_course(root) -> root/course/{spec.toml, reference/, data/}, root/submissions/{alice,bob}/

alice's U-Net is correct but runs only from 144 px up (unpadded 5x5 convolutions at its 1/16
bottleneck), so it passes only if the probes follow the spec's sizes; bob's has no skip
connections (a U-Net that is not one)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from grader.shared.resources import DEFAULT_SPEC, bundled_root

SPEC = DEFAULT_SPEC.parent / "cityscapes_unet.toml"
# labelIds drawn in the scenes (cityscapesscripts' ids): sky, building, vegetation, road,
# sidewalk, car, pole; 0 and 1 (unlabeled, ego vehicle) map to 255 and are ignored.
SKY, BUILDING, VEGETATION, ROAD, SIDEWALK, CAR, POLE, EGO = 23, 11, 21, 7, 8, 26, 17, 1
TRAIN_ID = {7: 0, 8: 1, 11: 2, 17: 5, 21: 8, 23: 10, 26: 13}

TINY_PROFILE = """[profiles.smoke]
title = "smoke, shortened for the tests: 160 px, 12 steps"
image_size = 160
batch_size = 2
steps = 12
optimizer = "adamw"
lr = 3e-3
weight_decay = 1e-4
eval_every = 6
train_images = 8
val_images = 4
test_images = 4
grid_images = 2
seed = 0
pretrained = false
separates_variants = false
"""


def course_spec_text(root: str = "data", reference: str = "reference", input_size: int = 192) -> str:
    """The shipped spec with the test's data root, reference folder, a smaller input size for
    the checks (192 px instead of 256: still above what alice's U-Net needs at input_size - 32)
    and the shortened profile."""
    text = SPEC.read_text().replace("input_size = 256", f"input_size = {input_size}")
    text = text.replace('root = "/data/cityscapes"', f'root = "{root}"')
    text = text.replace('reference = "courses/cityscapes_unet"', f'reference = "{reference}"')
    text = text[: text.index("[profiles.smoke]")] + TINY_PROFILE + text[text.index("[policy]"):]
    return text


def _scene(rng: np.random.Generator, height: int = 64, width: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """A street-like labelIds mask and its image: each class its Cityscapes colour plus noise."""
    from grader.spec import load_spec

    palette = load_spec(SPEC).palette
    ids = np.full((height, width), SKY, np.uint8)
    horizon = int(rng.integers(height // 4, height // 2))
    ids[horizon:, :] = BUILDING
    split = int(rng.integers(width // 4, 3 * width // 4))
    ids[horizon:, split:] = VEGETATION
    road = int(rng.integers(horizon + 6, height - 10))
    ids[road:, :] = ROAD
    ids[road:road + 3, :] = SIDEWALK
    for _ in range(int(rng.integers(1, 3))):
        x = int(rng.integers(0, width - 24))
        ids[road - 8:road + 4, x:x + 20] = CAR
    x = int(rng.integers(4, width - 4))
    ids[horizon - 6:road, x:x + 2] = POLE
    ids[height - 3:, :] = EGO
    image = np.zeros((height, width, 3), np.float32)
    for label_id, train_id in TRAIN_ID.items():
        image[ids == label_id] = palette[train_id]
    image += rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), ids


def make_cityscapes(root: Path, counts: dict[str, int] | None = None, seed: int = 0) -> Path:
    """ROOT/leftImg8bit/SPLIT/CITY/*_leftImg8bit.png and ROOT/gtFine/SPLIT/CITY/*_gtFine_labelIds.png."""
    rng = np.random.default_rng(seed)
    for split, count in (counts or {"train": 8, "val": 4, "test": 4}).items():
        for i in range(count):
            city = ("aachen", "bremen")[i % 2]
            stem = f"{city}_{i:06d}_000019"
            image, ids = _scene(rng)
            for folder, name, array in (("leftImg8bit", f"{stem}_leftImg8bit.png", image),
                                        ("gtFine", f"{stem}_gtFine_labelIds.png", ids)):
                path = root / folder / split / city / name
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(path)
    return root


ALICE = '''"""A U-Net whose bottleneck uses unpadded 5x5 convolutions: it needs 144 px or more."""
import torch
import torch.nn.functional as F
from torch import nn


def block(i, o):
    return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(),
                         nn.Conv2d(o, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU())


class UNet(nn.Module):
    def __init__(self, num_classes, in_channels=3, width=8):
        super().__init__()
        w = [width * 2 ** i for i in range(5)]
        self.down = nn.ModuleList([block(in_channels, w[0]), block(w[0], w[1]), block(w[1], w[2]), block(w[2], w[3])])
        self.bottleneck = nn.Sequential(nn.Conv2d(w[3], w[4], 5), nn.ReLU(), nn.Conv2d(w[4], w[4], 5), nn.ReLU())
        self.up = nn.ModuleList([block(w[4] + w[3], w[3]), block(w[3] + w[2], w[2]), block(w[2] + w[1], w[1]),
                                 block(w[1] + w[0], w[0])])
        self.head = nn.Conv2d(w[0], num_classes, 1)

    def forward(self, x):
        skips = []
        for down in self.down:
            x = down(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for up, skip in zip(self.up, reversed(skips)):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = up(torch.cat([skip, x], dim=1))
        return self.head(x)
'''

BOB = '''"""A "U-Net" whose decoder never sees the encoder's features: no skip connections."""
import torch.nn.functional as F
from torch import nn


def block(i, o):
    return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(),
                         nn.Conv2d(o, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU())


class UNet(nn.Module):
    def __init__(self, num_classes, in_channels=3, width=8):
        super().__init__()
        w = [width * 2 ** i for i in range(5)]
        self.down = nn.ModuleList([block(in_channels, w[0]), block(w[0], w[1]), block(w[1], w[2]), block(w[2], w[3])])
        self.bottleneck = block(w[3], w[4])
        self.up = nn.ModuleList([block(w[4], w[3]), block(w[3], w[2]), block(w[2], w[1]), block(w[1], w[0])])
        self.head = nn.Conv2d(w[0], num_classes, 1)

    def forward(self, x):
        for down in self.down:
            x = F.max_pool2d(down(x), 2)
        x = self.bottleneck(x)
        for up in self.up:
            x = up(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
        return self.head(x)
'''


def make_course(root: Path) -> Path:
    """root/course/{spec.toml, reference/, data/} and root/submissions/{alice,bob}/unet.py."""
    course = root / "course"
    make_cityscapes(course / "data")
    shutil.copytree(bundled_root() / "courses" / "cityscapes_unet", course / "reference",
                    ignore=shutil.ignore_patterns("__pycache__"))
    # The shipped reference at width 8 instead of 32 (0.49M parameters): the same U-Net, cheap
    # enough to be graded six times in a test on two CPU cores.
    code = course / "reference" / "unet.py"
    code.write_text(code.read_text().replace("base_channels: int = 32", "base_channels: int = 8"))
    (course / "spec.toml").write_text(course_spec_text())
    for name, code in (("alice", ALICE), ("bob", BOB)):
        (root / "submissions" / name).mkdir(parents=True)
        (root / "submissions" / name / "unet.py").write_text(code)
    return course


def doc_commands(doc: Path) -> list[list[str]]:
    """The `segrade` commands of a doc's bash blocks, as argument lists (without the program)."""
    import shlex

    blocks = re.findall(r"```bash\n(.*?)```", doc.read_text(), flags=re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith(".venv/bin/segrade ")]
