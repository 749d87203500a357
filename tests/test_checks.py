"""Planted defects, each caught by the right check and only that one; the reference passes
every check (tests/test_reference_grade.py). The architecture check has its own tests
(tests/test_graph.py).

Defects that are about the judgment (shapes, gradients, logits) are judged on the worker's
recorded observations (tests/planted.py, tests/data/observations/); those about what the
worker itself must see through (drifting BatchNorm, a patched torch.equal, skips hidden in a
no-skip U-Net) run the real worker. A freeze flag that freezes nothing is erin_mistakes'
fcn8s_frozen, through the real worker in test_submissions.py (its message asserted in full)."""

from dataclasses import replace

import pytest

from grader.grading.checks import check_variant
from grader.grading.pipeline import GradeOptions, grade_submission
from grader.shared.protocol import Observation, line, parse
from grader.shared.resources import reference_dir
from grader.records.results import CheckStatus, VariantStatus
from grader.spec import load_spec
from planted import CASES, RECORD_COMMAND, recording, source_sha256
from tiny_submission import IN_WORKER, spec_with, write_submission


REFERENCE_FCN = (reference_dir() / "fcn.py").read_text()


def checks_of(result, variant_id):
    variant = next(v for v in result.variants if v.variant_id == variant_id)
    return variant.status, {c.id: c for c in variant.checks}


def only_failing(checks, check_id, status=CheckStatus.FAIL):
    """`check_id` has `status`; every other check passed."""
    assert checks[check_id].status is status, checks[check_id].message
    others = {k: c.status for k, c in checks.items() if k != check_id}
    assert set(others.values()) <= {CheckStatus.PASS}, others


# The VGG16 FCNs here take 64 px inputs: the backbone checks' three training steps are what
# counts, and they see a frozen or moving backbone at any size (224 px is the self-check's).
@pytest.fixture(scope="module")
def fcn8s_spec(tmp_path_factory):
    """The frozen FCN-8s alone: what these tests defeat is its frozen-backbone check (that the
    same class with the flag off passes as fine-tuned is what the examples show, test_submissions)."""
    return load_spec(spec_with(["fcn8s_frozen"], tmp_path_factory.mktemp("spec") / "fcn8s.toml", input_size=64))


@pytest.fixture(scope="module")
def unet_spec(tmp_path_factory):
    """Without the architecture requirement: these one-conv models are about other checks."""
    return load_spec(spec_with(["unet"], tmp_path_factory.mktemp("spec") / "unet.toml", architecture=False))


@pytest.fixture(scope="module")
def fcn8s_spec_any_architecture(tmp_path_factory):
    return load_spec(spec_with(["fcn8s_frozen"], tmp_path_factory.mktemp("spec") / "f.toml", architecture=False,
                               input_size=64))


def grade(tmp_path, files, spec, **options):
    return grade_submission(write_submission(tmp_path / "student", files), spec, GradeOptions(profile=None, **options))


@pytest.mark.slow  # the real worker
def test_batchnorm_drifting_in_a_frozen_backbone(tmp_path, fcn8s_spec_any_architecture):
    source = '''
import torch.nn as nn
import torch.nn.functional as F
import torchvision


class FCN8s(nn.Module):
    """vgg16_bn features, frozen by requires_grad only: BatchNorm statistics still move."""

    def __init__(self, num_classes, freeze_backbone=False, pretrained=True):
        super().__init__()
        self.features = torchvision.models.vgg16_bn(weights=None).features
        self.score = nn.Conv2d(512, num_classes, 1)
        if freeze_backbone:
            for p in self.features.parameters():
                p.requires_grad = False

    def forward(self, x):
        return F.interpolate(self.score(self.features(x)), size=x.shape[-2:], mode="bilinear")
'''
    result = grade(tmp_path, {"fcn.py": source}, fcn8s_spec_any_architecture)
    status, checks = checks_of(result, "fcn8s_frozen")
    assert status is VariantStatus.FAILED
    only_failing(checks, "frozen_backbone")
    message = checks["frozen_backbone"].message
    # what moved is named (only the statistics, of these VGG layers), and the advice follows from it
    assert "the BatchNorm statistics of conv1_1 BatchNorm, conv1_2 BatchNorm" in message, message
    assert "Keep the backbone's BatchNorm layers in eval mode" in message and "requires_grad" not in message
    assert "running_mean" in message


# -- judged on recorded observations (tests/planted.py; no worker per test)

def judge(case, unet_spec):
    """check_variant on what the worker observed of a planted defect (recorded)."""
    data = recording(case)
    assert data["source_sha256"] == source_sha256(case), \
        f"tests/planted.py changed the {case!r} source since it was recorded: run {RECORD_COMMAND} {case}"
    result = check_variant(unet_spec.variant("unet"), Observation.from_json(data["observation"]), unet_spec,
                           batch_size=2)
    return result.status, {c.id: c for c in result.checks}


@pytest.mark.parametrize("case", sorted(CASES))
def test_recordings_are_what_the_worker_sends_today(case):
    """Every recording still passes the protocol's schema for a result (a field the worker no
    longer sends, or sends differently, fails here) and comes from today's planted source."""
    data = recording(case)
    assert parse(line("result", result=data["observation"])).variant == "unet"
    assert data["source_sha256"] == source_sha256(case), f"re-record: {RECORD_COMMAND} {case}"


def test_wrong_class_count(unet_spec):
    status, checks = judge("wrong_class_count", unet_spec)
    assert status is VariantStatus.FAILED
    assert checks["forward_shape"].status is CheckStatus.FAIL
    assert "output shape 2x12x256x256" in checks["forward_shape"].message


def test_square_only_output_fails_on_a_non_square_input(unet_spec):
    status, checks = judge("square_only_output", unet_spec)
    assert status is VariantStatus.FAILED
    assert "1x3x224x288" in checks["forward_shape"].message
    # right at the input size: the probes still judge the model (its identity checks too)
    assert checks["gradients"].status is CheckStatus.PASS and checks["logits"].status is CheckStatus.PASS


def test_half_resolution_output(unet_spec):
    status, checks = judge("half_resolution_output", unet_spec)
    assert status is VariantStatus.FAILED and "2x13x128x128" in checks["forward_shape"].message


def test_unused_layer_is_a_warning(unet_spec):
    status, checks = judge("unused_layer", unet_spec)
    assert status is VariantStatus.PASSED
    only_failing(checks, "gradients", CheckStatus.WARN)
    assert "forgotten.weight" in checks["gradients"].message


def test_detached_output_layer_fails(unet_spec):
    status, checks = judge("detached_output_layer", unet_spec)
    assert status is VariantStatus.FAILED
    only_failing(checks, "gradients")
    assert "output layer (conv) gets no gradient" in checks["gradients"].message


def test_softmax_in_forward_is_a_warning(unet_spec):
    status, checks = judge("softmax_in_forward", unet_spec)
    assert status is VariantStatus.PASSED
    only_failing(checks, "logits", CheckStatus.WARN)
    assert "softmax" in checks["logits"].message


def test_the_softmax_or_sigmoid_behind_the_output_is_measured_not_guessed_from_its_range(unet_spec):
    """A just-built 3-class head after a ReLU'd decoder can output 0.04..0.19 everywhere: in
    [0, 1], yet no sigmoid. The probe follows the output back through range-keeping ops
    (upsampling, concatenation) to a softmax or sigmoid, or to none."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from grader.measure.logits import to_logits
    from grader.measure.probes import output_normaliser

    class Head(nn.Module):
        def __init__(self, end=None):
            super().__init__()
            self.conv, self.cls, self.end = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 3, 1), end
            nn.init.zeros_(self.cls.weight), nn.init.constant_(self.cls.bias, 0.1)   # 0.1 everywhere: in [0, 1]

        def forward(self, x):
            y = self.cls(F.relu(self.conv(F.avg_pool2d(x, 2))))
            if self.end == "softmax":
                y = y.softmax(dim=1)
            elif self.end == "sigmoid_gate":   # an attention-style gate inside, raw scores out
                y = y * torch.sigmoid(y)
            elif self.end == "sigmoid":
                y = torch.sigmoid(y)
            return {"out": F.interpolate(y, size=x.shape[-2:], mode="bilinear")}

    def normaliser(end):
        return output_normaliser(Head(end), to_logits, 32, "cpu")

    assert [normaliser(e) for e in (None, "sigmoid_gate", "softmax", "sigmoid")] == ["", "", "softmax", "sigmoid"]

    variant = unet_spec.variant("unet")
    seen = {"id": "unet", "mapping": "UNet", "build": {"ok": True},
            "forward": {"ok": True, "input_shape": [2, 3, 256, 256], "output_shape": [2, 13, 256, 256],
                        "finite": True, "dtype": "float32"},
            "output_statistics": {"min": 0.038, "max": 0.19, "sum_to_one": 0.7, "eval_change": 0.0}}

    def logits(**measured):
        observed = {**seen, "output_statistics": {**seen["output_statistics"], **measured}}
        return next(c for c in check_variant(variant, Observation.from_json(observed), unet_spec,
                                             batch_size=2).checks if c.id == "logits")

    assert logits(normaliser="").status is CheckStatus.PASS
    assert logits(normaliser="sigmoid").status is CheckStatus.WARN and "apply sigmoid" in logits(normaliser="sigmoid").message
    assert logits().status is CheckStatus.WARN   # not measured (an older recording): the range decides, as before


def test_dropout_left_on_in_eval_mode_is_a_warning(unet_spec):
    """`F.dropout(x, p)` drops in eval mode too (training=True by default): the evaluation
    scores a random model. The logits check says so (it informs, it does not fail)."""
    status, checks = judge("dropout_on_in_eval", unet_spec)
    assert status is VariantStatus.PASSED
    only_failing(checks, "logits", CheckStatus.WARN)
    assert checks["logits"].message.startswith("the output in eval mode changes from one call to the next on the "
                                               "same input (by up to 2.15): dropout left on in eval mode?")
    # A deterministic model's recording says 0 (or, recorded before the measurement, nothing)
    _, honest = judge("unused_layer", unet_spec)
    assert honest["logits"].status is CheckStatus.PASS


@pytest.mark.slow  # the real worker
def test_patching_torch_equal_cannot_fake_a_frozen_backbone(tmp_path, fcn8s_spec):
    source = REFERENCE_FCN + '''
_Reference8s = FCN8s


class FCN8s(_Reference8s):
    def __init__(self, num_classes, freeze_backbone=False, pretrained=True):
        import torch
        super().__init__(num_classes, False, pretrained)  # not frozen...
        real_equal = torch.equal
        # ...and every comparison of a backbone-sized tensor says "unchanged"
        torch.equal = lambda a, b: bool(a.shape) and a.shape[0] in (64, 128, 256, 512, 4096) or real_equal(a, b)
'''
    # Measured in the worker, beside the patch (capture off, trusted): the guard that undoes
    # patches of torch's namespaces is what is tested; a captured program's checks run in the
    # verifier, which this patch never reaches.
    result = grade(tmp_path, {"fcn.py": source}, fcn8s_spec, **IN_WORKER)
    status, checks = checks_of(result, "fcn8s_frozen")
    assert status is VariantStatus.FAILED
    assert checks["frozen_backbone"].status is CheckStatus.FAIL


def test_learns_below_the_references_highest_untrained_figure_fails_where_the_band_separates():
    """One model's own untrained mIoU can be low by luck; below the band's `untrained_max` (the
    highest the reference reached untrained over its initialisation seeds) fails where the band's
    lower edge lies above it (the profile separates trained from untrained), else warns; below
    its own untrained figure it always fails."""
    from grader.grading.checks import check_learning
    from grader.shared.protocol import TrainingOutcome

    training = TrainingOutcome(ok=True, mode="train")
    losses = [2.5, 2.4, 2.2, 2.0, 1.8]
    assert check_learning(training, losses, 0.095, 0.03, [], "val mIoU").status is CheckStatus.PASS
    lucky = check_learning(training, losses, 0.095, 0.03, [], "val mIoU", untrained_max=0.097)
    assert lucky.status is CheckStatus.WARN
    assert "no better than the reference untrained (up to 0.097" in lucky.message
    assert lucky.details["untrained_max"] == 0.097
    separated = check_learning(training, losses, 0.095, 0.03, [], "test mIoU", untrained_max=0.097, separated=True)
    assert separated.status is CheckStatus.FAIL and "did not teach it more than a random model" in separated.message
    clear = check_learning(training, losses, 0.2, 0.03, [], "val mIoU", untrained_max=0.097, separated=True)
    assert clear.status is CheckStatus.PASS and clear.details["untrained_max"] == 0.097
    # Which bands show separation: enough runs, and their lower edge above untrained_max
    from grader.records.results import Band

    band = Band(measured=True, profile="smoke", backbone="random_init", mean=0.09, std=0.005, lower=0.06,
                upper=0.12, untrained_max=0.027, runs=5)
    assert band.separates_untrained()
    assert not replace(band, runs=2).separates_untrained()                 # a course's 2-seed band: a guess
    assert not replace(band, untrained_max=0.07).separates_untrained()     # the profile cannot tell
    assert not replace(band, untrained_max=None).separates_untrained()     # measured before untrained_max
    # The model's own untrained figure still counts when it is the higher one
    assert check_learning(training, losses, 0.12, 0.13, [], "val mIoU", untrained_max=0.097).status is CheckStatus.FAIL


def test_a_model_that_arrives_trained_fails_learns_where_the_band_separates():
    """A constructor that loads a checkpoint trained at home: before the standardised training
    the model already scores what the reference scores only trained. Its figure is not the
    standardised training's: `learns` fails, and so the variant earns no performance marks.
    Only where the band shows the profile separating trained from untrained."""
    from grader.grading.checks import check_learning
    from grader.shared.protocol import TrainingOutcome

    training = TrainingOutcome(ok=True, mode="train")
    losses = [0.6, 0.62, 0.61, 0.6, 0.59]
    arrived = check_learning(training, losses, 0.31, 0.30, [], "test mIoU", untrained_max=0.027, separated=True,
                             band_lower=0.06)
    assert arrived.status is CheckStatus.FAIL
    assert arrived.message.startswith("the model scored test mIoU 0.300 before the standardised training, where "
                                      "the reference scores only trained (band from 0.060; untrained at most 0.027")
    assert "checkpoint loaded in its constructor" in arrived.message
    # Just below the lower edge, or where the band cannot tell: judged as before
    assert check_learning(training, [2.5, 2.0, 1.5, 1.2, 1.0], 0.09, 0.059, [], "test mIoU", untrained_max=0.027,
                          separated=True, band_lower=0.06).status is CheckStatus.PASS
    assert check_learning(training, losses, 0.31, 0.30, [], "test mIoU", untrained_max=0.027, separated=False,
                          band_lower=0.06).status is CheckStatus.PASS
    # Submitted weights are graded as submitted (checkpoint mode): no untrained figure to compare
    weights = TrainingOutcome(ok=True, mode="weights", weights="w.pt")
    assert check_learning(weights, [], 0.31, None, [], "test mIoU", untrained_max=0.027, separated=True,
                          band_lower=0.06).status is CheckStatus.PASS


def test_a_backbone_frozen_only_at_first_fails_frozen_backbone():
    """The check's few steps see the backbone bit-identical; the standardised training is
    compared too, from its start to its last predictions (grader.measure.observe): a backbone
    that trains later (a counter, a size the model tells apart, a training program that differs
    from the checks') fails, naming the tensors. An honest frozen backbone passes as before."""
    from grader.grading.checks import _backbone
    from grader.shared.protocol import BackboneSteps, TrainingOutcome

    variant = load_spec().variant("fcn8s_frozen")
    names = ("backbone.0.weight", "backbone.0.bias")
    probe = BackboneSteps(backbone_tensors=2, steps=3, backbone_changed=(), head_changed=("score.weight",),
                          backbone_names=names)
    honest = Observation(id=variant.id, backbone=probe,
                         training=TrainingOutcome(ok=True, steps=30, changed=("score.weight", "calls")))
    passed = _backbone(honest, variant)
    assert passed.status is CheckStatus.PASS and passed.message == (
        "after 3 real training steps the 2 backbone tensors are bit-identical, while the head trained, and stayed so "
        "through the standardised training (30 steps) (backbone: VGG16-shaped layers)")
    late = replace(honest, training=TrainingOutcome(ok=True, steps=30, changed=("backbone.0.weight", "score.weight")))
    result = _backbone(late, variant)
    assert result.status is CheckStatus.FAIL
    assert result.message.startswith("1 of 2 backbone tensors changed during the standardised training (30 steps) "
                                     "although they were bit-identical after the check's 3 steps")
    assert result.message.endswith("backbone.0.weight): the backbone must stay frozen for the whole training, not "
                                   "only at first")
    # Not measured (a record from before, or no training): judged on the check's steps as before.
    for training in (None, TrainingOutcome(ok=True, steps=30)):
        assert _backbone(replace(late, training=training), variant).status is CheckStatus.PASS
    assert _backbone(replace(late, backbone=replace(probe, backbone_names=())), variant).status is CheckStatus.PASS


def test_a_backbone_kept_out_of_the_backward_pass_is_frozen_not_unused():
    """A frozen FCN whose forward runs the backbone under torch.no_grad() (or detaches it) gives
    the backbone no gradient: that is freezing, and the gradients check says so instead of
    warning about unused layers; anything else without a gradient is still told, and in a
    fine-tuned variant a backbone without gradients is."""
    from grader.grading.checks import _gradients, frozen_backbone_names
    from grader.shared.protocol import BackboneSteps, Gradients

    names = ("features.0.weight", "features.0.bias")
    probe = BackboneSteps(backbone_tensors=2, steps=3, backbone_changed=(), head_changed=("score.weight",),
                          backbone_names=names)
    no_grad = Gradients(none=names, zero=(), nonfinite=(), head="score", head_params=("score.weight",))
    held = _gradients(Observation(id="fcn8s_frozen", gradients=no_grad, backbone=probe), frozen=set(names))
    assert held.status is CheckStatus.PASS and held.message == (
        "every trainable parameter outside the frozen backbone gets a finite gradient; the backbone's 2 get none "
        "(forward keeps it out of the backward pass, with torch.no_grad() or detach(): frozen, as it should be)")
    also = replace(no_grad, none=(*names, "extra.weight"))
    warned = _gradients(Observation(id="fcn8s_frozen", gradients=also, backbone=probe), frozen=set(names))
    assert warned.status is CheckStatus.WARN and "1 trainable parameter(s) get no gradient" in warned.message
    assert _gradients(Observation(id="fcn8s_finetune", gradients=no_grad, backbone=probe)).status is CheckStatus.WARN

    # What check_variant passes: a frozen FCN's measured backbone, nothing for the others.
    spec = load_spec()
    observed = Observation(id="fcn8s_frozen", gradients=no_grad, backbone=probe)
    assert frozen_backbone_names(observed, spec.variant("fcn8s_frozen")) == set(names)
    assert frozen_backbone_names(observed, spec.variant("fcn8s_finetune")) == set()
    assert frozen_backbone_names(replace(observed, backbone=None), spec.variant("fcn8s_frozen")) == set()


def test_a_model_that_puts_tensors_on_a_missing_gpu_is_told_which_line_and_what_to_write():
    """Colab notebooks hard-code `device = torch.device("cuda")` and call `x.to(device)` in
    forward (or `self.to(device)` in __init__). Without a GPU torch says only "Cannot
    re-initialize CUDA in forked subprocess" (segrade's worker is forked): the message names the
    student's line and the portable way (tests/data/submissions/quinn_colab_cuda)."""
    spec = load_spec()
    frame = ('  File "/tmp/segrade-b01/submission/unets.py", line 24, in forward\n    x = x.to(device)\n'
             '        ^^^^^^^^^^^^\n  File "/venv/lib/python3.11/site-packages/torch/cuda/__init__.py", line 604, '
             'in _lazy_init\n    raise RuntimeError(\n')
    error = ("RuntimeError: Cannot re-initialize CUDA in forked subprocess. To use CUDA with multiprocessing, you "
             "must use the 'spawn' start method")
    observed = Observation.from_json({"id": "unet", "mapping": "UNet ← UNetVanilla(n_classes=13) from unets.py",
                                      "build": {"ok": True}, "forward": {"ok": False, "input_shape": [2, 3, 256, 256],
                                                                         "error": error, "traceback": frame + error}})
    result = check_variant(spec.variant("unet"), observed, spec, batch_size=2)
    message = result.check("forward_shape").message
    assert result.status is VariantStatus.ERROR
    assert message.startswith(f"forward on a 2x3x256x256 input raised {error}. `x = x.to(device)` at unets.py line "
                              "24 puts tensors on the GPU, but this run has none"), message
    assert 'torch.device("cuda" if torch.cuda.is_available() else "cpu")' in message
    built = Observation.from_json({"id": "unet", "mapping": "UNet ← UNet(num_classes=13) from nets.py",
                                   "build": {"ok": False, "error": "RuntimeError: Found no NVIDIA driver on your system.",
                                             "traceback": frame.replace("x = x.to(device)", "self.to(device)")}})
    builds = check_variant(spec.variant("unet"), built, spec, batch_size=2).check("builds").message
    assert "`self.to(device)` at unets.py line 24 puts tensors on the GPU" in builds, builds
    other = Observation.from_json({"id": "unet", "mapping": "UNet", "build": {"ok": True},
                                   "forward": {"ok": False, "input_shape": [2, 3, 256, 256], "error": "ValueError: x"}})
    assert "GPU" not in check_variant(spec.variant("unet"), other, spec, batch_size=2).check("forward_shape").message


def test_torch_hub_load_is_told_it_fetches_code_from_github():
    """`torch.hub.load('pytorch/vision:v0.10.0', 'vgg16', pretrained=True)` first asks GitHub's
    API for the repository: the "weights file" was an API page (branches?per_page=100&page=1)."""
    spec = load_spec()
    frame = ('  File "/tmp/segrade-x/submission/fcn8s.py", line 11, in __init__\n'
             "    vgg = torch.hub.load('pytorch/vision:v0.10.0', 'vgg16', pretrained=True)\n")
    error = "URLError: <urlopen error [Errno -3] Temporary failure in name resolution>"
    observed = Observation.from_json({"id": "fcn8s_frozen", "mapping": "FCN8s ← FCN8s(num_classes=13) from fcn8s.py",
                                      "build": {"ok": False, "error": error, "traceback": frame + "  ...\n" + error,
                                                "downloads": ["https://api.github.com/repos/pytorch/vision/branches"
                                                              "?per_page=100&page=1"]}})
    message = check_variant(spec.variant("fcn8s_frozen"), observed, spec, batch_size=2).check("builds").message
    assert ("`vgg = torch.hub.load('pytorch/vision:v0.10.0', 'vgg16', pretrained=True)` at fcn8s.py line 11 fetches a "
            "model's code from GitHub (pytorch/vision) with torch.hub, but grading runs offline: build the backbone "
            "with torchvision.models.vgg16") in message, message
    assert "branches?per_page" not in message


def test_a_fixed_output_size_and_unpadded_convolutions_are_explained():
    """`nn.Upsample(size=(224, 224))` is right at 224 px only; a paper-style U-Net with unpadded
    convolutions cannot run at 32 px. Each message says why, not only what torch said."""
    spec = load_spec()

    def forward_message(variant_id, size, output, other):
        observed = Observation.from_json({"id": variant_id, "mapping": "M", "build": {"ok": True}, "forward": {
            "ok": True, "input_shape": [2, 3, size, size], "output_shape": [2, 13, *output], "output_type": "Tensor",
            "dtype": "float32", "finite": True}, "sizes": [{"input_shape": [1, 3, 32, 96]} | other],
            "architecture": {"error": "not recorded here"}})
        return check_variant(spec.variant(variant_id), observed, spec, batch_size=2).check("forward_shape").message

    fixed = forward_message("fcn32s_frozen", 224, [224, 224], {"output_shape": [1, 13, 224, 224], "finite": True})
    assert fixed.startswith("output shape 1x13x224x224 for a 1x3x32x96 input; expected 1x13x32x96"), fixed
    assert "The output is 224x224 whatever the input's size: a fixed size in nn.Upsample(size=...)" in fixed
    shrink = forward_message("unet", 256, [256, 256], {"error": (
        "RuntimeError: Calculated padded input size per channel: (2 x 2). Kernel size: (3 x 3). Kernel size can't be "
        "greater than actual input size")})
    assert "A feature map became smaller than a 3x3 kernel: each unpadded convolution (padding=0" in shrink, shrink
    # the probes at the family's smallest size (64 px) fail the same way, and say the same
    kernel = ("RuntimeError: Calculated padded input size per channel: (2 x 2). Kernel size: (3 x 3). Kernel size "
              "can't be greater than actual input size")
    probed = Observation.from_json({"id": "unet", "mapping": "M", "build": {"ok": True}, "forward": {
        "ok": True, "input_shape": [2, 3, 256, 256], "output_shape": [2, 13, 256, 256], "output_type": "Tensor",
        "dtype": "float32", "finite": True}, "gradients": {"error": kernel}, "architecture": {"error": kernel}})
    result = check_variant(spec.variant("unet"), probed, spec, batch_size=2)
    for check in ("gradients", "architecture"):
        assert "A feature map became smaller than a 3x3 kernel" in result.check(check).message, check
    right = forward_message("unet", 256, [256, 256], {"output_shape": [1, 13, 32, 96], "finite": True})
    assert "whatever" not in right and "smaller than" not in right
