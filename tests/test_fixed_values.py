"""What a captured program computes with that no training changes (grader.verifier.fixed), on
programs exported here: a network smuggled in as constants is counted, what honest models hold
(BatchNorm statistics, a fixed bilinear kernel, normalisation constants, a frozen backbone) is not."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from grader.grading.score import FIXED_VALUES_LIMIT
from grader.measure.captured import as_model
from grader.verifier.fixed import fixed_values, information


def _bilinear(channels: int, k: int) -> torch.Tensor:
    centre = (k - 1) / 2 if k % 2 else k / 2 - 0.5
    og = torch.arange(k, dtype=torch.float32)
    filt = 1 - (og - centre).abs() / ((k + 1) // 2)
    weight = torch.zeros(channels, channels, k, k)
    weight[range(channels), range(channels)] = filt[:, None] * filt[None, :]
    return weight


class Honest(nn.Module):
    """BatchNorm, normalisation constants, a frozen bilinear upsampling and a frozen 'backbone'."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.backbone = nn.Conv2d(3, 64, 3, padding=1)
        self.backbone.requires_grad_(False)
        self.down = nn.Sequential(nn.Conv2d(64, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.score = nn.Conv2d(32, 13, 1)
        self.up = nn.ConvTranspose2d(13, 13, 4, stride=2, padding=1, bias=False)
        self.up.weight.data.copy_(_bilinear(13, 4))
        self.up.requires_grad_(False)

    def forward(self, x):
        return self.up(self.score(self.down(self.backbone(x - self.mean))))


class Smuggler(Honest):
    """Honest's model, and beside it a network kept in plain tensors (lifted as constants) that
    takes over once the trainable parameters drift from their initial values."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w1 = torch.randn(128, 3, 3, 3, generator=g)
        self.w2 = torch.randn(13, 128, 3, 3, generator=g)
        self.start = self.score.weight.detach().clone()

    def forward(self, x):
        honest = super().forward(x)
        smuggled = F.conv2d(F.relu(F.conv2d(x, self.w1, padding=1)), self.w2, padding=1)
        moved = ((self.score.weight - self.start).abs().sum() > 0).to(x.dtype)
        return honest * (1 - moved) + smuggled * moved


def _program(model):
    model.train()
    return torch.export.export(model, (torch.randn(2, 3, 64, 64),), strict=False)


def test_a_network_kept_in_constants_is_counted_and_what_honest_models_hold_is_not():
    torch.manual_seed(0)
    honest = _program(Honest())
    counted = fixed_values((honest, honest), as_model(honest, honest), {"backbone.weight", "backbone.bias"})
    # the mean (3 values) and the bilinear kernel (4 x 4) only: BatchNorm statistics and the backbone are not counted
    assert counted["values"] == 3 + 16, counted
    smuggler = _program(Smuggler())
    counted = fixed_values((smuggler, smuggler), as_model(smuggler, smuggler), {"backbone.weight", "backbone.bias"})
    assert counted["values"] > FIXED_VALUES_LIMIT, counted
    assert counted["largest"][0] == "w2 (14,976 values)", counted
    # the frozen backbone, unnamed as one, counts its values
    counted = fixed_values((honest, honest), as_model(honest, honest), set())
    assert counted["values"] == 3 + 16 + 64 * 3 * 9 + 64


def test_a_tensor_counts_its_information_not_its_size():
    assert information(torch.zeros(1000, 1000)) == 1
    assert information(_bilinear(21, 64)) == 64 * 64
    assert information(torch.randn(10, 10)) == 100
    assert information(torch.tensor(7)) == 0   # num_batches_tracked


class _OwnFc7(nn.Module):
    """A frozen FCN whose fc7 is its own, randomly initialised, frozen with the backbone."""

    def __init__(self):
        super().__init__()
        self.fc7 = nn.Conv2d(4096, 4096, 1)
        self.fc7.requires_grad_(False)
        self.score = nn.Conv2d(4096, 13, 1)

    def forward(self, x):
        return self.score(self.fc7(x))


def test_an_fcn_s_own_frozen_fc7_is_not_counted_in_an_fcn():
    program = torch.export.export(_OwnFc7(), (torch.randn(1, 4096, 2, 2),), strict=False)
    model = as_model(program, program)
    assert fixed_values((program,), model, set(), fcn=True)["values"] == 0
    assert fixed_values((program,), model, set())["values"] == 4096 * 4096 + 4096
