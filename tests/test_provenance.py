"""Which tensors of a captured program are its VGG backbone (grader.verifier.provenance), fc6/fc7
included: the verifier never sees the student's VGG instance, so a layer copied from it is
known by the grader's fingerprint (random init) or by ImageNet's values.

One real FCN-32s on torchvision's VGG16 is built in the worker's way and captured once.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import vgg16

from grader.measure import probes
from grader.measure.captured import as_model
from grader.verifier.load import ProgramLimits, load_program
from grader.verifier.provenance import _by_value, identify
from grader.worker.capture import capture

SEED = 7


class FCN32s(nn.Module):
    """VGG16's features, fc6/fc7 copied into convolutions (as the assignment asks), or a 7x7
    head of its own when `own_head`."""

    def __init__(self, num_classes: int = 3, own_head: bool = False) -> None:
        super().__init__()
        vgg = vgg16()
        self.features = vgg.features
        self.fc6 = nn.Conv2d(512, 4096, 7, padding=3)
        self.fc7 = nn.Conv2d(4096, 4096, 1)
        if not own_head:
            with torch.no_grad():
                self.fc6.weight.copy_(vgg.classifier[0].weight.view(4096, 512, 7, 7))
                self.fc7.weight.copy_(vgg.classifier[3].weight.view(4096, 4096, 1, 1))
        self.score = nn.Conv2d(4096, num_classes, 1)

    def forward(self, x):
        size = x.shape[-2:]
        y = self.score(torch.relu(self.fc7(torch.relu(self.fc6(self.features(x))))))
        return nn.functional.interpolate(y, size=size, mode="bilinear")


def _captured(folder, own_head: bool):
    assert probes.install_vgg_recorder()
    with probes.recording_vggs(SEED):   # the worker's build (grader.worker.__main__)
        model = FCN32s(own_head=own_head)
    info = capture(model, 64, folder, "fcn")
    assert info["ok"], info
    entry = info["programs"]["eval"]
    program = load_program(folder / entry["file"], entry["sha256"], ProgramLimits())
    return program, as_model(program, program)


@pytest.fixture(scope="module")
def copied(tmp_path_factory):
    return _captured(tmp_path_factory.mktemp("copied"), own_head=False)


@pytest.mark.slow  # a real VGG16 built (and captured)
def test_fc6_and_fc7_copied_from_the_constructor_s_vgg_are_backbone(copied):
    program, model = copied
    found = identify(program, model, None, SEED)
    parts = set(found["tensors"].values())
    assert {"fc6", "fc7", "conv1_1", "conv5_3"} <= parts, parts
    assert found["kind"] == "VGG16" and found["how"] == "torchvision", found
    assert found["fc_from_vgg"]
    assert "fc6.weight" in found["tensors"] and "score.weight" not in found["tensors"]
    # 13 convolutions and fc6/fc7, weight and bias each: the 30 tensors of the in-process path
    assert len(found["tensors"]) == 30, sorted(found["tensors"])


@pytest.mark.slow  # a real VGG16 built (and captured)
def test_without_the_build_s_seed_the_copies_are_not_recognised(copied):
    """The fingerprint is what proves the copy: another seed's marks do not match, and only the
    layers inside the VGG module count (the convolutions)."""
    program, model = copied
    found = identify(program, model, None, SEED + 1)
    assert "fc6" not in set(found["tensors"].values())
    assert len(found["tensors"]) == 26


@pytest.mark.slow  # a real VGG16 built (and captured)
def test_a_7x7_head_of_the_student_s_own_is_not_fc6(tmp_path):
    program, model = _captured(tmp_path, own_head=True)
    found = identify(program, model, None, SEED)
    assert not {"fc6", "fc7"} & set(found["tensors"].values())
    assert len(found["tensors"]) == 26 and not found["fc_from_vgg"]


def test_imagenet_values_with_noise_added_are_still_imagenet_s():
    torch.manual_seed(0)
    pretrained = torch.randn(64, 3, 3, 3)
    imagenet = {"features.0.weight": (pretrained, "conv1_1")}
    near = pretrained + 1e-5 * torch.randn_like(pretrained)
    far = pretrained + 0.1 * torch.randn_like(pretrained)
    found, was_imagenet = _by_value([("a", near), ("b", far), ("c", torch.randn(64, 3, 3, 3))], imagenet, None)
    assert found == {"a": "conv1_1"} and was_imagenet


@pytest.mark.slow  # a real VGG16 built (and captured)
def test_a_marked_vgg_keeps_torchvision_s_spread():
    """The fingerprint replaces initial values with values of the same spread, so training is
    unchanged in distribution."""
    with probes.recording_vggs(SEED):
        marked = vgg16()
    plain = vgg16()
    for m, p in ((marked.features[28], plain.features[28]), (marked.classifier[0], plain.classifier[0])):
        head = m.weight.reshape(-1)[:probes.FINGERPRINT_LENGTH]
        assert torch.equal(head, probes.fingerprint("conv5_3" if m is marked.features[28] else "fc6", SEED))
        assert abs(head.std().item() / p.weight.std().item() - 1) < 0.05


class BNFCN32s(nn.Module):
    """vgg16_bn's features through torchvision's IntermediateLayerGetter, as its
    segmentation models take them (tests/data/submissions: s05-style submissions)."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        from torchvision.models import vgg16_bn
        from torchvision.models._utils import IntermediateLayerGetter

        self.backbone = IntermediateLayerGetter(vgg16_bn().features, {"43": "pool5"})
        self.score = nn.Conv2d(512, num_classes, 1)

    def forward(self, x):
        y = self.score(self.backbone(x)["pool5"])
        return nn.functional.interpolate(y, size=x.shape[-2:], mode="bilinear")


@pytest.mark.slow  # a real VGG16-BN built (and captured)
def test_a_vgg16_bn_backbone_is_named_vgg16_bn(tmp_path):
    """The worker says VGG16-BN (grader.measure.probes); the verifier said VGG16."""
    assert probes.install_vgg_recorder()
    with probes.recording_vggs(SEED):
        model = BNFCN32s()
    info = capture(model, 64, tmp_path, "fcn")
    assert info["ok"], info
    entry = info["programs"]["eval"]
    program = load_program(tmp_path / entry["file"], entry["sha256"], ProgramLimits())
    found = identify(program, as_model(program, program), None, SEED)
    assert found["kind"] == "VGG16-BN", found
    assert "conv1_1 BatchNorm" in set(found["tensors"].values())
