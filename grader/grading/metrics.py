"""Segmentation metrics, by the convention of BRIEF §5.

One int64 C x C confusion matrix (rows: ground truth, columns: prediction) is
accumulated over the whole evaluation set; pixels labelled IGNORE_INDEX do not
count. IoU_c = TP / (TP + FP + FN); a class with neither ground truth nor
prediction is NaN and left out; mIoU is the nanmean over all classes, class 0
included. Never average per batch or per image: that is a different number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from grader.data import IGNORE_INDEX


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """C x C int64 counts for one batch. `pred` holds class ids (N x H x W) or logits
    (N x C x H x W, reduced by argmax); `target` holds class ids or ignore_index."""
    if pred.dim() == target.dim() + 1:
        pred = pred.argmax(dim=1)
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} does not match the labels' {tuple(target.shape)}")
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    valid = target != ignore_index
    pred, target = pred[valid], target[valid]
    for name, ids in (("label", target), ("prediction", pred)):
        if ids.numel() and (ids.min() < 0 or ids.max() >= num_classes):
            raise ValueError(f"{name} ids must lie in 0..{num_classes - 1} (or be {ignore_index} for labels); "
                             f"found {int(ids.min())}..{int(ids.max())}")
    counts = torch.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


class ConfusionMatrix:
    """Accumulates one confusion matrix over an evaluation set, batch by batch."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        self.matrix += confusion_matrix(pred.detach().cpu(), target.detach().cpu(), self.num_classes,
                                        self.ignore_index)

    def compute(self) -> SegmentationScores:
        return scores_from_confusion(self.matrix)


@dataclass(frozen=True)
class SegmentationScores:
    per_class_iou: tuple[float, ...]  # NaN where a class is neither labelled nor predicted
    miou: float
    pixel_accuracy: float
    mean_class_accuracy: float
    frequency_weighted_iou: float

    def to_json(self) -> dict:
        """NaN (absent class) becomes null, which JSON can hold."""
        clean = json_float
        return {"per_class_iou": [clean(v) for v in self.per_class_iou], "miou": clean(self.miou),
                "pixel_accuracy": clean(self.pixel_accuracy), "mean_class_accuracy": clean(self.mean_class_accuracy),
                "frequency_weighted_iou": clean(self.frequency_weighted_iou)}


def json_float(value: float | None) -> float | None:
    """A number for results.json: rounded, and null when missing, NaN or infinite (strict
    JSON holds neither)."""
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def scores_from_confusion(matrix: torch.Tensor) -> SegmentationScores:
    m = matrix.double()
    tp = m.diagonal()
    labelled = m.sum(dim=1)   # TP + FN
    predicted = m.sum(dim=0)  # TP + FP
    union = labelled + predicted - tp
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    iou = torch.where(union > 0, tp / union, nan)
    class_accuracy = torch.where(labelled > 0, tp / labelled, nan)
    total = labelled.sum()
    frequency = labelled / total if total > 0 else torch.zeros_like(labelled)
    seen = labelled > 0
    return SegmentationScores(
        per_class_iou=tuple(iou.tolist()),
        miou=_nanmean(iou),
        pixel_accuracy=float(tp.sum() / total) if total > 0 else float("nan"),
        mean_class_accuracy=_nanmean(class_accuracy),
        frequency_weighted_iou=float((frequency[seen] * iou[seen]).sum()) if total > 0 else float("nan"),
    )


def _nanmean(values: torch.Tensor) -> float:
    present = values[~values.isnan()]
    return float(present.mean()) if present.numel() else float("nan")
