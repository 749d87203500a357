"""ImageNet VGG16 weights: found offline or not, and passed to the worker when found."""

import pytest

from grader.grading.pipeline import GradeOptions, grade_submission
from grader.records.results import VariantStatus
from grader.spec import load_spec
from grader.grading.weights import TORCHVISION_VGG16_FILE, WEIGHTS_ENV, find_vgg16_weights


@pytest.fixture(autouse=True)
def no_weights_anywhere(tmp_path, monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


def test_not_available_offline_says_what_to_do():
    weights = find_vgg16_weights()
    assert not weights.available
    message = weights.describe()
    assert "pretrained=False" in message and "--vgg16-weights" in message and WEIGHTS_ENV in message


def test_lookup_order(tmp_path, monkeypatch):
    cache = tmp_path / "torch_home" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / TORCHVISION_VGG16_FILE).write_bytes(b"x")
    assert find_vgg16_weights().path == (cache / TORCHVISION_VGG16_FILE).resolve()

    from_env = tmp_path / "env.pth"
    from_env.write_bytes(b"x")
    monkeypatch.setenv(WEIGHTS_ENV, str(from_env))
    assert find_vgg16_weights().path == from_env.resolve()

    explicit = tmp_path / "explicit.pth"
    explicit.write_bytes(b"x")
    assert find_vgg16_weights(explicit).path == explicit.resolve()
    with pytest.raises(FileNotFoundError, match="--vgg16-weights: no file at"):
        find_vgg16_weights(tmp_path / "missing.pth")
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "missing.pth"))
    with pytest.raises(FileNotFoundError, match=f"{WEIGHTS_ENV} points at"):
        find_vgg16_weights()


@pytest.mark.slow  # the real worker
def test_worker_builds_fcns_pretrained_when_weights_exist(tmp_path, spec_for):
    spec = spec_for("fcn8s_frozen")   # the variant asserted on
    weights = tmp_path / "vgg16.pth"
    weights.write_bytes(b"not read by the grader itself")
    root = tmp_path / "student"
    root.mkdir()
    (root / "fcn.py").write_text(f"""
import os
import torch.nn as nn

class FCN8s(nn.Module):
    def __init__(self, num_classes, freeze_backbone=False, pretrained=True):
        super().__init__()
        assert pretrained is True, "pretrained should be True"
        assert os.environ["{WEIGHTS_ENV}"] == {str(weights.resolve())!r}
        import torch, torchvision
        cached = os.path.join(torch.hub.get_dir(), "checkpoints", "{TORCHVISION_VGG16_FILE}")
        assert open(cached, "rb").read() == b"not read by the grader itself", cached
        assert torchvision.models.VGG16_Weights.IMAGENET1K_V1.url.endswith("/{TORCHVISION_VGG16_FILE}")
        self.conv = nn.Conv2d(3, num_classes, 1)

    def forward(self, x):
        return self.conv(x)
""")
    result = grade_submission(root, spec, GradeOptions(vgg16_weights=str(weights), profile=None))
    variants = {v.variant_id: v for v in result.variants}
    assert variants["fcn8s_frozen"].status is VariantStatus.PASSED, variants["fcn8s_frozen"].checks
    assert "pretrained=True" in variants["fcn8s_frozen"].mapping
    assert result.environment["pretrained_backbone"] is True


@pytest.mark.slow
def test_reference_fcn_loads_the_weights_segrade_passes(tmp_path):
    """Through the real path: the reference FCN-8s built by the worker with pretrained=True
    reads the weights file given to segrade (a random torchvision VGG16 state dict here)."""
    import torch
    import torchvision

    from grader.shared.resources import DEFAULT_SPEC, reference_dir

    import re

    # 64 px inputs: which weights the backbone holds does not depend on the image size.
    text = re.sub(r"^input_size = \d+$", "input_size = 64", DEFAULT_SPEC.read_text(), flags=re.M)
    spec_path = tmp_path / "fcn8s_only.toml"
    spec_path.write_text(text[: text.index("[[variants]]")] + (
        '[[variants]]\nid = "fcn8s_frozen"\nfamily = "fcn"\nclass = "FCN8s"\nkwargs = { freeze_backbone = true }\n'))
    spec = load_spec(spec_path)

    good = tmp_path / "vgg16.pth"
    torch.save(torchvision.models.vgg16().state_dict(), good)
    result = grade_submission(reference_dir(), spec, GradeOptions(vgg16_weights=str(good), profile=None))
    (variant,) = result.variants
    assert variant.status is VariantStatus.PASSED, variant.checks
    assert "pretrained=True" in variant.mapping

    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"not a checkpoint")
    (variant,) = grade_submission(reference_dir(), spec, GradeOptions(vgg16_weights=str(bad), profile=None)).variants
    assert variant.status is VariantStatus.ERROR
    assert "raised" in variant.check("builds").message
