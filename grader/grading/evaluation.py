"""Standardised evaluation, on the grading side of the trust boundary.

`prepare_data` renders (or reads) the profile's splits once per image size and writes
what the worker may see into a folder it can read: training images with their masks,
validation images and test images, without their labels. The validation and test
labels stay in this process. The worker streams predictions back (`encode` /
`decode_predictions`); `Evaluator` turns them into every metric, curve and the
prediction grid. Nothing the worker says is trusted beyond its own predictions.
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from grader.data.sources import open_split
from grader.grading.metrics import ConfusionMatrix, SegmentationScores, json_float
from grader.shared.protocol import MAX_PREDICTION_BYTES, Message, Predictions
from grader.spec import Assignment

# Largest prediction message accepted from the worker, before and after decompression.


class PredictionError(ValueError):
    """The worker sent predictions that are not N x H x W class ids for the requested images."""


@dataclass
class SplitData:
    images: torch.Tensor          # uint8 N x C x H x W (C: the spec's channels, 3 or 1)
    masks: torch.Tensor           # uint8 N x H x W (class ids, 255 ignored)


@dataclass
class PreparedData:
    """The splits at each image size. Only `folder` is shown to the worker.

    `also_val`: the final predictions are scored on the public validation split too, from the
    same training (`segrade bands` on real data: the test band and the val band from one run per
    seed). The worker's test.pt then holds the test images followed by the validation images a
    self-check scores (splits[size]["val_scored"]); the worker does not know where one ends."""

    folder: Path
    sizes: dict[str, int]                     # family -> image size
    splits: dict[int, dict[str, SplitData]]   # size -> split -> data (labels included: parent only)
    fingerprint: str                          # sha256 of the training data (images and masks, every size)
    test_source: str                          # how the test split was made (without its seed)
    evaluation: str = ""                      # the distribution the final mIoU is measured on (bands.BandIdentity)
    also_val: bool = False                    # the validation split is scored too (splits[size]["val_scored"])
    val_evaluation: str = ""                  # with also_val: the validation split's distribution, as a self-check's

    def worker_paths(self) -> dict[str, str]:
        return {family: str(self.folder / str(size)) for family, size in self.sizes.items()}

    def scored(self, size: int) -> list[tuple[str, SplitData]]:
        """The parts of the final predictions at `size`, in the order test.pt holds them."""
        parts = [("test", self.splits[size]["test"])]
        return parts + [("val", self.splits[size]["val_scored"])] if self.also_val else parts

    @property
    def test_is_val(self) -> bool:
        """Whether the final score's images are the validation images (a self-check), at every size."""
        return all(s["val"].images.shape == s["test"].images.shape and torch.equal(s["val"].images, s["test"].images)
                   for s in self.splits.values())


def _subset(dataset, count: int) -> list[int]:
    """`count` indices spread evenly over the dataset: real frames are sequential, so the
    first N would all come from one drive."""
    n = len(dataset)
    if count >= n:
        return list(range(n))
    return sorted({int(i) for i in torch.linspace(0, n - 1, count).round().tolist()})


def _load_split(assignment: Assignment, split: str, size: int, count: int, test_seed: int | None) -> SplitData:
    dataset = open_split(assignment.dataset, split, size=size, length=count, test_seed=test_seed)
    images, masks = [], []
    for i in _subset(dataset, count):
        image, mask = dataset[i]
        if image.shape[-2:] != (size, size):  # real data keeps its own size
            image = F.interpolate(image[None].float(), size=(size, size), mode="bilinear", antialias=True,
                                  align_corners=False)[0].round().clamp(0, 255).to(torch.uint8)
            mask = F.interpolate(mask[None, None].float(), size=(size, size), mode="nearest-exact")[0, 0]
        images.append(image.to(torch.uint8))
        masks.append(mask.to(torch.uint8))
    if not images:
        raise ValueError(f"the {split} split of the {assignment.dataset.kind} dataset is empty")
    return SplitData(torch.stack(images), torch.stack(masks))


def prepare_data(assignment: Assignment, sizes: dict[str, int], counts: dict[str, int], folder: Path,
                 test_seed: int | None, evaluation_split: str = "test", also_val: bool = False) -> PreparedData:
    """Render or read train/val/test at every size in `sizes` (family -> px), `counts`
    images per split, and write the worker's view under `folder/<size>/`: train.pt
    (images and masks), val.pt and test.pt (images only). World-readable, so a worker
    running as another user can read it; nothing in it is secret but the test images.

    `evaluation_split="val"` (a student's self-check: no hidden labels on their machine)
    scores the final model on the public validation split instead of the hidden test split.
    `also_val` (with the test split): the final model is scored on both, the validation split
    with the images a self-check scores (`val_scored`, see PreparedData)."""
    if evaluation_split not in ("test", "val"):
        raise ValueError(f"evaluation split {evaluation_split!r}: use 'test' (hidden labels) or 'val' (public)")
    if also_val and evaluation_split != "test":
        raise ValueError("also_val scores the validation split beside the test split: use evaluation_split='test'")
    folder.mkdir(parents=True, exist_ok=True)
    splits: dict[int, dict[str, SplitData]] = {}
    digest = hashlib.sha256()
    for size in sorted(set(sizes.values())):
        splits[size] = {split: _load_split(assignment, evaluation_split if split == "test" else split, size,
                                           counts[split], test_seed)
                        for split in ("train", "val", "test")}
        out = folder / str(size)
        out.mkdir(exist_ok=True)
        train = splits[size]["train"]
        torch.save({"images": train.images, "masks": train.masks}, out / "train.pt")
        torch.save({"images": splits[size]["val"].images}, out / "val.pt")
        final = splits[size]["test"].images
        if also_val:   # the images a self-check scores: its val split at max(val, test) images
            scored = splits[size]["val"] if counts["val"] >= counts["test"] else \
                _load_split(assignment, "val", size, counts["test"], None)
            splits[size]["val_scored"] = scored
            final = torch.cat([final, scored.images])
        torch.save({"images": final}, out / "test.pt")
        digest.update(train.images.numpy().tobytes())
        digest.update(train.masks.numpy().tobytes())
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return PreparedData(folder, dict(sizes), splits, digest.hexdigest(), describe_source(assignment, evaluation_split),
                        evaluation_distribution(assignment, evaluation_split, {k: v["test"] for k, v in splits.items()}),
                        also_val, evaluation_distribution(assignment, "val", {k: v["val_scored"] for k, v in
                                                                              splits.items()}) if also_val else "")


def describe_source(assignment: Assignment, split: str) -> str:
    """How the images the final model is scored on were made (the results' `test_split`)."""
    if split == "val":
        return (f"the public validation split of the {assignment.dataset.kind} dataset (self-check: the "
                "instructor's grade uses hidden test labels)")
    if assignment.dataset.kind == "synthetic":
        return "synthetic scenes from a secret seed (SEGRADE_TEST_SEED or a fresh random one)"
    return f"{assignment.dataset.kind} test split at {assignment.dataset.root}"


def evaluation_distribution(assignment: Assignment, split: str, scored: dict[int, SplitData]) -> str:
    """What the final mIoU is a sample of, as a band records it (`scored`: the images and labels
    it is measured on, per size). Synthetic scenes: the public validation split and the secret
    test split are draws from one generator (the training data's fingerprint pins its code), so
    a band measured on either applies to both. Real data: the split's own images and labels, so
    a band measured on the test split does not pass for the validation split."""
    if assignment.dataset.kind == "synthetic":
        return "synthetic scenes (validation and test splits: draws from one generator)"
    digest = hashlib.sha256()
    for size in sorted(scored):
        digest.update(scored[size].images.numpy().tobytes())
        digest.update(scored[size].masks.numpy().tobytes())
    count = len(next(iter(scored.values())).images)
    return f"{assignment.dataset.kind} {split} split ({count} images, sha256 {digest.hexdigest()[:16]})"


def decode_predictions(message: dict[str, Any], expected: tuple[int, int, int], num_classes: int) -> torch.Tensor:
    """The grading side: check and unpack what the worker sent. Ids outside the classes
    are kept out-of-range and counted as wrong by `Evaluator`, never trusted."""
    shape = tuple(message.get("shape") or ())
    if shape != tuple(expected):
        raise PredictionError(f"predictions of shape {list(shape)} for {expected[0]} images of "
                              f"{expected[1]}x{expected[2]}: the model's output must match the input size")
    data = message.get("data")
    if not isinstance(data, str) or len(data) > MAX_PREDICTION_BYTES:
        raise PredictionError("malformed predictions message")
    size = math.prod(expected)
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(base64.b64decode(data, validate=True), size + 1)
    except (ValueError, zlib.error) as exc:
        raise PredictionError(f"malformed predictions message: {exc}") from None
    if len(raw) != size:
        raise PredictionError(f"predictions message holds {len(raw)} bytes, expected {size}")
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).reshape(expected)


def score_predictions(pred: torch.Tensor, masks: torch.Tensor, num_classes: int) -> SegmentationScores:
    """Dataset-level scores; a prediction outside 0..C-1 counts as a wrong class."""
    pred = pred.long()
    target = masks.long()
    invalid = pred >= num_classes
    if invalid.any():  # wrong wherever labelled: pick a class that differs from the label
        pred = torch.where(invalid, (target + 1) % num_classes, pred)
    matrix = ConfusionMatrix(num_classes)
    matrix.update(pred, target)
    return matrix.compute()


@dataclass
class VariantCurves:
    loss_steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_miou: list[float | None] = field(default_factory=list)
    val_pixel_accuracy: list[float | None] = field(default_factory=list)
    wall_seconds: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"loss_steps": self.loss_steps, "loss": self.loss, "val_steps": self.val_steps,
                "val_miou": self.val_miou, "val_pixel_accuracy": self.val_pixel_accuracy,
                "wall_seconds": self.wall_seconds}


@dataclass
class VariantEvaluation:
    """What the grading process measured for one variant."""

    test: SegmentationScores | None = None
    untrained: SegmentationScores | None = None
    curves: VariantCurves = field(default_factory=VariantCurves)
    grid_predictions: torch.Tensor | None = None   # uint8 K x H x W on the grid images
    size: int = 0
    errors: list[str] = field(default_factory=list)
    train_seconds: float | None = None
    also: dict[str, "VariantEvaluation"] = field(default_factory=dict)  # the same predictions on another split


class Evaluator:
    """Receives the worker's messages (grader.grading.sandbox `on_message`) and scores the predictions
    against the labels it alone holds."""

    def __init__(self, data: PreparedData, families: dict[str, str], num_classes: int, grid_images: int) -> None:
        self.data = data
        self.families = families            # variant id -> family id
        self.num_classes = num_classes
        self.grid_images = grid_images
        self.variants: dict[str, VariantEvaluation] = {}
        self.split = "test"   # the split of the final scores and the grid (on_split)

    def __call__(self, message: Message) -> None:
        """One message, already checked by grader.shared.protocol (form and order); only predictions count."""
        if not isinstance(message, Predictions) or message.variant not in self.families:
            return
        vid = message.variant
        ev = self.variants.setdefault(vid, VariantEvaluation(size=self.data.sizes[self.families[vid]]))
        split_name = message.split
        parts = [("val", self.data.splits[ev.size]["val"])] if split_name == "val" else self.data.scored(ev.size)
        if split_name == "val":  # the training losses since the last message
            for loss in message.losses:
                ev.curves.loss_steps.append(len(ev.curves.loss) + 1)
                ev.curves.loss.append(json_float(loss) if loss is not None else None)
        expected = (sum(len(part.masks) for _, part in parts), *parts[0][1].masks.shape[1:])
        try:
            pred = decode_predictions({"shape": list(message.shape), "data": message.data}, expected,
                                      self.num_classes)
        except PredictionError as exc:
            ev.errors.append(f"{split_name}: {exc}")
            return
        if split_name == "val":
            scores = score_predictions(pred, parts[0][1].masks, self.num_classes)
            ev.curves.val_steps.append(message.step or 0)
            ev.curves.val_miou.append(json_float(scores.miou))
            ev.curves.val_pixel_accuracy.append(json_float(scores.pixel_accuracy))
            ev.curves.wall_seconds.append(round(message.seconds or 0.0, 2))
            return
        start = 0
        for name, part in parts:   # the test split, then (also_val) the validation split
            piece, start = pred[start:start + len(part.masks)], start + len(part.masks)
            target = ev if name == "test" else ev.also.setdefault(name, VariantEvaluation(size=ev.size))
            scores = score_predictions(piece, part.masks, self.num_classes)
            if split_name == "test_untrained":
                target.untrained = scores
            elif split_name == "test":
                target.test = scores
                target.grid_predictions = piece[: self.grid_images].clone()
                target.train_seconds = message.train_seconds or 0.0

    def on_split(self, split: str) -> "Evaluator":
        """What was measured, scored on `split` ("test", or "val" when the data scores it too):
        the same curves and errors, the final and untrained scores and the grid of that split."""
        if split == "test":
            return self
        view = Evaluator(self.data, self.families, self.num_classes, self.grid_images)
        view.split = split
        for vid, ev in self.variants.items():
            other = ev.also.get(split, VariantEvaluation(size=ev.size))
            view.variants[vid] = VariantEvaluation(test=other.test, untrained=other.untrained, curves=ev.curves,
                                                   grid_predictions=other.grid_predictions, size=ev.size,
                                                   errors=ev.errors, train_seconds=other.train_seconds)
        return view

    def grid(self, size: int) -> dict[str, torch.Tensor]:
        scored = dict(self.data.scored(size))[self.split]
        return {"images": scored.images[: self.grid_images], "masks": scored.masks[: self.grid_images]}
