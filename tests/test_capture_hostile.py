"""A submission that patches segrade's worker-side modules (tests/data/hostile/patcher/models.py:
at import, from the constructor, from forward and from a thread; the measurement functions,
the dataflow recorder, the training loop, the channel writer) against the checks it tries to
defeat: a frozen FCN-32s whose backbone trains (frozen_backbone) and a no-skip U-Net with a
full-resolution skip (architecture).

Measured in the student's process (--no-capture) the patches win: that is the hole issue 26
closes. Measured on the captured program in the verifier they fail; the honest file passes;
a patched capture that claims failure only moves the variant to the visible fallback, where the
checks the patches forge are held for review and earn nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader.grading.pipeline import GradeOptions, grade_submission
from grader.spec import load_spec
from tiny_submission import spec_with

HOSTILE = Path(__file__).parent / "data" / "hostile" / "patcher"
VARIANTS = ["fcn32s_frozen", "unet_noskip"]


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory):
    # 64 px inputs (tiny_submission.small_inputs): what the patches forge does not depend on the size
    return spec_with(VARIANTS, tmp_path_factory.mktemp("spec") / "spec.toml", input_size=64)


def _submission(tmp_path: Path, name: str, cheat: bool = True, suppress: str | None = None) -> Path:
    folder = tmp_path / name
    shutil.copytree(HOSTILE, folder)
    text = (folder / "models.py").read_text()
    if not cheat:
        text = text.replace("CHEAT = True", "CHEAT = False")
    if suppress:   # the capture itself, patched to claim that this class cannot be captured
        text += f'''

def _no_capture():
    capture = sys.modules.get("grader.worker.capture")
    if capture is not None and not getattr(capture.capture, "patched", False):
        real = capture.capture

        def fake(model, *args, **kwargs):
            if type(model).__name__ == "{suppress}":
                return {{"ok": False, "error": "torch.export could not capture the model: (claimed by the model)"}}
            return real(model, *args, **kwargs)

        fake.patched = True
        capture.capture = fake


_real_patch = _patch


def _patch():
    _real_patch()
    _no_capture()
'''
    (folder / "models.py").write_text(text)
    return folder


def _checks(result) -> dict[str, dict[str, str]]:
    return {v.variant_id: {c.id: c.status.value for c in v.checks} for v in result.variants}


@pytest.mark.slow  # the real worker
def test_patching_the_worker_defeats_only_the_in_process_measurements(tmp_path, spec_file):
    spec = load_spec(spec_file)
    cheat = _submission(tmp_path, "cheat")
    # Without capture the patches win: the fixture really attacks what it claims to attack.
    old = grade_submission(cheat, spec, GradeOptions(profile=None, capture=False))
    assert _checks(old)["fcn32s_frozen"]["frozen_backbone"] == "pass"
    assert _checks(old)["unet_noskip"]["architecture"] == "pass"

    honest = grade_submission(_submission(tmp_path, "honest", cheat=False), spec, GradeOptions(profile=None))
    for v in honest.variants:
        assert v.program["measured_in"] == "captured program", v.program
        assert len(v.program["programs"]["train"]["sha256"]) == 64
    assert _checks(honest)["fcn32s_frozen"]["frozen_backbone"] == "pass"
    assert _checks(honest)["unet_noskip"]["architecture"] == "pass"

    # A capture patched to fail for one class moves that class to the visible fallback.
    suppressed = grade_submission(_submission(tmp_path, "suppressed", suppress="UNetNoSkip"), spec,
                                  GradeOptions(profile=None))
    by_id = {v.variant_id: v for v in suppressed.variants}
    assert by_id["unet_noskip"].program["measured_in"] == "student process"
    assert "claimed by the model" in by_id["unet_noskip"].program["reason"]
    assert suppressed.environment["measured_in"] == {"captured program": 1, "student process": 1}
    assert _checks(suppressed)["fcn32s_frozen"]["frozen_backbone"] == "fail"
    # There the patches win the measurement, but not the grade: the check they forge is held for review
    # and earns nothing; an instructor who has looked can trust it (segrade rescore --trust-student-process).
    assert _checks(suppressed)["unet_noskip"]["architecture"] == "held"
    # The layers similarity compares: the program's for the captured variant, the student process's word
    # (here forged) for the one measured there (docs/security.md, known limits).
    assert by_id["unet_noskip"].figures["structure"]["layers"] == ["Module(forged)"]
    assert "forged" not in str(by_id["fcn32s_frozen"].figures["structure"])
    assert by_id["unet_noskip"].status.value == "held"
    assert by_id["unet_noskip"].points_detail["checks"]["architecture"] == 0


@pytest.mark.slow  # the CLI and the real worker
def test_segrade_check_on_the_patching_submission(tmp_path, spec_file):
    """The command a student types (README): the checks the patches target fail, and the
    report and Gradescope file name the graded programs."""
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "grader", "check", str(_submission(tmp_path, "cheat")),
                           "--checks-only", "--spec", str(spec_file), "--out", str(out), "--no-pdf"],
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 1, done.stdout + done.stderr
    results = json.loads((out / "results.json").read_text())
    checks = {v["variant_id"]: {c["id"]: c for c in v["checks"]} for v in results["variants"]}
    frozen = checks["fcn32s_frozen"]["frozen_backbone"]
    assert frozen["status"] == "fail" and "backbone tensors changed" in frozen["message"]
    assert checks["unet_noskip"]["architecture"]["status"] == "fail"
    for v in results["variants"]:   # the layers similarity compares are the program's, not the forged ones
        assert "forged" not in json.dumps(v["figures"]["structure"]) and v["figures"]["structure"]["layers"]
        digest = v["program"]["programs"]["train"]["sha256"]
        assert (out / "programs" / v["program"]["programs"]["train"]["file"]).is_file()
        assert digest in (out / "report.html").read_text()
        assert digest in (out / "results_gradescope.json").read_text()


HIDDEN = Path(__file__).parent / "data" / "hostile" / "hidden_backbone_folded_skip"


@pytest.mark.slow  # the real worker and verifier
def test_a_hidden_backbone_and_a_folded_skip_are_seen(tmp_path, spec_file):
    """Nothing patched, both captured as written: a frozen FCN-32s whose VGG16 is copied into
    parameters called `kernel` (some transposed, some a sum of two tensors) and trains, beside a
    frozen decoy conv1_1; a no-skip U-Net whose first feature is folded into channels at 1/16
    (pixel_unshuffle) and unfolded before the output. Until 2026-12-07 both passed."""
    folder = tmp_path / "hidden"
    shutil.copytree(HIDDEN, folder)
    result = grade_submission(folder, load_spec(spec_file), GradeOptions(profile=None))
    by_id = {v.variant_id: {c.id: c for c in v.checks} for v in result.variants}
    assert all(v.program["measured_in"] == "captured program" for v in result.variants)
    frozen = by_id["fcn32s_frozen"]["frozen_backbone"]
    assert frozen.status.value == "fail" and "body.0.kernel" in frozen.message, frozen.message
    # every copied layer is the backbone, whatever its tensors are called or laid out
    assert {"body.2.kernel", "body.5.kernel", "body.5.rest"} <= set(frozen.details["backbone_names"])
    architecture = by_id["unet_noskip"]["architecture"]
    assert architecture.status.value == "fail" and "1/1" in architecture.message, architecture.message


@pytest.mark.slow  # an export, a capture and a load (in this process: no worker)
def test_the_graph_reads_the_logits_the_model_is_trained_on(tmp_path):
    """A forward returning ((no-skip logits,), logits) is trained and scored on `logits`
    (grader.measure.logits.to_logits): the dataflow graph is read from the same tensor, on the
    model and on its captured program (until 2026-12-07 it took the first tensor in flattened
    order, and this "no-skip" U-Net with a full-resolution skip passed architecture)."""
    import importlib.util

    from grader.measure import graph
    from grader.measure.captured import as_model
    from grader.verifier.load import load_program
    from grader.worker.capture import capture

    path = Path(__file__).parent / "data" / "hostile" / "nested_output" / "models.py"
    spec = importlib.util.spec_from_file_location("segrade_nested_output", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.UNetNoSkip(13)
    for method in ("export", "dispatch"):
        seen = graph.fingerprint(model, 64, method=method)
        assert seen.bypass_scale == 1.0 and seen.long_skips == (1.0,), (method, seen)
    info = capture(model, 64, tmp_path, "noskip")
    assert info["ok"], info
    entry = info["programs"]["eval"]
    program = load_program(tmp_path / entry["file"], entry["sha256"])
    seen = graph.fingerprint(as_model(program, program), 64)
    assert seen.bypass_scale == 1.0 and seen.long_skips == (1.0,), seen


@pytest.mark.slow  # a real VGG16 built and captured (in this process: no worker)
def test_an_encoder_with_vgg16_shapes_is_not_unknown(tmp_path):
    """VGG16's weights scaled by 1.01 layer by layer (the function is the same) and an extra 3x3
    identity convolution after conv1_2: neither the values nor the sequence are VGG16's. The
    contract fails such an encoder of one's own; the verifier, which counted VGG16-shaped
    nn.Conv2d layers that a program does not have, only warned (and a warning earns the check's
    marks) until 2026-12-07. It counts the shapes of the weights the program uses."""
    import importlib.util

    from grader.measure import probes
    from grader.measure.captured import as_model
    from grader.verifier.load import load_program
    from grader.verifier.provenance import identify
    from grader.worker.capture import capture

    path = Path(__file__).parent / "data" / "hostile" / "own_encoder" / "models.py"
    spec = importlib.util.spec_from_file_location("segrade_own_encoder", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert probes.install_vgg_recorder()
    with probes.recording_vggs(7):
        model = module.FCN32s(13, freeze_backbone=True, pretrained=False)
    info = capture(model, 64, tmp_path, "fcn")
    assert info["ok"], info
    entry = info["programs"]["eval"]
    program = load_program(tmp_path / entry["file"], entry["sha256"])
    found = identify(program, as_model(program, program), None, 7)
    assert not found["tensors"] and found["vgg_shaped"] == 28, found   # 14 convolutions, weight and bias


@pytest.mark.slow  # the real worker and verifier
def test_a_skip_written_in_place_is_a_skip(tmp_path):
    """The captured program keeps `copy_(slice(kept), first)` as it is and its concatenation
    names `kept` (zeros_like: a shape only); the graph counts the writes into a tensor as
    part of it (grader.measure.graph._graph_from_nodes). Until 2026-12-07 this passed."""
    folder = tmp_path / "inplace"
    shutil.copytree(Path(__file__).parent / "data" / "hostile" / "inplace_skip", folder)
    spec = load_spec(spec_with(["unet_noskip"], tmp_path / "spec.toml", input_size=64))
    result = grade_submission(folder, spec, GradeOptions(profile=None))
    (variant,) = result.variants
    assert variant.program["measured_in"] == "captured program", variant.program
    architecture = variant.check("architecture")
    assert architecture.status.value == "fail" and "at 1/1" in architecture.message, architecture.message


@pytest.mark.slow  # the real worker and verifier, and the smoke training
def test_a_network_kept_in_constants_holds_the_mIoU_for_a_person(tmp_path):
    """A U-Net that carries another network in tensors no optimiser reaches, switched in once its
    parameters move (tests/data/hostile/smuggled_constants): the verifier counts what the program
    computes with that training cannot change (grader.verifier.fixed), and above
    FIXED_VALUES_LIMIT `learns` is held: no performance marks until a person has looked."""
    folder = tmp_path / "smuggler"
    shutil.copytree(Path(__file__).parent / "data" / "hostile" / "smuggled_constants", folder)
    spec = load_spec(spec_with(["unet"], tmp_path / "spec.toml", architecture=False, input_size=64))
    result = grade_submission(folder, spec, GradeOptions(profile="smoke", device="cpu"))
    (variant,) = result.variants
    assert variant.program["measured_in"] == "captured program", variant.program
    assert variant.program["fixed"]["values"] == 14_976 + 3_456 + 208, variant.program["fixed"]
    learns = variant.check("learns")
    assert learns.status.value == "held" and "18,640 values that the training cannot change" in learns.message
    assert variant.status.value == "held" and variant.points_detail["performance_points"] == 0
