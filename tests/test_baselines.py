"""Baselines, and the property of the synthetic data they exist to show: colour alone does
not give the class away, so a per-pixel colour lookup scores far below a trained U-Net (the
U-Net's figure is recorded with the scenes' fingerprint and re-measured when they change)."""

import hashlib
import importlib.util
import os

import torch

from grader.data.baselines import fit_colour_lookup, score_colour_lookup, score_majority
from grader.data.synthetic import SyntheticRoadScenes
from grader.data.transforms import TransformedDataset, eval_transform, train_transform
from grader.grading.metrics import ConfusionMatrix
from grader.shared.resources import reference_dir
from grader.measure.train import TrainConfig, predict, train

C = 13


def toy(n, seed):
    """Images whose colour is a function of the class: a lookup must be perfect here."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        mask = torch.randint(0, 4, (8, 8), generator=g)
        image = torch.stack([mask * 60, 255 - mask * 60, torch.full_like(mask, 7)]).to(torch.uint8)
        items.append((image, mask))
    return items


def test_colour_lookup_is_perfect_when_colour_is_the_class():
    table = fit_colour_lookup(toy(5, 0), C)
    scores = score_colour_lookup(table, toy(5, 1), C)
    assert scores.miou == 1.0 and scores.pixel_accuracy == 1.0


def test_majority_baseline_predicts_the_most_frequent_class():
    train_items = [(None, torch.tensor([[2, 2, 2, 1]]))]
    scores = score_majority(train_items, [(None, torch.tensor([[2, 1]]))], C)
    assert scores.per_class_iou[2] == 0.5 and scores.per_class_iou[1] == 0.0
    assert scores.miou == 0.25


# The trained U-Net's side is a property of the data: measured on the scenes with this
# fingerprint (2026-12-05, 2 cores: U-Net 0.344 with one thread, 0.331 with two; the lookup
# 0.216), it is re-measured (250 training steps, ~35 s) whenever the scenes change, or with
# SEGRADE_RETRAIN_BASELINE=1. The lookup's side is measured every run.
MEASURED_ON = "33cc58369ccb3e5052d9417f4a2f06db36b1c90f6423feaf309f49bff64f3670"
MEASURED_UNET_MIOU = 0.331


def _fingerprint(*datasets) -> str:
    digest = hashlib.sha256()
    for dataset in datasets:
        for i in range(len(dataset)):
            image, mask = dataset[i]
            digest.update(image.numpy().tobytes())
            digest.update(mask.numpy().tobytes())
    return digest.hexdigest()


def _trained_unet_miou(raw_train, raw_val) -> float:
    # 48 px and 250 steps (was 64 px and 350): at 32 px the U-Net reached only 0.315 against 0.209.
    spec = importlib.util.spec_from_file_location("reference_unet", reference_dir() / "unet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    model = module.UNet(C, base_channels=16)
    train(model, TransformedDataset(raw_train, train_transform(48)), TrainConfig(steps=250, batch_size=16, lr=3e-3))
    val = TransformedDataset(raw_val, eval_transform(48))
    cm = ConfusionMatrix(C)
    cm.update(predict(model, val), torch.stack([mask for _, mask in val]))
    return cm.compute().miou


def test_colour_lookup_scores_far_below_a_trained_unet():
    raw_train, raw_val = SyntheticRoadScenes(101, 400, 48), SyntheticRoadScenes(102, 100, 48)
    colour = score_colour_lookup(fit_colour_lookup(raw_train, C), raw_val, C).miou
    assert colour < 0.3
    if _fingerprint(raw_train, raw_val) == MEASURED_ON and not os.environ.get("SEGRADE_RETRAIN_BASELINE"):
        unet = MEASURED_UNET_MIOU
    else:
        unet = _trained_unet_miou(raw_train, raw_val)
    print(f"colour lookup mIoU {colour:.3f}, U-Net (250 steps, width 16, 48 px) mIoU {unet:.3f}")
    assert unet > colour + 0.1
