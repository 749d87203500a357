"""grader.grading.metrics against torchmetrics' MulticlassJaccardIndex (the test oracle), plus the
hand-checkable cases of BRIEF §5: absent classes, ignored pixels, dataset-level accumulation."""

import math

import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from grader.grading.metrics import ConfusionMatrix, confusion_matrix, scores_from_confusion

C = 13


def oracle_iou(preds, targets, ignore_index=255):
    jaccard = MulticlassJaccardIndex(num_classes=C, average="none", ignore_index=ignore_index)
    for p, t in zip(preds, targets):
        jaccard.update(p, t)
    return jaccard.compute()


def structured_batch(generator, n=4, size=48):
    """Blocky label maps (like segmentation) and predictions that are right most of the time."""
    coarse = torch.randint(0, C, (n, size // 8, size // 8), generator=generator)
    target = coarse.repeat_interleave(8, 1).repeat_interleave(8, 2)
    noise = torch.rand(target.shape, generator=generator) < 0.2
    pred = torch.where(noise, torch.randint(0, C, target.shape, generator=generator), target)
    return pred, target


@pytest.mark.parametrize("structured", [False, True])
def test_matches_torchmetrics_over_a_dataset(structured):
    g = torch.Generator().manual_seed(0)
    preds, targets = [], []
    for _ in range(5):
        if structured:
            p, t = structured_batch(g)
        else:
            p, t = torch.randint(0, C, (3, 32, 40), generator=g), torch.randint(0, C, (3, 32, 40), generator=g)
        t[:, :4] = 255  # ignored rows
        preds.append(p)
        targets.append(t)
    cm = ConfusionMatrix(C)
    for p, t in zip(preds, targets):
        cm.update(p, t)
    scores = cm.compute()
    expected = oracle_iou(preds, targets)
    torch.testing.assert_close(torch.tensor(scores.per_class_iou, dtype=torch.float32), expected)
    assert scores.miou == pytest.approx(float(expected.mean()), abs=1e-6)

    accuracy = MulticlassAccuracy(num_classes=C, average="micro", ignore_index=255)
    class_accuracy = MulticlassAccuracy(num_classes=C, average="macro", ignore_index=255)
    for p, t in zip(preds, targets):
        accuracy.update(p, t)
        class_accuracy.update(p, t)
    assert scores.pixel_accuracy == pytest.approx(float(accuracy.compute()), abs=1e-6)
    assert scores.mean_class_accuracy == pytest.approx(float(class_accuracy.compute()), abs=1e-6)


def test_absent_classes_are_nan_and_left_out():
    target = torch.tensor([[0, 0, 1, 1]])
    pred = torch.tensor([[0, 1, 1, 1]])
    scores = scores_from_confusion(confusion_matrix(pred, target, C))
    iou = scores.per_class_iou
    assert iou[0] == pytest.approx(1 / 2) and iou[1] == pytest.approx(2 / 3)
    assert all(math.isnan(v) for v in iou[2:])
    assert scores.miou == pytest.approx((1 / 2 + 2 / 3) / 2)  # not divided by 13, not counting absent as 1
    # torchmetrics agrees when told to skip absent classes the same way
    oracle = MulticlassJaccardIndex(num_classes=C, average="none", zero_division=float("nan"))
    assert float(oracle(pred, target).nanmean()) == pytest.approx(scores.miou)


def test_predicted_but_absent_class_counts_as_zero():
    target = torch.tensor([[0, 0, 0, 0]])
    pred = torch.tensor([[0, 0, 0, 5]])
    scores = scores_from_confusion(confusion_matrix(pred, target, C))
    assert scores.per_class_iou[5] == 0.0
    assert scores.miou == pytest.approx((3 / 4 + 0) / 2)


def test_ignored_pixels_do_not_count_and_logits_are_accepted():
    target = torch.tensor([[[0, 255], [1, 1]]])
    logits = torch.zeros(1, C, 2, 2)
    logits[0, 0, 0, 0] = logits[0, 7, 0, 1] = logits[0, 1, 1, 0] = logits[0, 1, 1, 1] = 5
    scores = scores_from_confusion(confusion_matrix(logits, target, C))
    assert scores.miou == 1.0 and scores.pixel_accuracy == 1.0
    assert math.isnan(scores.per_class_iou[7])


def test_dataset_level_is_not_the_mean_of_batches():
    # Batch 1 has class 1 everywhere and predicts it; batch 2 has a small class-2 object missed.
    t1, p1 = torch.ones(1, 10, 10, dtype=torch.long), torch.ones(1, 10, 10, dtype=torch.long)
    t2, p2 = torch.ones(1, 10, 10, dtype=torch.long), torch.ones(1, 10, 10, dtype=torch.long)
    t2[0, 0, 0] = 2
    cm = ConfusionMatrix(C)
    cm.update(p1, t1)
    cm.update(p2, t2)
    dataset_miou = cm.compute().miou
    per_batch = [scores_from_confusion(confusion_matrix(p, t, C)).miou for p, t in ((p1, t1), (p2, t2))]
    assert dataset_miou == pytest.approx((199 / 200 + 0) / 2)
    assert sum(per_batch) / 2 != pytest.approx(dataset_miou)


def test_frequency_weighted_iou():
    target = torch.tensor([[0, 0, 0, 1]])
    pred = torch.tensor([[0, 0, 1, 1]])
    scores = scores_from_confusion(confusion_matrix(pred, target, C))
    assert scores.frequency_weighted_iou == pytest.approx(0.75 * (2 / 3) + 0.25 * (1 / 2))


def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(ValueError, match="does not match"):
        confusion_matrix(torch.zeros(1, 4, 4, dtype=torch.long), torch.zeros(1, 4, 5, dtype=torch.long), C)
    with pytest.raises(ValueError, match="label ids must lie in 0..12"):
        confusion_matrix(torch.zeros(1, 2, dtype=torch.long), torch.tensor([[0, 13]]), C)
    with pytest.raises(ValueError, match="prediction ids"):
        confusion_matrix(torch.tensor([[0, -1]]), torch.tensor([[0, 1]]), C)


def test_to_json_turns_nan_into_null():
    data = scores_from_confusion(confusion_matrix(torch.tensor([[0]]), torch.tensor([[0]]), C)).to_json()
    assert data["per_class_iou"][0] == 1.0 and data["per_class_iou"][1] is None
