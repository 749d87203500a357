"""grader.shared.protocol: the worker's messages as the grading process reads them (issue 16).

Fast: small synthetic worker outputs fed to the reader, and to the sandbox's real reading
loop through a pipe from a plain Python process (no torch, no student code). Every message
type with wrong types, missing and extra keys, huge values; truncated and non-JSON lines;
out-of-order events; a repeated `done`. The end-to-end runs of hostile submissions that
write to the channel themselves are in test_hostile.py.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile

import pytest

from grader.shared import protocol
from grader.shared.protocol import (Done, Fingerprint, Observation, Predictions, ProtocolError, Raised, Reader,
                                    SizeProbe, VariantReport, line, parse)
from grader.grading.sandbox import MALFORMED, Limits, WorkerRun, _follow

ENV = {"torch": "2.5.1", "python": "3.11.2", "device_type": "cpu"}
FINGERPRINT = {"method": "export", "bypass_scale": 1.0, "downsampling_levels": 4, "long_skips": [1.0, 0.5],
               "residual_adds": 0, "gated_multiplies": [], "ungated_attention": 0, "gated_long_skips": [],
               "long_skip_ops": ["cat", "cat"], "export_error": ""}
OBSERVATION = {
    "id": "unet", "mapping": "UNet(num_classes=13)", "adapter": "contract", "notes": [],
    "build": {"ok": True, "seconds": 0.01}, "parameters": {"total": 1000, "trainable": 1000},
    "forward": {"input_shape": [2, 3, 64, 64], "ok": True, "seconds": 0.1, "output_type": "Tensor",
                "output_shape": [2, 13, 64, 64], "dtype": "float32", "finite": True},
    "output_statistics": {"min": -1.5, "max": 2.0, "sum_to_one": float("nan")},
    "sizes": [{"input_shape": [1, 3, 64, 64], "output_shape": [1, 13, 64, 64], "finite": True},
              {"input_shape": [2, 3, 32, 32], "error": "RuntimeError: sizes"}],
    "figures": {"flops": 123456, "latency_ms": 1.5},
    "gradients": {"none": [], "zero": [], "nonfinite": [], "head": "out", "head_params": ["out.weight"]},
    "architecture": FINGERPRINT,
    "check_seconds": {"total": 1.0, "sizes": 0.2},
}
TRAINING = {"ok": True, "mode": "train", "steps": 4, "train_seconds": 1.0, "seconds": 2.0,
            "skip_ablation": [{"scale": 1.0, "op": "cat", "relative_change": 0.3}]}
PRED = {"shape": [2, 8, 8], "data": "eJxjYBgFo2AUjIJRMAoGJwAAQQAB"}


def transcript(mode: str | None = "train", variants=("unet",)) -> list[str]:
    """What a well-behaved worker sends (the real worker's shapes)."""
    lines = [line("environment", environment={"device": "cpu (2 threads)", "torch": "2.5.1", "python": "3.11.2"}),
             line("phase", phase="import"),
             line("module", path="models.py", ok=True, error=None, seconds=0.1)]
    for vid in variants:
        lines += [line("phase", phase="build", id=vid), line("phase", phase="forward", id=vid),
                  line("phase", phase="check", id=vid), line("result", result={**OBSERVATION, "id": vid})]
        if mode == "train":
            lines += [line("phase", phase="evaluate", id=vid),
                      line("predictions", id=vid, split="test_untrained", **PRED),
                      line("phase", phase="train", id=vid),
                      line("predictions", id=vid, split="val", step=2, seconds=0.5, losses=[2.0, float("nan")], **PRED),
                      line("phase", phase="evaluate", id=vid),
                      line("predictions", id=vid, split="test", train_seconds=1.0, **PRED),
                      line("training", id=vid, training=TRAINING)]
        elif mode == "weights":
            lines += [line("phase", phase="evaluate", id=vid),
                      line("predictions", id=vid, split="test", train_seconds=0.0, **PRED),
                      line("training", id=vid, training={"ok": True, "mode": "weights", "weights": "w.pt"})]
    return lines + [line("done")]


def reader(mode="train", variants=("unet",)) -> Reader:
    return Reader(variants, ["models.py"], mode, ENV)


def read_all(lines, mode="train", variants=("unet",)):
    r = reader(mode, variants)
    return [r.read(x) for x in lines]


@pytest.mark.parametrize("mode", ["train", "weights", None])
def test_a_well_behaved_worker_is_read_into_typed_messages(mode):
    messages = read_all(transcript(mode, ("unet", "fcn8s")), mode, ("unet", "fcn8s"))
    assert isinstance(messages[-1], Done)
    reports = [m for m in messages if isinstance(m, VariantReport)]
    assert [r.variant for r in reports] == ["unet", "fcn8s"]
    predictions = [m for m in messages if isinstance(m, Predictions)]
    if mode == "train":
        assert predictions[1].losses[0] == 2.0 and predictions[1].losses[1] is None  # NaN loss -> None
        assert predictions[0].shape == (2, 8, 8)


# --------------------------------------------------------------------------- form: every message type

def _message(kind: str) -> dict:
    """A valid message of each kind, as a dict."""
    return {"environment": {"event": "environment", "environment": {"device": "cpu (2 threads)", "torch": "2.5.1",
                                                                   "python": "3.11.2"}},
            "module": {"event": "module", "path": "models.py", "ok": True, "error": None, "seconds": 0.1},
            "phase": {"event": "phase", "phase": "build", "id": "unet"},
            "result": {"event": "result", "result": copy.deepcopy(OBSERVATION)},
            "training": {"event": "training", "id": "unet", "training": dict(TRAINING)},
            "predictions": {"event": "predictions", "id": "unet", "split": "val", "step": 2, "seconds": 1.0,
                            "losses": [1.0], **PRED},
            "done": {"event": "done"}}[kind]


KINDS = ("environment", "module", "phase", "result", "training", "predictions", "done")
WRONG_VALUES = [None, True, -1, 10**30, 1e308 * 10, "x" * 2_000_000, [], {}, [[[]]], "NaN"]


def _leaves(value, path=()):
    """Every (path, value) inside a message, objects and lists included."""
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))


def _replace(message, path, new):
    out = copy.deepcopy(message)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return out


def _delete(message, path):
    out = copy.deepcopy(message)
    target = out
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_every_valid_message_parses(kind):
    parse(json.dumps(_message(kind)))


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_types_and_huge_values_anywhere_are_rejected_or_harmless(kind):
    """Every field of every message replaced by values of other types and out-of-range
    sizes: either ProtocolError or a message whose fields still have the schema's types;
    never another exception."""
    message = _message(kind)
    rejected = 0
    for path, value in list(_leaves(message))[1:]:
        for wrong in WRONG_VALUES:
            if wrong == value or type(wrong) is type(value) and not isinstance(value, (dict, list)) \
                    and wrong not in (10**30, "x" * 2_000_000):
                continue
            try:
                parse(json.dumps(_replace(message, path, wrong), allow_nan=True))
            except ProtocolError:
                rejected += 1
    assert rejected > 0


@pytest.mark.parametrize("kind", KINDS)
def test_missing_and_extra_keys_are_rejected(kind):
    message = _message(kind)
    for path, _ in list(_leaves(message))[1:]:
        if isinstance(path[-1], str) and path != ("event",):
            # required keys: rejected; optional ones: the message still parses
            try:
                parse(json.dumps(_delete(message, path), allow_nan=True))
            except ProtocolError as exc:
                assert "missing key" in str(exc) or "expected" in str(exc)
    for path, value in _leaves(message):
        if isinstance(value, dict):
            extra = _replace(message, (*path, "worker_status"), "passed") if path else {**message, "worker_status": 1}
            with pytest.raises(ProtocolError, match="unknown key 'worker_status'|expected"):
                parse(json.dumps(extra, allow_nan=True))


@pytest.mark.parametrize("field, value, words", [
    (("result", "build", "ok"), "yes", "result.build.ok: expected true or false"),
    (("result", "parameters", "total"), 10**30, "result.parameters.total: expected an integer"),
    (("result", "forward", "output_shape"), [2, 13, 64, None], "output_shape[3]: expected an integer"),
    (("result", "architecture", "long_skips"), ["1/2"], "expected"),
    (("result", "mapping"), "m" * 300_000,
     "result.mapping: expected a string of at most 100000 characters, got str of length 300000"),
    (("result", "check_seconds", "total"), -1, "expected a number in 0..1e+07"),
    (("result", "output_statistics", "min"), "low", "expected a number"),
])
def test_messages_name_the_field_that_is_wrong(field, value, words):
    kind = field[0]
    message = _replace(_message(kind), field, value)
    with pytest.raises(ProtocolError) as exc:
        parse(json.dumps(message))
    assert words in str(exc.value)


def test_a_forged_result_is_caught_when_the_real_worker_goes_on():
    """Student code in the constructor sends a well-formed result for its own variant: the
    reader cannot tell it from the real one, but the real worker's next message for that
    variant is then out of order (docs/security.md: what can still be misreported)."""
    r = reader(None)
    for x in transcript(None)[:4]:   # environment, import, module, build
        r.read(x)
    r.read(line("result", result=OBSERVATION))   # the forgery
    with pytest.raises(ProtocolError, match="a forward phase for variant 'unet' out of order"):
        r.read(line("phase", phase="forward", id="unet"))


def test_a_forged_worker_status_or_mode_cannot_be_sent():
    with pytest.raises(ProtocolError, match="unknown key 'worker_status'"):
        parse(line("result", result={"id": "unet", "worker_status": "passed"}))
    r = reader("train")
    for x in transcript("train")[:-3]:
        r.read(x)
    r.read(line("predictions", id="unet", split="test", **PRED))
    with pytest.raises(ProtocolError, match="training.mode 'weights', but 'train' was asked for"):
        r.read(line("training", id="unet", training={"ok": True, "mode": "weights"}))


# --------------------------------------------------------------------------- the observation, typed

# Every part, with the nulls the real worker sends (backbone.backbone, backbone_how) and a raised one.
FULL_OBSERVATION = {
    **OBSERVATION, "classes": ["UNet", "Conv2d"],
    "backbone_found": {"kind": None, "how": None, "built": [], "fc_from_vgg": False},
    "backbone": {"backbone_tensors": 26, "steps": 3, "backbone": None, "vgg_shaped": 0, "changed_parts": {},
                 "backbone_changed": [], "head_changed": ["out.weight"], "seconds": 0.2},
    "structure": {"error": "RuntimeError: no layers", "traceback": None, "oom": False},
    "verifier": {"ops": ["aten.conv2d"], "load_seconds": 0.1, "backbone_how": None},
}
UNRESOLVED = {"id": "unet", "unresolved": "missing", "message": "no UNet", "looked_for": ["UNet"], "candidates": []}


@pytest.mark.parametrize("sent", [OBSERVATION, FULL_OBSERVATION, UNRESOLVED])
def test_an_observation_is_read_into_typed_parts_and_written_back_as_sent(sent):
    observation = parse(line("result", result=sent)).observation
    assert isinstance(observation, Observation)
    again = observation.to_json()
    assert json.dumps(again, sort_keys=True) == json.dumps(sent, sort_keys=True)   # NaN included
    for key, part in sent.items():   # each part's keys in the order sent (check details keep them)
        if isinstance(part, dict):
            assert list(again[key]) == list(part), key
    assert json.dumps(Observation.from_json(again).to_json()) == json.dumps(again)   # (NaN != NaN as records)


def test_the_parts_are_typed_and_a_raised_measurement_is_a_raised():
    observation = Observation.from_json(FULL_OBSERVATION)
    assert observation.forward.output_shape == (2, 13, 64, 64) and observation.forward.finite is True
    assert isinstance(observation.sizes[1], SizeProbe) and observation.sizes[1].error == "RuntimeError: sizes"
    assert isinstance(observation.architecture, Fingerprint) and observation.architecture.long_skips == (1.0, 0.5)
    assert isinstance(observation.structure, Raised) and observation.structure.error == "RuntimeError: no layers"
    assert observation.backbone.backbone is None and observation.backbone.to_json()["backbone"] is None
    assert observation.worker_status is None and observation.training is None   # the grading process's own


@pytest.mark.parametrize("change, message", [   # the messages of the schema before it was typed
    ({"id": 3}, "result.id: expected a string of at most 1000 characters, got 3"),
    ({"gradients": {"none": []}}, "result.gradients: missing key 'zero', 'nonfinite', 'head', 'head_params'"),
    ({"figures": {"error": 1}}, "result.figures.error: expected a string of at most 100000 characters, got 1"),
    ({"sizes": [{"input_shape": [1, 3, 64]}]}, "result.sizes[0].input_shape: expected a list of 4..4 items, got list"),
    ({"build": {"seconds": 1.0}}, "result.build: missing key 'ok'"),
    ({"forward": {"ok": True, "colour": 1}}, "result.forward: unknown key 'colour'"),
    ({"backbone": {"backbone_tensors": 1, "steps": 3, "backbone_changed": [], "head_changed": [],
                   "backbone": {"kind": 1}}},
     "result.backbone.backbone.kind: expected a string of at most 1000 characters, got 1"),
    ({"worker_status": "passed"}, "result: unknown key 'worker_status'"),
    ({"verifier": {"refused": "tired"}},
     "result.verifier.refused: expected one of oversize, hash, corrupt, payload, op, unloadable, mismatch, got 'tired'"),
    ({"architecture": {"method": "export"}}, "result.architecture: missing key 'bypass_scale', 'downsampling_levels', "
                                             "'long_skips', 'residual_adds', 'gated_multiplies', 'ungated_attention'"),
])
def test_a_malformed_observation_is_refused_with_the_same_message(change, message):
    with pytest.raises(ProtocolError) as exc:
        parse(line("result", result={**OBSERVATION, **change}))
    assert str(exc.value) == f"result message: {message}"
    with pytest.raises(ProtocolError) as exc:
        Observation.from_json({**OBSERVATION, **change}, "result")
    assert str(exc.value) == message


@pytest.mark.parametrize("raw, words", [
    (b"", "an empty line"),
    (b"   ", "an empty line"),
    (b"hello from the student", "not JSON"),
    (b'{"event": "done"', "not JSON"),                                  # truncated
    (line("result", result=OBSERVATION)[:200].encode(), "not JSON"),    # truncated mid-way
    (b"\xff\xfe{}", "not UTF-8"),
    (b"[1, 2]", "a JSON list, not an object"),
    (b"null", "a JSON NoneType, not an object"),
    (b'{"event": "done", "event": "done"}', "repeats a key"),
    (b'{"event": "party"}', "unknown event 'party'"),
    (b'{"phase": "build"}', "no 'event' key"),
    (b'{"event": 7}', "unknown event '7'"),
    (b'{"event": "done", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "not JSON"),  # nesting bomb
    (b'{"event": "module", "path": "m.py", "ok": true, "seconds": ' + b"9" * 5000 + b"}", "not JSON"),
    (b'{"event": "phase", "phase": "import", "id": ' + b"[" * 30 + b"]" * 30 + b"}", "expected"),
])
def test_lines_that_are_not_messages(raw, words):
    with pytest.raises(ProtocolError) as exc:
        parse(raw)
    assert words in str(exc.value)


def test_real_device_lines_are_accepted():
    for device, kind in [("cpu (16 threads)", "cpu"), ("cuda (NVIDIA H200)", "cuda"), ("mps", "mps"),
                         ("cuda (Tesla V100-SXM2-16GB)", "cuda"), ("cuda (NVIDIA A100 80GB PCIe)", "cuda")]:
        Reader([], [], None, {**ENV, "device_type": kind}).read(
            line("environment", environment={"device": device, "torch": "2.5.1", "python": "3.11.2"}))


def test_a_forged_environment_is_rejected():
    good = {"device": "cpu (2 threads)", "torch": "2.5.1", "python": "3.11.2"}
    for forged, words in [({**good, "device": "cuda (NVIDIA H100 forged)"}, "not the cpu device asked for"),
                          ({**good, "torch": "9.9.9"}, "not the grading process's '2.5.1'"),
                          ({**good, "device": "cpu\n[bold red]A+[/]"}, "expected a string of the form"),
                          ({**good, "device": "cpu ([red]A+[/])"}, "expected a string of the form"),
                          ({**good, "gpu_hours": 1}, "unknown key 'gpu_hours'"),
                          ({"device": "cpu (2 threads)"}, "missing key")]:
        with pytest.raises(ProtocolError) as exc:
            reader().read(line("environment", environment=forged))
        assert words in str(exc.value)


# --------------------------------------------------------------------------- order

def _spliced(lines, index, extra):
    return lines[:index] + [extra] + lines[index:]


T = transcript("train")
RESULT_AT = next(i for i, x in enumerate(T) if '"event": "result"' in x)
TRAINING_AT = next(i for i, x in enumerate(T) if '"event": "training"' in x)


@pytest.mark.parametrize("lines, mode, words", [
    (T + [line("done")], "train", "after 'done'"),
    (T[:-1] + [line("done"), line("done")], "train", "after 'done'"),
    (T[:-1] + [line("phase", phase="build", id="unet")], "train", "reported already"),
    (_spliced(T, 3, line("phase", phase="build", id="fcn32s_frozen")), "train", "not asked for"),
    (_spliced(T, RESULT_AT + 1, line("result", result=OBSERVATION)), "train", "a second result"),
    (T[:3] + [line("result", result=OBSERVATION)], "train", "not being built"),
    (T[:3] + [line("done")], "train", "'done' before a result for unet"),
    (T[:RESULT_AT] + [line("predictions", id="unet", split="test", **PRED)], "train", "out of order"),
    (T[:RESULT_AT + 2] + [line("predictions", id="unet", split="val", **PRED)], "train", "before its untrained"),
    (_spliced(T, TRAINING_AT, line("predictions", id="unet", split="val", **PRED)), "train", "after its test"),
    (_spliced(T, TRAINING_AT + 1, line("training", id="unet", training=TRAINING)), "train", "a second training"),
    (T[:RESULT_AT + 1] + [line("training", id="unet", training=TRAINING)], None, "no training was asked for"),
    (T[:RESULT_AT + 1] + [line("phase", phase="evaluate", id="unet")], None, "no training was asked for"),
    (T[:RESULT_AT + 2] + [line("predictions", id="unet", split="test_untrained", **PRED)], "weights",
     "checkpoint mode"),
    (_spliced(T, 1, line("environment", environment={"device": "cpu (1 threads)", "torch": "2.5.1",
                                                     "python": "3.11.2"})), "train", "after the worker had started"),
    (_spliced(T, 3, line("module", path="models.py", ok=True)), "train", "a second module message"),
    (_spliced(T, 3, line("module", path="/etc/passwd", ok=True)), "train", "not asked for"),
    (T[:4] + [line("module", path="models.py", ok=True)], "train", "outside the import phase"),
    (T[:2] + [line("phase", phase="check", id="unet")], "train", "out of order"),
    (T[:6] + [line("phase", phase="forward", id="unet")], "train", "out of order"),
    (T[:1] + [line("phase", phase="build", id="unet")], "train", "before the import phase"),
])
def test_impossible_sequences_are_rejected(lines, mode, words):
    r = reader(mode)
    with pytest.raises(ProtocolError) as exc:
        for x in lines:
            r.read(x)
    assert words in str(exc.value)


# --------------------------------------------------------------------------- the sandbox's reading loop

def _follow_bytes(data: bytes, mode="train", variants=("unet", "fcn8s"), then: str = "",
                  limits: Limits = Limits()) -> WorkerRun:
    """The sandbox's real reading loop over what a (fake) worker process writes to its channel
    (`then`: what the fake worker does afterwards)."""
    with tempfile.NamedTemporaryFile(suffix=".bin") as source:
        source.write(data)
        source.flush()
        read_fd, write_fd = os.pipe()
        code = ("import os, sys, time\nfd = int(sys.argv[1])\ndata = open(sys.argv[2], 'rb').read()\n"
                "while data:\n    data = data[os.write(fd, data):]\n" + then)
        proc = subprocess.Popen([sys.executable, "-c", code, str(write_fd), source.name], pass_fds=(write_fd,),
                                start_new_session=True)
        os.close(write_fd)
        run = WorkerRun()
        try:
            outcome = _follow(proc, read_fd, limits, run, True, lambda message: None,
                              Reader(variants, ["models.py"], mode, ENV))
        finally:
            os.close(read_fd)
            proc.kill()
            proc.wait()
    run.outcome = outcome
    return run


def test_the_sandbox_reads_a_well_behaved_worker():
    run = _follow_bytes("".join(transcript("train", ("unet", "fcn8s"))).encode())
    assert run.outcome == "stop" and set(run.variants) == {"unet", "fcn8s"} and run.problem is None
    assert run.variants["unet"].training.mode == "train"  # the mode asked for, set by the parent
    assert run.environment == {"device": "cpu (2 threads)", "torch": "2.5.1", "python": "3.11.2"}


def test_a_malformed_message_in_a_variant_makes_that_variant_an_error():
    lines = transcript("train", ("unet", "fcn8s"))
    at = next(i for i, x in enumerate(lines) if '"phase": "forward"' in x)
    run = _follow_bytes("".join(lines[:at] + ['{"event": "result", "result": {"id": "unet", "worker_status": '
                                              '"passed"}}\n'] + lines[at:]).encode())
    assert run.outcome == "continue"  # the sandbox starts a new worker for the other variant
    assert run.variants["unet"].worker_status == "error" and "fcn8s" not in run.variants
    assert run.variants["unet"].message.startswith(f"{MALFORMED}: result message: result: unknown key 'worker_status'")


def test_a_malformed_message_while_training_fails_the_training_only():
    lines = transcript("train", ("unet",))
    at = next(i for i, x in enumerate(lines) if '"split": "val"' in x)
    run = _follow_bytes("".join(lines[:at] + ["garbage\n"] + lines[at:]).encode(), variants=("unet",))
    assert run.variants["unet"].build.ok is True  # the checks it reported stand
    training = run.variants["unet"].training
    assert training.ok is False and training.worker_status == "error" and MALFORMED in training.error


@pytest.mark.parametrize("data, words", [
    (b"not json at all\n", "not JSON"),
    (line("environment", environment={"device": "cuda (H100)", "torch": "2.5.1", "python": "3.11.2"}).encode(),
     "not the cpu device asked for"),
    (line("done").encode(), "'done' before a result"),
    (b'{"event": "phase", "phase": "import"', "a truncated line"),
    (b"\n", "an empty line"),
])
def test_a_malformed_message_outside_any_variant_is_a_problem_of_the_submission(data, words):
    run = _follow_bytes(data)
    assert run.outcome == "stop" and run.variants == {}
    assert run.problem.startswith(MALFORMED) and words in run.problem and run.problem_status == "error"


def test_a_worker_that_lingers_after_done_or_closes_the_channel_and_runs_on_is_stopped():
    quick = Limits(phase_seconds={"start": 1})
    run = _follow_bytes("".join(transcript("train", ("unet",))).encode(), variants=("unet",),
                        then="time.sleep(600)", limits=quick)
    assert run.outcome == "stop" and run.variants["unet"].training.ok is True  # all was in
    lines = transcript("train", ("unet",))
    run = _follow_bytes("".join(lines[:4]).encode(), variants=("unet",), then="os.close(fd)\ntime.sleep(600)",
                        limits=quick)
    assert run.variants["unet"].worker_status == "error"
    assert "closed the channel during build and did not end" in run.variants["unet"].message


def test_a_long_line_without_an_end_is_read_in_linear_time():
    run = _follow_bytes(b"x" * 40_000_000)
    assert "a truncated line (40000000 bytes without an end)" in run.problem


def test_random_bytes_never_raise_in_the_reading_loop():
    import random

    rng = random.Random(16)
    good = "".join(transcript("train", ("unet", "fcn8s"))).encode()
    for _ in range(40):
        data = bytearray(good)
        for _ in range(rng.randint(1, 5)):
            i = rng.randrange(len(data))
            data[i:i + rng.randint(1, 4)] = bytes(rng.randrange(256) for _ in range(rng.randint(0, 4)))
        run = _follow_bytes(bytes(data))  # never an exception
        assert run.outcome in ("stop", "continue")
        for observed in run.variants.values():
            assert observed.worker_status in (None, "error")


def test_the_protocol_module_imports_nothing_from_segrade():
    source = open(protocol.__file__).read()
    assert "from grader" not in source and "import grader" not in source
