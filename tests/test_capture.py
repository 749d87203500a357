"""Captured programs (issue 26): the capture in the worker, the safe loading in the verifier,
the captured model that the measurements use, and the capture message of the protocol.

Fast: one tiny model (conv, BatchNorm, dropout) is captured once for the whole file; crafted
files are made from its archive.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from grader.measure.captured import as_model
from grader.shared.protocol import ProtocolError, Reader, TrainingOutcome, parse
from grader.verifier.load import ProgramLimits, ProgramRefused, check_ops, load_program, sha256_of
from grader.worker.capture import capture, comparison_size


class Small(nn.Module):
    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.drop = nn.Dropout2d(0.5)
        self.head = nn.Conv2d(8, num_classes, 1)

    def forward(self, x):
        return self.head(self.drop(nn.functional.max_pool2d(self.enc(x), 2).repeat_interleave(2, -1)
                                   .repeat_interleave(2, -2)))


class Skipping(Small):
    """Small's tensors, and a full-resolution skip added to its output."""

    def forward(self, x):
        return super().forward(x) + self.head(self.enc(x))


class DetectsExport(Small):
    """A full-resolution path the program would not have: only while torch.export traces it
    (fake tensors, torch.compiler.is_exporting()) is it left out."""

    def forward(self, x):
        from torch._subclasses.fake_tensor import FakeTensor

        out = super().forward(x)
        if torch.compiler.is_exporting() or isinstance(x, FakeTensor):
            return out
        return out + self.head(self.enc(x))


class Prints(Small):
    def forward(self, x):
        torch.ops.aten._print("hello from the program")
        return super().forward(x)


class DataDependent(Small):
    def forward(self, x):
        if x.mean().item() > 0:   # data-dependent control flow: not capturable
            return super().forward(x)
        return super().forward(-x)


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    folder = tmp_path_factory.mktemp("captured")
    torch.manual_seed(0)
    model = Small()
    info = capture(model, 64, folder, "small.check")
    assert info["ok"], info
    return model, folder, info


def _program(folder: Path, info, mode="train") -> tuple[Path, str]:
    entry = info["programs"][mode]
    return folder / entry["file"], entry["sha256"]


def _rewrite(source: Path, target: Path, change) -> Path:
    """A copy of an archive with entries changed: change(name, data) -> new data, or None to
    drop; extra entries come back from change("__extra__", None) as a dict."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zout:
        root = zin.namelist()[0].split("/")[0]
        for item in zin.infolist():
            data = change(item.filename[len(root) + 1:], zin.read(item.filename))
            if data is not None:
                zout.writestr(item.filename, data)
        for name, data in (change("__extra__", None) or {}).items():
            zout.writestr(f"{root}/{name}", data)
    return target


class _Payload:
    """A pickle that, unpickled, writes a marker file (what a malicious checkpoint does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_capture_writes_train_and_eval_programs_with_their_hash(captured):
    model, folder, info = captured
    programs = info["programs"]
    assert set(programs) == {"train", "eval"} and programs["train"]["file"] != programs["eval"]["file"]
    for entry in programs.values():
        assert sha256_of(folder / entry["file"]) == entry["sha256"]
        assert entry["bytes"] == (folder / entry["file"]).stat().st_size
    assert info["seconds"] > 0
    assert model.training   # left as it was


def test_the_memoised_loader_reads_the_same_program_as_torch_and_leaves_torch_as_it_was(captured):
    """grader.verifier.load.memoised_deserialisation only saves time: the graph, its symbolic
    sizes and ranges, the weights and the outputs at two sizes are torch's own load's."""
    import typing

    from torch._export.serde.serialize import GraphModuleDeserializer

    _, folder, info = captured
    before = (typing.get_type_hints, GraphModuleDeserializer._parse_sym_expr)
    for mode in ("train", "eval"):
        path, digest = _program(folder, info, mode)
        ours, torchs = load_program(path, digest), torch.export.load(str(path))
        assert ours.graph_module.code == torchs.graph_module.code
        assert [str(n.meta.get("val")) for n in ours.graph.nodes] == [str(n.meta.get("val")) for n in torchs.graph.nodes]
        assert str(ours.range_constraints) == str(torchs.range_constraints)
        assert ours.state_dict.keys() == torchs.state_dict.keys()
        assert all(torch.equal(ours.state_dict[k], torchs.state_dict[k]) for k in ours.state_dict)
    assert (typing.get_type_hints, GraphModuleDeserializer._parse_sym_expr) == before
    program = as_model(*(load_program(*_program(folder, info, mode)) for mode in ("train", "eval"))).eval()
    reference = as_model(*(torch.export.load(str(_program(folder, info, mode)[0])) for mode in ("train", "eval")))
    reference.load_state_dict(program.state_dict())   # the eval file holds placeholders; tie as as_model does
    reference.eval()
    for size in (64, 160):
        x = torch.randn(2, 3, size, size)
        assert torch.equal(program(x), reference(x))


def test_the_captured_model_is_the_model_at_other_sizes_in_both_modes(captured):
    model, folder, info = captured
    train_path, train_hash = _program(folder, info, "train")
    eval_path, eval_hash = _program(folder, info, "eval")
    program = as_model(load_program(train_path, train_hash), load_program(eval_path, eval_hash))
    assert [n for n, _ in program.named_parameters()] == [n for n, _ in model.named_parameters()]
    model.eval()
    program.eval()
    x = torch.randn(3, 3, 96, 128)
    with torch.no_grad():
        assert torch.allclose(program(x), model(x), atol=1e-5)
    # train mode: BatchNorm statistics move in the program's own buffers, dropout drops
    program.train()
    before = program.state_dict()["enc.1.running_mean"].clone()
    out = program(torch.randn(2, 3, 64, 64))
    out.sum().backward()
    assert not torch.equal(program.state_dict()["enc.1.running_mean"], before)
    assert program.head.weight.grad is not None
    assert program.segrade_call_order == ["enc.0", "enc.1", "head"]
    model.train()


class DropoutOnly(nn.Module):
    """Dropout and no BatchNorm, as a VGG16 FCN's fc6/fc7: its two modes differ in one constant."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.drop = nn.Dropout2d(0.5)
        self.head = nn.Conv2d(8, 3, 1)

    def forward(self, x):
        return self.head(self.drop(torch.relu(self.conv(x))))


def test_a_model_whose_modes_differ_only_in_dropout_is_evaluated_without_it(tmp_path):
    """Dropout is one op in both modes with another constant (`aten.feature_dropout(x, 0.5,
    train)`): the eval program is a file of its own, and the captured model in eval mode
    computes what the model does in eval mode. Until 2026-12-06 the two graphs counted as
    the same and the eval forward ran the train graph: every VGG16 FCN was evaluated with
    its fc6/fc7 dropout on."""
    torch.manual_seed(0)
    model = DropoutOnly()
    info = capture(model, 64, tmp_path, "drop.check")
    assert info["ok"], info
    assert info["programs"]["train"]["file"] != info["programs"]["eval"]["file"]
    program = as_model(*(load_program(*_program(tmp_path, info, mode)) for mode in ("train", "eval")))
    program.eval()
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(program(x), program(x))
        assert torch.allclose(program(x), model(x), atol=1e-6)
        program.train()
        assert not torch.equal(program(x), program(x))   # train mode: dropout drops


def test_a_model_that_cannot_be_captured_says_why(tmp_path):
    info = capture(DataDependent(), 64, tmp_path, "dd.check")
    assert not info["ok"] and "torch.export could not capture" in info["error"]
    assert list(tmp_path.iterdir()) == []


class SizeToConstant(nn.Module):
    """Halves the resolution with `int(h / 2)`: torch.export (2.15) takes the float's value at
    the capture size as a constant, without a guard, so the program computes another model at
    every other size. With `h // 2` (IntegerSizes) the size stays symbolic."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.enc = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(4, num_classes, 1)

    def half(self, h, w):
        return int(h / 2), int(w / 2)

    def forward(self, x):
        h, w = x.shape[2], x.shape[3]
        y = nn.functional.interpolate(self.enc(x), size=self.half(h, w), mode="bilinear")
        return self.head(nn.functional.interpolate(y, size=(h, w), mode="bilinear"))


class AlwaysDropping(SizeToConstant):
    def forward(self, x):
        return self.head(nn.functional.dropout(self.enc(x), 0.5))


class ConstantAndDropping(SizeToConstant):
    def forward(self, x):
        return nn.functional.dropout(super().forward(x), 0.5)


class ConstantWhileTraining(SizeToConstant):
    """The size becomes a constant in its training branch only: the program the verifier
    trains would be another model."""

    def half(self, h, w):
        return (int(h / 2), int(w / 2)) if self.training else (h // 2, w // 2)


class IntegerSizes(SizeToConstant):
    def half(self, h, w):
        return h // 2, w // 2


@pytest.mark.slow  # three captures (torch.export) in this process
def test_a_program_that_turned_a_size_into_a_constant_is_not_graded(tmp_path):
    """The program is compared with the model at a size unlike the capture's (batch, height and
    width) before it is saved: one that computes something else there is not graded as the
    model; the model is measured in the worker, marked so, with the reason and the fix."""
    assert comparison_size(2, 224, 64) == (1, 64, 96)       # the probes' size, another width and batch
    assert comparison_size(2, 256, None) == (1, 224, 288)   # the other-sizes check's
    assert comparison_size(1, 256, 256) == (2, 224, 288)
    torch.manual_seed(0)
    info = capture(SizeToConstant(), 128, tmp_path / "constant", "c.check", probe_size=64)
    assert not info["ok"]
    assert info["error"].startswith("the captured program computes other logits than the model at 1x3x64x96")
    assert "x.shape[2] // 2" in info["error"]
    assert not list((tmp_path / "constant").iterdir())   # nothing saved for the verifier
    info = capture(IntegerSizes(), 128, tmp_path / "integer", "i.check", probe_size=64)
    assert info["ok"], info
    # Dropout left on in eval mode (F.dropout's default training=True, a common slip) is random,
    # not a constant: both run from the same random state, and the program is kept.
    info = capture(AlwaysDropping(), 128, tmp_path / "dropping", "d.check", probe_size=64)
    assert info["ok"], info
    # ... and so a size turned into a constant is still seen through the dropout
    info = capture(ConstantAndDropping(), 128, tmp_path / "both", "b.check", probe_size=64)
    assert not info["ok"] and "computes other logits than the model" in info["error"]
    # The train program is compared too (the verifier trains it), in train mode
    info = capture(ConstantWhileTraining(), 128, tmp_path / "training", "t.check", probe_size=64)
    assert not info["ok"]
    assert info["error"].startswith("the captured program computes other logits than the model at 1x3x64x96 in "
                                    "train mode")


class CeilingPad(SizeToConstant):
    """Pads to a multiple of 32 with math.ceil on a size: captured, but torch.export.save
    cannot write a graph that calls math.ceil."""

    def forward(self, x):
        h = x.shape[2]
        pad = math.ceil(h / 64) * 64 - h
        return self.head(self.enc(nn.functional.pad(x, (0, pad, 0, pad))))[..., :h, :x.shape[3]]


class Counting(nn.Module):
    """Counts its calls in two buffers, one in place and one reassigned."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.register_buffer("in_place", torch.zeros(()))
        self.register_buffer("reassigned", torch.zeros(()))

    def forward(self, x):
        self.in_place += 1
        self.reassigned = self.reassigned + 1
        return self.conv(x)


def test_the_comparison_leaves_the_model_and_its_programs_as_built(tmp_path):
    """The comparison runs the model and the program once more; what that changes is put
    back before the programs are saved: their state is the model's as built."""
    model = Counting()
    info = capture(model, 64, tmp_path, "n.check", probe_size=32)
    assert info["ok"], info
    assert float(model.in_place) == float(model.reassigned) == 0
    program = load_program(*_program(tmp_path, info))
    assert {k: float(v) for k, v in program.state_dict.items() if "conv" not in k} == {"in_place": 0, "reassigned": 0}


def test_a_program_that_cannot_be_written_says_why_and_leaves_no_file(tmp_path):
    info = capture(CeilingPad(), 128, tmp_path, "p.check", probe_size=64)
    assert not info["ok"]
    assert info["error"].startswith("the captured program cannot be written: SerializeError")
    assert "(-(-h // 32) * 32 for a ceiling)" in info["error"]
    assert not list(tmp_path.iterdir())


def test_a_program_whose_hash_changed_is_refused(captured):
    _, folder, info = captured
    path, _ = _program(folder, info)
    with pytest.raises(ProgramRefused) as refused:
        load_program(path, "0" * 64)
    assert refused.value.reason == "hash" and "changed after capture" in refused.value.message


def test_a_truncated_program_is_refused(captured, tmp_path):
    _, folder, info = captured
    path, _ = _program(folder, info)
    cut = tmp_path / "cut.pt2"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ProgramRefused) as refused:
        load_program(cut, sha256_of(cut))
    assert refused.value.reason == "corrupt" and "truncated or damaged" in refused.value.message


def test_an_oversize_program_is_refused(captured):
    _, folder, info = captured
    path, digest = _program(folder, info)
    with pytest.raises(ProgramRefused) as refused:
        load_program(path, digest, ProgramLimits(max_file_bytes=1000))
    assert refused.value.reason == "oversize" and "limit" in refused.value.message
    with pytest.raises(ProgramRefused) as refused:
        load_program(path, digest, ProgramLimits(max_unpacked_bytes=1000))
    assert refused.value.reason == "oversize"


def test_a_pickled_weight_is_refused_and_never_unpickled(captured, tmp_path):
    _, folder, info = captured
    path, _ = _program(folder, info)
    marker = tmp_path / "marker"
    payload = pickle.dumps(_Payload(marker))

    def pickled(name, data):
        if name == "data/weights/model_weights_config.json":
            config = json.loads(data)
            first = next(iter(config["config"].values()))
            first["use_pickle"] = True
            return json.dumps(config).encode()
        if name == "data/weights/weight_0":
            return payload
        return data if name != "__extra__" else None

    crafted = _rewrite(path, tmp_path / "pickled.pt2", pickled)
    with pytest.raises(ProgramRefused) as refused:
        load_program(crafted, sha256_of(crafted))
    assert refused.value.reason == "payload" and "pickled object" in refused.value.message
    assert not marker.exists()


def test_a_pickle_in_the_sample_inputs_is_not_run(captured, tmp_path):
    """torch's loader retries a refused torch.load with weights_only=False: not here."""
    _, folder, info = captured
    path, _ = _program(folder, info)
    marker = tmp_path / "marker"
    buffer = io.BytesIO()
    torch.save(_Payload(marker), buffer)   # a torch.save zip whose data.pkl runs code

    def inputs(name, data):
        if name == "data/sample_inputs/model.pt":
            return buffer.getvalue()
        return data if name != "__extra__" else None

    crafted = _rewrite(path, tmp_path / "inputs.pt2", inputs)
    with pytest.raises(ProgramRefused) as refused:
        load_program(crafted, sha256_of(crafted))
    assert refused.value.reason in ("payload", "unloadable")
    assert not marker.exists()


@pytest.mark.parametrize("entry", ["data/aotinductor/model/model.so", "extra/notes.txt", "data/constants/custom_obj_0",
                                   "../escape"])
def test_entries_torch_export_save_does_not_write_are_refused(captured, tmp_path, entry):
    _, folder, info = captured
    path, _ = _program(folder, info)
    crafted = _rewrite(path, tmp_path / "extra.pt2", lambda name, data: {entry: b"x"} if name == "__extra__" else data)
    with pytest.raises(ProgramRefused) as refused:
        load_program(crafted, sha256_of(crafted))
    assert refused.value.reason == "payload" and "not part of a program saved by torch.export.save" \
        in refused.value.message


def test_an_operator_the_verifier_refuses(tmp_path):
    info = capture(Prints(), 64, tmp_path, "prints.check")
    assert info["ok"], info
    path = tmp_path / info["programs"]["train"]["file"]
    with pytest.raises(ProgramRefused) as refused:
        load_program(path, info["programs"]["train"]["sha256"])
    assert refused.value.reason == "op" and "aten._print" in refused.value.message


def test_the_ops_of_an_honest_program(captured):
    _, folder, info = captured
    ops = check_ops(load_program(*_program(folder, info, "eval")))
    assert "aten.conv2d" in ops and "aten.batch_norm" in ops or "aten._native_batch_norm_legit_no_training" in ops


def test_eval_and_train_programs_of_different_models_do_not_pair(captured, tmp_path):
    _, folder, info = captured
    other = capture(nn.Sequential(nn.Conv2d(3, 3, 1)), 64, tmp_path, "other.check")
    with pytest.raises(ValueError, match="not the train-mode program's"):
        as_model(load_program(*_program(folder, info)), load_program(tmp_path / other["programs"]["eval"]["file"],
                                                                     other["programs"]["eval"]["sha256"]))


# --------------------------------------------------------------------------- the protocol

PROGRAM = {"file": "unet.check.train.pt2", "sha256": "a" * 64, "bytes": 10}


def _line(**data):
    return json.dumps({"event": "capture", "id": "unet", "purpose": "check", **data})


@pytest.mark.parametrize("bad", [
    {"ok": True},                                                              # no programs
    {"ok": False},                                                             # no error
    {"ok": True, "programs": {"train": PROGRAM | {"file": "../x.pt2"}, "eval": PROGRAM}},
    {"ok": True, "programs": {"train": PROGRAM | {"sha256": "zz"}, "eval": PROGRAM}},
    {"ok": True, "programs": {"train": PROGRAM}},
    {"ok": True, "programs": {"train": PROGRAM, "eval": PROGRAM}, "purpose": "other"},
])
def test_malformed_capture_messages_are_rejected(bad):
    with pytest.raises(ProtocolError):
        parse(_line(**bad))


def test_capture_messages_keep_the_reader_s_order():
    def reader():
        r = Reader(["unet"], [], "train")
        for m in ({"event": "phase", "phase": "import"}, {"event": "phase", "phase": "build", "id": "unet"}):
            r.read(json.dumps(m))
        return r

    good = _line(ok=True, programs={"train": PROGRAM, "eval": PROGRAM})
    r = reader()
    r.read(good)
    with pytest.raises(ProtocolError, match="repeated"):
        r.read(good)
    r.read(json.dumps({"event": "result", "result": {"id": "unet"}}))
    with pytest.raises(ProtocolError):   # a train capture outside the capture phase
        reader().read(_line(purpose="train", ok=False, error="x"))
    r.read(json.dumps({"event": "phase", "phase": "capture", "id": "unet"}))
    r.read(_line(purpose="train", ok=False, error="the model could not be captured"))
    # a new build of the same variant (its next candidate) may capture again
    r2 = reader()
    r2.read(good)
    r2.read(json.dumps({"event": "phase", "phase": "build", "id": "unet"}))
    r2.read(good)


# --------------------------------------------------------------------------- whose training counts

def _capture(variant, purpose, ok):
    from grader.shared.protocol import Capture

    return Capture(variant=variant, purpose=purpose, ok=ok, programs={})


def _predictions(variant):
    from grader.shared.protocol import Predictions

    return Predictions(variant=variant, split="test", shape=(1, 2, 2), data="")


def test_the_worker_s_predictions_of_a_captured_variant_are_dropped():
    """A worker that sends a training of its own for a variant the verifier trains (a patched
    channel, forged predictions) is not listened to: only the verifier's predictions count."""
    from grader.grading.pipeline import WorkerMessages

    heard = []
    listen = WorkerMessages(heard.append, capture=True)
    for message in (_capture("a", "check", True), _capture("b", "check", False), _capture("c", "check", True),
                    _capture("c", "train", False), _predictions("a"), _predictions("b"), _predictions("c"),
                    _predictions("not_captured")):
        listen(message)
    assert [m.variant for m in heard if type(m).__name__ == "Predictions"] == ["b", "c", "not_captured"]


def test_the_verifier_trains_a_captured_variant_whatever_the_worker_claims():
    from grader.grading.pipeline import verifier_trains

    ok = {"check": {"ok": True}}
    assert verifier_trains(ok, None)
    assert verifier_trains(ok, TrainingOutcome(ok=True, steps=30))           # a success claimed by the worker: ignored
    assert not verifier_trains(ok, TrainingOutcome(ok=False, error="unreadable weights"))   # a failure stands
    assert not verifier_trains(ok | {"train": {"ok": False}}, None)  # the worker trained it: student process
    assert verifier_trains(ok | {"train": {"ok": True}}, None)


# --------------------------------------------------------------------------- what the records say

def test_the_graded_program_and_the_fallback_are_named_in_gradescope_and_the_summary(monkeypatch):
    from grader.records.results import SubmissionResult
    from grader.records.view import program_line
    from grader.report.gradescope import gradescope_results
    from grader.report.summary import summary_context
    from grader.spec import load_spec

    data = json.loads((Path(__file__).parent / "data" / "results_small.json").read_text())
    digest = "ab" * 32
    captured = {"measured_in": "captured program", "capture_seconds": 1.2,
                "programs": {"train": {"file": "unet.check.train.pt2", "sha256": digest, "bytes": 9},
                             "eval": {"file": "unet.check.eval.pt2", "sha256": "cd" * 32, "bytes": 9}}}
    data["variants"][0]["program"] = {"measured_in": "student process",
                                      "reason": "torch.export could not capture the model: data-dependent"}
    data["variants"][1]["program"] = captured
    assert digest in program_line(captured) and "cd" * 32 in program_line(captured)
    record = SubmissionResult.from_json(data)
    text = json.dumps(gradescope_results(record))
    assert digest in text and "Measured in the student's process" in text and "data-dependent" in text
    for chart in ("histogram_chart", "distribution_chart"):   # the charts are not what is tested here
        monkeypatch.setattr(f"grader.report.figures.{chart}", lambda *args, **kwargs: None)
    summary = summary_context([record], load_spec())
    assert summary["in_student_process"] == 1
    assert any("measured in the student's process" in f["what"] for f in summary["flagged"])
    assert program_line(None) is None


@pytest.mark.slow
def test_the_verifier_process_refuses_one_program_and_measures_the_other(captured, tmp_path):
    """The real verifier (python -I -m grader.verifier, sandboxed): a program whose hash is not
    the one announced gets that variant a precise error; the other variant is measured."""
    from grader.grading.sandbox import run_worker
    from grader.shared.protocol import VariantRequest, VerifierRequest, VerifierVariant

    _, folder, info = captured
    programs = info["programs"]   # file names in the verifier's job folder, where the folder is linked
    tampered = {mode: {**entry, "sha256": "0" * 64} for mode, entry in programs.items()}
    def variant(vid):
        return VariantRequest(vid, "unet", "UNet", (), {}, 3, None, 64)
    request = VerifierRequest(variants=(VerifierVariant(variant("good"), programs),
                                        VerifierVariant(variant("bad"), tampered)),
                              batch_size=2, device="cpu", threads=1)
    run = run_worker(folder, request, entry="grader.verifier", link=True)
    good, bad = run.variants["good"], run.variants["bad"]
    assert bad.verifier.refused == "hash" and "changed after capture" in bad.build.error
    assert bad.forward is None
    assert good.build.ok and good.forward.output_shape == (2, 3, 64, 64)
    assert good.architecture.bypass_scale == 0.5 and "aten.conv2d" in good.verifier.ops
    assert good.gradients.head == "head" and good.gradients.none == ()
    assert run.problem is None


@pytest.mark.slow
def test_a_verifier_started_early_measures_the_same_and_one_not_used_leaves_nothing(captured):
    """grader.grading.sandbox.EarlyStart: the verifier started while the worker works waits with
    an empty folder until its request is in place, then measures exactly as one started after;
    one closed unused, or one that died while waiting, leaves no process and no folder, and the
    run starts a verifier the usual way instead."""
    from grader.grading.sandbox import EarlyStart, Limits, isolation_available, run_worker
    from grader.shared.protocol import VariantRequest, VerifierRequest, VerifierVariant

    _, folder, info = captured
    request = VerifierRequest(variants=(VerifierVariant(VariantRequest("good", "unet", "UNet", (), {}, 3, None, 64),
                                                        info["programs"]),), batch_size=2, device="cpu", threads=1)

    def early():
        return EarlyStart(Limits(), (), isolation_available())

    waiting = early()
    assert waiting.alive() and list((waiting.job / "submission").iterdir()) == []   # nothing of the job yet
    run = run_worker(folder, request, entry="grader.verifier", link=True, early=waiting)
    good = run.variants["good"]
    assert good.build.ok and good.forward.output_shape == (2, 3, 64, 64) and good.gradients.head == "head"
    assert run.problem is None and run.restarts == 0
    assert not waiting.alive() and not waiting.job.exists()

    unused = early()
    proc, job = unused.proc, unused.job
    unused.close()
    assert proc.poll() is not None and not job.exists()

    dead = early()
    dead.proc.kill()
    dead.proc.wait()
    run = run_worker(folder, request, entry="grader.verifier", link=True, early=dead)
    assert run.variants["good"].build.ok and run.problem is None and not dead.job.exists()


@pytest.mark.slow  # loads and measures three programs
def test_the_verifier_holds_one_variant_in_memory_at_a_time(captured, tmp_path, monkeypatch):
    """The verifier drops a variant's programs before it loads the next: with six VGG16 FCNs
    (several GB each while measured) the fifth and sixth ran out of the address-space limit
    when each variant's programs stayed alive until the next one had been measured. Run
    in-process on the tiny program, three variants: when each pair is loaded, the pairs loaded
    before it are gone."""
    import contextlib
    import gc
    import os
    import threading
    import weakref

    from grader.shared.protocol import VariantRequest, VerifierRequest, VerifierVariant
    from grader.verifier import __main__ as verifier

    _, folder, info = captured
    ids = ("a", "b", "c")
    request = VerifierRequest(variants=tuple(VerifierVariant(VariantRequest(vid, "unet", "UNet", (), {}, 3, None, 64),
                                                             info["programs"]) for vid in ids),
                              batch_size=2, device="cpu", threads=1)
    (tmp_path / "request.json").write_text(json.dumps(request.to_json()))
    loaded, alive_at_load = [], []
    real_load_pair = verifier._load_pair

    def load_pair(programs, limits):
        gc.collect()
        alive_at_load.append(sum(ref() is not None for ref in loaded))
        pair = real_load_pair(programs, limits)
        loaded.extend(weakref.ref(program) for program in pair)
        return pair

    monkeypatch.setattr(verifier, "_load_pair", load_pair)
    monkeypatch.chdir(folder)   # the programs' names are relative to the verifier's job folder
    read, write = os.pipe()
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(os.fdopen(read).read().splitlines()))
    reader.start()
    assert verifier.main([str(tmp_path / "request.json"), str(write)]) == 0
    gc.collect()   # the verifier's channel owns the write end: it closes with it
    with contextlib.suppress(OSError):
        os.close(write)
    reader.join(timeout=60)
    results = [m for m in map(parse, lines) if m.EVENT == "result"]   # the protocol's reader: well-formed
    assert [r.variant for r in results] == list(ids)
    assert all(r.observation.build.ok for r in results)
    assert alive_at_load == [0, 0, 0], alive_at_load


# --------------------------------------------------------------------------- appeals: re-measuring a kept grade

@pytest.mark.slow  # the CLI: the worker, then the verifier twice
def test_segrade_verify_re_measures_a_kept_grade_and_names_a_tampered_program(tmp_path):
    """`segrade check SUB --checks-only --out OUT`, then `segrade verify OUT` as the README writes
    it: the kept programs are measured again without the submission and every check agrees; a
    program changed on disk afterwards is refused by its hash, and verify says that check differs."""
    from grader.cli import main
    from tiny_submission import contract_classes, spec_with, write_submission

    spec = spec_with(["unet"], tmp_path / "spec.toml", architecture=False)
    submission = write_submission(tmp_path / "student", {"models.py": contract_classes()})
    out = tmp_path / "out"
    assert main(["check", str(submission), "--checks-only", "--spec", str(spec), "--out", str(out), "--no-pdf"]) == 0
    shutil.rmtree(submission)   # an appeal never needs the code again
    assert main(["verify", str(out), "--spec", str(spec)]) == 0
    verified = json.loads((out / "verified.json").read_text())["variants"]
    assert [v["variant_id"] for v in verified] == ["unet"] and not verified[0]["changed"]
    assert verified[0]["measured"]["gradients"] == "pass"

    program = next((out / "programs").glob("unet.check.train.pt2"))
    data = bytearray(program.read_bytes())
    data[len(data) // 2] ^= 0xFF
    program.write_bytes(bytes(data))
    assert main(["verify", str(out), "--spec", str(spec)]) == 1
    changed = json.loads((out / "verified.json").read_text())["variants"][0]
    assert changed["changed"]["builds"] == ["pass", "fail"]
    assert "sha256" in changed["messages"]["builds"] or "hash" in changed["messages"]["builds"]


class Layered(nn.Module):
    """Layers of every kind structure.py tells apart: torch layers, a student's module with a
    parameter of its own, a layer called twice, and one forward never calls."""

    class Scale(nn.Module):
        def __init__(self, channels: int) -> None:
            super().__init__()
            self.gain = nn.Parameter(torch.ones(1, channels, 1, 1))

        def forward(self, x):
            return x * self.gain

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.scale = self.Scale(8)
        self.twice = nn.Conv2d(8, 8, 1)
        self.unused = nn.Conv2d(8, 8, 5)
        self.up = nn.ConvTranspose2d(8, 3, 2, stride=2)

    def forward(self, x):
        return self.up(self.twice(self.twice(self.scale(self.down(x)))))


def test_a_programs_layers_are_the_built_models_except_a_layer_never_called(tmp_path):
    """Structural similarity reads a captured variant's layers from its program (the verifier),
    and they are the lines the built model gives (the fallback, the reference's boilerplate), so
    captured and in-process variants compare; the one difference: a program cannot tell what
    a layer forward never calls is."""
    from grader.shared.structure import layers, program_layers

    model = Layered()
    info = capture(model, 64, tmp_path, "layered.check")
    assert info["ok"], info
    built = layers(model)
    assert built == ["Conv2d(8x3x3x3)", "BatchNorm2d(8, 8)", "Module(1x8x1x1)", "Conv2d(8x8x1x1, 8)",
                     "Conv2d(8x8x5x5, 8)", "ConvTranspose2d(8x3x2x2, 3)"]
    for mode in ("train", "eval"):
        program = load_program(*_program(tmp_path, info, mode), ProgramLimits())
        assert program_layers(program) == [*built[:4], "Module(8x8x5x5, 8)", built[5]], mode
    # A module holding many parameters itself: its line is cut to the protocol's bound, not refused.
    many = layers(nn.ParameterList([nn.Parameter(torch.zeros(1000, 1000)) for _ in range(60)]))
    assert len(many[0]) == 400 and many[0].endswith("...)")


def test_a_training_build_that_is_another_model_is_not_trained(captured, tmp_path, monkeypatch):
    """Where the worker captured a training build of its own (another seed, the pretrained
    weights, the submission's weights), it must be the model that was checked: a constructor
    that builds another model the second time it is called (an honestly frozen FCN for the
    checks, a trainable one for the training) gets no training, with a message saying why.
    The same model built again (other values) trains."""
    from grader.measure.captured import graph_signature, state_names
    from grader.shared.protocol import VariantRequest, VerifierVariant
    from grader.verifier import __main__ as verifier
    from grader.verifier.load import ProgramLimits

    model, folder, info = captured
    torch.manual_seed(1)
    again = capture(Small(), 64, folder, "small.again")
    other = capture(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 1)), 64, folder, "other")
    skipping = capture(Skipping(), 64, folder, "skipping")   # the same tensors, another graph
    assert again["ok"] and other["ok"] and skipping["ok"]
    monkeypatch.chdir(folder)   # the programs' names are relative to the verifier's job folder
    checked = verifier._load_pair(info["programs"], ProgramLimits())
    loaded = {"signature": state_names(checked[0]), "graphs": tuple(map(graph_signature, checked))}   # as _check keeps it

    def target(programs):
        return VerifierVariant(VariantRequest("v", "unet", "UNet", (), {}, 3, None, 64), info["programs"],
                               train_programs=programs["programs"])

    trained, _ = verifier._training_model(target(again), loaded, ProgramLimits())
    assert set(trained.state_dict()) == set(model.state_dict())
    with pytest.raises(ValueError) as refused:
        verifier._training_model(target(other), loaded, ProgramLimits())
    assert str(refused.value).startswith(
        "the model built for training is not the model that was checked (tensors only in it: 0.bias, 0.weight, "
        "2.bias and 1 more; tensors it lacks: enc.0.bias, enc.0.weight, enc.1.bias and 6 more)")
    assert str(refused.value).endswith("a constructor must build the same model each time it is called (only the "
                                       "seed, the pretrained weights or the submitted weights may differ)")
    # The same tensors computing something else (as a "no-skip" U-Net whose second
    # build, the one checkpoint mode evaluates, keeps a skip): until 2026-12-07 only the tensors
    # were compared, and the program evaluated was not the one whose architecture was checked.
    with pytest.raises(ValueError) as refused:
        verifier._training_model(target(skipping), loaded, ProgramLimits())
    assert str(refused.value).startswith("the model built for training is not the model that was checked (its graph "
                                         "has "), refused.value
    assert "they part at node" in str(refused.value), refused.value


def test_a_model_that_detects_the_export_is_not_captured(tmp_path):
    """The program is compared with the model at another size before it is saved: a model that
    computes otherwise while traced is not captured (measured in the student's process, its
    identity checks held), and the reason says so."""
    info = capture(DetectsExport(), 64, tmp_path, "detects")
    assert not info["ok"] and not list(tmp_path.glob("*.pt2")), info
    assert info["error"].startswith("the captured program computes other logits than the model at 1x3x32x96")
    assert "torch.compiler.is_exporting()" in info["error"]
