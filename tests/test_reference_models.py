"""Tests of the reference solution models (reference/fcn.py, reference/unet.py).

The reference folder is shaped like a student submission, so it is imported the way the grader
imports submissions: each file as a standalone module, by file path. Everything runs on CPU.
"""

import importlib.util
import urllib.error
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from grader.measure.convolutions import backward

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "reference"
NUM_CLASSES = 13
FCN_NAMES = ["FCN32s", "FCN16s", "FCN8s"]
UNET_NAMES = ["UNet", "UNetNoSkip", "ResidualUNet", "AttentionUNet"]
UNET_WIDTH = 8  # small U-Nets keep the tests fast; the structure does not depend on the width


def load_reference_module(name: str) -> ModuleType:
    """Import reference/<name>.py on its own, by file path, as the grader does."""
    path = REFERENCE_DIR / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"segrade_reference_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fcn = load_reference_module("fcn")
unet = load_reference_module("unet")


def build_unet(name: str) -> nn.Module:
    return getattr(unet, name)(NUM_CLASSES, base_channels=UNET_WIDTH)


def build_fcn(name: str, **kwargs) -> nn.Module:
    kwargs.setdefault("pretrained", False)
    return getattr(fcn, name)(NUM_CLASSES, **kwargs)


@pytest.fixture(scope="module")
def fcn_models() -> dict[str, nn.Module]:
    """One unfrozen, randomly initialised model per FCN variant (~134M parameters each), shared
    by the tests of this module to keep them fast. Tests may train them a step; none relies on
    their exact weights."""
    torch.manual_seed(0)
    return {name: build_fcn(name) for name in FCN_NAMES}


@pytest.fixture(scope="module")
def frozen_fcn_models() -> dict[str, nn.Module]:
    """The same with the backbone frozen (`freeze_backbone=True`), shared likewise: a VGG16
    FCN takes ~1.4 s to build on 2 cores."""
    torch.manual_seed(0)
    return {name: build_fcn(name, freeze_backbone=True) for name in FCN_NAMES}


@pytest.fixture(scope="module")
def random_vgg16_file(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A random torchvision VGG16 state dict saved to disk, standing in for ImageNet weights."""
    torch.manual_seed(1)
    state = torchvision.models.vgg16(weights=None).state_dict()
    path = tmp_path_factory.mktemp("weights") / "vgg16-397923af.pth"
    torch.save(state, path)
    return path, state


def get_model(name: str, fcn_models: dict[str, nn.Module]) -> nn.Module:
    return fcn_models[name] if name in fcn_models else build_unet(name)


def backbone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer of the VGG16 part (features, fc6, fc7), cloned."""
    return {
        f"{part}.{key}": value.detach().clone()
        for part in ("features", "fc6", "fc7")
        for key, value in getattr(model, part).state_dict().items()
    }


def head_state(model: nn.Module) -> dict[str, torch.Tensor]:
    backbone = {id(p) for m in model.backbone_modules() for p in m.parameters()}
    return {n: p.detach().clone() for n, p in model.named_parameters() if id(p) not in backbone}


def real_loss(model: nn.Module, batch: int = 2, size: int = 64) -> torch.Tensor:
    x = torch.randn(batch, 3, size, size)
    target = torch.randint(0, NUM_CLASSES, (batch, size, size))
    return F.cross_entropy(model(x), target)


# --------------------------------------------------------------------------- shapes


SIZES = [(64, 64), (224, 224), (256, 256), (96, 160), (70, 90)]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", FCN_NAMES + UNET_NAMES)
def test_output_is_logits_at_input_size(name, size, fcn_models):
    torch.manual_seed(0)
    model = get_model(name, fcn_models).eval()
    # FCNs are big: batch 1 at the large sizes; batch 1 is also the eval-mode edge case.
    batch = 1 if name in FCN_NAMES and size[0] >= 224 else 2
    with torch.no_grad():
        out = model(torch.randn(batch, 3, *size))
    assert out.shape == (batch, NUM_CLASSES, *size)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", FCN_NAMES + UNET_NAMES)
def test_batch_of_one_in_eval_mode(name, fcn_models):
    model = get_model(name, fcn_models).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 48))
    assert out.shape == (1, NUM_CLASSES, 32, 48)
    assert torch.isfinite(out).all()


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) for n in FCN_NAMES] + UNET_NAMES)
def test_every_trainable_parameter_gets_a_gradient(name, fcn_models):
    torch.manual_seed(0)
    model = get_model(name, fcn_models).train()
    model.zero_grad(set_to_none=True)
    backward(real_loss(model), model)   # the grader's backward (grader.measure.convolutions)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    for param_name, param in trainable:
        assert param.grad is not None, f"{param_name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{param_name} has a non-finite gradient"
        assert param.grad.abs().sum() > 0, f"{param_name} has an all-zero gradient"
    model.zero_grad(set_to_none=True)


# --------------------------------------------------------------------------- frozen backbone


@pytest.mark.parametrize("name", FCN_NAMES)
def test_frozen_backbone_is_bit_identical_after_a_step(name, frozen_fcn_models):
    torch.manual_seed(0)
    model = frozen_fcn_models[name].train()
    assert all(not p.requires_grad for m in model.backbone_modules() for p in m.parameters())
    before_backbone, before_head = backbone_state(model), head_state(model)

    # All parameters go to the optimizer, as a student's training loop would do; weight decay
    # would move any parameter that had a gradient.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=1e-4)
    optimizer.zero_grad()
    backward(real_loss(model), model)   # the grader's backward (grader.measure.convolutions)
    optimizer.step()

    after_backbone = backbone_state(model)
    assert after_backbone.keys() == before_backbone.keys()
    for key, value in before_backbone.items():
        assert torch.equal(after_backbone[key], value), f"frozen backbone tensor {key} changed"
    # The head trains: the 1/32 score layer and the upsampling both moved.
    after_head = head_state(model)
    assert not torch.equal(after_head["score_fr.weight"], before_head["score_fr.weight"])
    changed = [k for k in before_head if not torch.equal(after_head[k], before_head[k])]
    assert any(k.startswith("upscore") for k in changed), changed


@pytest.mark.slow  # a fine-tuned VGG16 FCN's backward
def test_unfrozen_backbone_changes_after_a_step(fcn_models):
    torch.manual_seed(0)
    model = fcn_models["FCN8s"].train()
    assert all(p.requires_grad for p in model.parameters())
    before = backbone_state(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer.zero_grad()
    backward(real_loss(model), model)   # the grader's backward (grader.measure.convolutions)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    after = backbone_state(model)
    for key in ("features.0.weight", "features.28.weight", "fc6.weight", "fc7.weight"):
        assert not torch.equal(after[key], before[key]), f"{key} did not train"


@pytest.mark.parametrize("name", FCN_NAMES)
def test_fcn_parameter_counts_frozen_and_fine_tuned(name, fcn_models, frozen_fcn_models):
    """The assignment's counts (the self-check in test_reference_grade.py builds one FCN
    through the worker): ~134M parameters, all trainable when fine-tuned, under 1M (score
    layers and upsampling) when frozen."""
    total = sum(p.numel() for p in fcn_models[name].parameters())
    assert all(p.requires_grad for p in fcn_models[name].parameters())
    frozen = frozen_fcn_models[name]
    assert sum(p.numel() for p in frozen.parameters()) == total > 130e6
    assert sum(p.numel() for p in frozen.parameters() if p.requires_grad) < 1e6


def test_frozen_backbone_stays_in_eval_mode(fcn_models, frozen_fcn_models):
    model = frozen_fcn_models["FCN32s"].train()
    assert all(not m.training for part in model.backbone_modules() for m in part.modules())
    assert model.score_fr.training and model.upscore.training
    # Unfrozen models put everything in train mode.
    unfrozen = fcn_models["FCN32s"].train()
    assert all(m.training for m in unfrozen.modules())


# --------------------------------------------------------------------------- FCN structure


def test_fcn_uses_torchvision_vgg16_indices(fcn_models):
    assert (fcn.POOL3, fcn.POOL4, fcn.POOL5) == (16, 23, 30)
    vgg_features = torchvision.models.vgg16(weights=None).features
    for model in fcn_models.values():
        assert [type(m) for m in model.features] == [type(m) for m in vgg_features]
        for index in (fcn.POOL3, fcn.POOL4, fcn.POOL5):
            assert isinstance(model.features[index], nn.MaxPool2d)
        assert model.fc6.weight.shape == (4096, 512, 7, 7)
        assert model.fc7.weight.shape == (4096, 4096, 1, 1)


def test_fcn_skip_layers_are_zero_initialised_and_upsampling_is_bilinear():
    model = build_fcn("FCN8s")
    for layer in (model.score_pool4, model.score_pool3):
        assert not layer.weight.any() and not layer.bias.any()
    assert model.score_fr.weight.any()
    for layer, factor in ((model.upscore2, 2), (model.upscore_pool4, 2), (model.upscore8, 8)):
        assert layer.bias is None and layer.stride == (factor, factor)
        assert torch.equal(layer.weight, fcn.bilinear_kernel(NUM_CLASSES, 2 * factor))


def test_bilinear_kernel_upsamples_like_bilinear_interpolation():
    kernel = fcn.bilinear_kernel(2, 4)
    assert kernel.shape == (2, 2, 4, 4)
    assert torch.equal(kernel[0, 1], torch.zeros(4, 4))  # channels do not mix
    taps = torch.tensor([0.25, 0.75, 0.75, 0.25])
    assert torch.allclose(kernel[0, 0], taps[:, None] * taps[None, :])
    # Away from the border, the transposed conv equals half-pixel bilinear interpolation.
    x = torch.randn(1, 2, 8, 8)
    up = F.conv_transpose2d(x, kernel, stride=2, padding=1)
    ref = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert up.shape == ref.shape
    assert torch.allclose(up[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1], atol=1e-6)


# --------------------------------------------------------------------------- FCN weights


def assert_vgg16_weights_loaded(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    for key, value in model.features.state_dict().items():
        assert torch.equal(value, state[f"features.{key}"]), key
    assert torch.equal(model.fc6.weight, state["classifier.0.weight"].view(4096, 512, 7, 7))
    assert torch.equal(model.fc6.bias, state["classifier.0.bias"])
    assert torch.equal(model.fc7.weight, state["classifier.3.weight"].view(4096, 4096, 1, 1))
    assert torch.equal(model.fc7.bias, state["classifier.3.bias"])


@pytest.mark.slow  # a VGG16 state dict written, read and copied (4-5 s on 2 busy cores)
def test_pretrained_weights_from_an_explicit_file(random_vgg16_file, monkeypatch):
    path, state = random_vgg16_file
    monkeypatch.delenv(fcn.WEIGHTS_ENV, raising=False)
    assert_vgg16_weights_loaded(build_fcn("FCN8s", pretrained=True, weights_path=path), state)


def test_pretrained_weights_from_the_environment_variable(random_vgg16_file, monkeypatch):
    path, state = random_vgg16_file
    monkeypatch.setenv(fcn.WEIGHTS_ENV, str(path))
    assert_vgg16_weights_loaded(build_fcn("FCN32s", pretrained=True), state)


def test_pretrained_weights_from_the_torch_hub_cache(random_vgg16_file, monkeypatch, tmp_path):
    path, state = random_vgg16_file
    monkeypatch.delenv(fcn.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "vgg16-397923af.pth").symlink_to(path)
    assert fcn.vgg16_weights_cache_path() == tmp_path / "checkpoints" / "vgg16-397923af.pth"
    assert_vgg16_weights_loaded(build_fcn("FCN16s", pretrained=True), state)


def test_missing_explicit_weights_file_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "vgg16.pth"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        build_fcn("FCN8s", pretrained=True, weights_path=missing)


def test_no_weights_offline_gives_a_helpful_error(monkeypatch, tmp_path):
    monkeypatch.delenv(fcn.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    calls = []

    def offline(self, *args, **kwargs):  # stands in for the download; never touches the net
        calls.append(self)
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(torchvision.models.VGG16_Weights, "get_state_dict", offline)
    with pytest.raises(RuntimeError) as info:
        build_fcn("FCN8s", pretrained=True)
    assert calls, "the download was not attempted"
    message = str(info.value)
    assert "SEGRADE_VGG16_WEIGHTS" in message
    assert "pretrained=False" in message
    assert str(tmp_path / "checkpoints") in message


# --------------------------------------------------------------------------- U-Net structure


def test_unet_parameter_count_matches_the_paper():
    model = unet.UNet(NUM_CLASSES)  # width 64: 64-128-256-512-1024
    count = sum(p.numel() for p in model.parameters())
    assert abs(count - 31.0e6) / 31.0e6 < 0.02, count


def test_unet_levels_and_widths():
    model = unet.UNet(NUM_CLASSES)
    assert [down[1][0].out_channels for down in model.downs] == [128, 256, 512, 1024]
    assert [up.up.in_channels for up in model.ups] == [1024, 512, 256, 128]


def test_unet_without_skips_concatenates_nothing():
    model = build_unet("UNetNoSkip")
    for up in model.ups:
        assert not up.uses_skip
        # The decoder block sees the up-conv output only.
        assert up.block[0].in_channels == up.up.out_channels
    with_skips = build_unet("UNet")
    for up in with_skips.ups:
        assert up.block[0].in_channels == 2 * up.up.out_channels


def test_unet_without_skips_sees_only_the_bottleneck():
    """The no-skip output is a function of the 1/16 bottleneck alone: replaying the decoder on
    the captured bottleneck reproduces it exactly."""
    torch.manual_seed(0)
    model = build_unet("UNetNoSkip").eval()
    seen = {}
    model.downs[-1].register_forward_hook(lambda m, i, o: seen.update(bottleneck=o))
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
        assert seen["bottleneck"].shape[-2:] == (4, 4)
        y = seen["bottleneck"]
        for up in model.ups:
            y = up(y)
        assert torch.equal(model.outc(y), out)


def test_residual_unet_blocks_add_a_shortcut():
    model = build_unet("ResidualUNet")
    blocks = [m for m in model.modules() if isinstance(m, unet.ResidualBlock)]
    assert len(blocks) == 9  # inc + 4 down + 4 up
    assert isinstance(model.downs[0][1].shortcut, nn.Sequential)  # 8 -> 16 channels: 1x1 conv
    block = unet.ResidualBlock(4, 4)
    assert isinstance(block.shortcut, nn.Identity)
    # y = relu(F(x) + x) with the identity shortcut.
    x = torch.randn(2, 4, 8, 8)
    block.eval()
    with torch.no_grad():
        assert torch.allclose(block(x), F.relu(block.body(x) + x))


def test_attention_unet_gates_every_skip_with_coefficients_in_unit_range():
    torch.manual_seed(0)
    model = build_unet("AttentionUNet").train()
    gates = [m for m in model.modules() if isinstance(m, unet.AttentionGate)]
    assert len(gates) == 4
    # Capture alpha during a real forward pass: proves the gates are used, at every level.
    alphas = []
    for gate in gates:
        gate.psi.register_forward_hook(lambda m, i, o: alphas.append(o.detach()))
    x = torch.randn(2, 3, 64, 64)
    model(x)
    assert sorted(a.shape[-1] for a in alphas) == [8, 16, 32, 64]
    for alpha in alphas:
        assert alpha.shape[:2] == (2, 1)
        assert alpha.min() >= 0 and alpha.max() <= 1
    # The public method gives the same kind of map.
    gate = gates[0]
    skip_ch, gate_ch = gate.W_x[0].in_channels, gate.W_g[0].in_channels
    alpha = gate.coefficients(torch.randn(2, skip_ch, 16, 16) * 10, torch.randn(2, gate_ch, 16, 16))
    assert alpha.shape == (2, 1, 16, 16)
    assert alpha.min() >= 0 and alpha.max() <= 1
