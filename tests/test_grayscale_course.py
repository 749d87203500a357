"""A grayscale course (`[dataset] channels = 1`): one-channel images on disk, a U-Net that
hard-codes one input channel (`nn.Conv2d(1, ...)`, as medical-imaging homework does). The data
check, then the student's self-check as the README writes it: captured, checked, trained and
scored on one-channel inputs. With the default three channels the same model cannot run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from grader.cli import main

SPEC = """[assignment]
id = "lesions-gray"
title = "Lesion segmentation on grayscale scans"

[dataset]
kind = "folders"
root = "data"
channels = 1
class_names = ["background", "lesion"]
palette = [[0, 0, 0], [255, 255, 255]]

[families.unet]
title = "U-Net"
input_size = 64

[contract]
input = "an N x 1 x H x W float tensor (grayscale, normalised)"
output = "N x num_classes x H x W logits"
num_classes_kwarg = "num_classes"

[contract.classes]
UNet = "__init__(self, num_classes: int)"

[[variants]]
id = "unet"
title = "U-Net"
family = "unet"
class = "UNet"

[[rubric]]
id = "unet"
marks = 10
variants = ["unet"]

[profiles.smoke]
title = "smoke: 64 px, 20 steps"
image_size = 64
batch_size = 4
steps = 20
optimizer = "adamw"
lr = 3e-3
weight_decay = 1e-4
eval_every = 10
train_images = 16
val_images = 8
test_images = 8
grid_images = 2
seed = 0
pretrained = false
separates_variants = false
"""

MODEL = """
import torch
from torch import nn


class UNet(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.mid = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.head = nn.Conv2d(16, num_classes, 1)

    def forward(self, x):
        a = self.down(x)
        return self.head(torch.cat([a, self.up(self.mid(a))], 1))
"""


def _scans(root: Path, counts: dict[str, int]) -> None:
    """Grayscale 'scans' (mode L PNGs): noise, and bright discs that are the lesions."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    for split, count in counts.items():
        for folder in ("images", "masks"):
            (root / split / folder).mkdir(parents=True)
        for i in range(count):
            mask = np.zeros((64, 64), np.uint8)
            for _ in range(rng.integers(1, 4)):
                cy, cx, r = rng.integers(10, 54), rng.integers(10, 54), rng.integers(4, 10)
                mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
            image = np.clip(rng.normal(70, 20, (64, 64)) + 120 * mask, 0, 255).astype(np.uint8)
            Image.fromarray(image, mode="L").save(root / split / "images" / f"{i:03d}.png")
            Image.fromarray(mask, mode="L").save(root / split / "masks" / f"{i:03d}.png")


@pytest.mark.slow  # the real worker and verifier, training
def test_a_grayscale_course_checks_and_trains_one_channel_models(tmp_path, capsys):
    course = tmp_path / "course"
    _scans(course / "data", {"train": 16, "val": 8, "test": 8})
    (course / "spec.toml").write_text(SPEC)
    assert main(["data", "check", "--spec", str(course / "spec.toml")]) == 0
    assert "2 of 2 classes present" in capsys.readouterr().out

    student = tmp_path / "student"
    student.mkdir()
    (student / "models.py").write_text(MODEL)
    out = tmp_path / "out"
    code = main(["check", str(student), "--spec", str(course / "spec.toml"), "--profile", "smoke", "--out", str(out),
                 "--no-pdf"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    variant = json.loads((out / "results.json").read_text())["variants"][0]
    assert variant["program"]["measured_in"] == "captured program"
    checks = {c["id"]: c for c in variant["checks"]}
    assert checks["forward_shape"]["details"]["input_shape"] == [2, 1, 64, 64]
    assert checks["forward_shape"]["message"] == ("output 2x2x64x64 as expected; also right for 1x1x32x96, "
                                                  "2x1x32x32")
    assert checks["gradients"]["status"] == "pass"
    assert checks["learns"]["status"] == "pass", checks["learns"]["message"]
    assert variant["metrics"]["miou"] > variant["metrics"]["untrained_miou"]
    assert (out / "report.html").is_file()

    # The same course said to be RGB: the model's one-channel convolution cannot take its inputs.
    (course / "spec.toml").write_text(SPEC.replace("channels = 1\n", ""))
    assert main(["check", str(student), "--spec", str(course / "spec.toml"), "--checks-only", "--out",
                 str(tmp_path / "rgb"), "--no-pdf"]) == 1
    forward = next(c for c in json.loads((tmp_path / "rgb" / "results.json").read_text())["variants"][0]["checks"]
                   if c["id"] == "forward_shape")
    assert forward["status"] == "fail" and "to have 1 channels, but got 3 channels" in forward["message"]
