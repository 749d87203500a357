"""The verifier: measures and trains the programs the worker captured, without student code.

Started by grader.grading.sandbox (under the same sandbox and limits as the worker) as
`python -I -u -B -m grader.verifier REQUEST FD` in a folder holding only the captured
programs. It never imports the submission, the worker's stubs and stand-ins, or anything of
grader.worker (tests/test_boundary.py): what it measures is what the program computes.
For each variant it checks and loads the programs (grader.verifier.load), identifies the
backbone from the program's parameters (grader.verifier.provenance), takes the checks'
measurements and runs the standardised training and the predictions (grader.measure.observe),
and reports them over file descriptor FD with the worker's own messages (grader.shared.protocol).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from grader.shared.channel import Channel
from grader.shared.processes import drop_privileges, end_now
from grader.shared.protocol import VerifierRequest, VerifierVariant


def main(argv: list[str]) -> int:
    """argv: REQUEST FD, or REQUEST FD WAIT_FD UID when started early (grader.grading.sandbox.
    EarlyStart): then it becomes UID (-1: stays), imports what measuring needs and waits for
    a byte on WAIT_FD, which comes once REQUEST and the programs are in place (end of file:
    not needed after all)."""
    if len(argv) == 4:
        if int(argv[3]) >= 0:
            drop_privileges(int(argv[3]))
        _import_measurement()
        if not os.read(int(argv[2]), 1):
            return 0
        os.close(int(argv[2]))
    request = VerifierRequest.from_json(json.loads(Path(argv[0]).read_text()), "request")
    channel = Channel(int(argv[1]))
    if request.drop_to is not None:
        drop_privileges(request.drop_to)

    import torch

    from grader.measure import observe
    from grader.shared.device import describe, resolve_device
    from grader.verifier.load import ProgramLimits

    device = resolve_device(request.device)
    if request.threads:
        torch.set_num_threads(request.threads)
    if device.type == "cuda" and request.cuda_memory_fraction:
        torch.cuda.set_per_process_memory_fraction(request.cuda_memory_fraction, device)
    channel.send("environment", environment={
        "device": describe(device), "torch": torch.__version__, "python": sys.version.split()[0]})
    channel.send("phase", phase="import")   # nothing to import: the programs are loaded per variant
    limits = ProgramLimits()
    imagenet = None
    training = request.training
    for target in request.variants:
        variant = target.variant
        channel.send("phase", phase="build", id=variant.id)
        if imagenet is None and variant.family == "fcn" and request.vgg16_weights:
            from grader.verifier.provenance import imagenet_vgg16

            try:
                imagenet = imagenet_vgg16(request.vgg16_weights)
            except Exception as exc:   # not a VGG16 state dict: provenance by layers only
                print(f"[verifier] the VGG16 weights file could not be read ({observe.short_error(exc)}): "
                      "backbones are identified by their layers only")
                imagenet = {}
        trains = training is not None and target.train
        try:
            result, loaded = _check(target, device, request, channel, limits, imagenet,
                                    keep=trains and not target.train_programs)
        except Exception as exc:   # the verifier's own failure on this program: that variant's error
            result, loaded = {"id": variant.id, "build": {"ok": False, "error": "the verifier failed on the "
                                                             f"captured program: {observe.short_error(exc)}",
                                                             "traceback": observe.traceback_tail()}}, None
        channel.send("result", result=result)
        if trains and loaded is not None and observe.trainable(result):
            trained = observe.train_and_predict(lambda: _training_model(target, loaded, limits), variant, device,
                                                training, channel.send, lambda: None)
            channel.send("training", id=variant.id, training=trained)
        # One variant in memory at a time: a VGG16 FCN's programs, their initial state and its
        # optimiser hold several GB, and the next one is loaded under the same address-space
        # limit (erin_mistakes' fifth and sixth FCNs failed their checks for want of memory).
        result = loaded = trained = None
        gc.collect()
    channel.send("done")
    return 0


def _import_measurement() -> None:
    """What the first variant would import (most of the verifier's start-up): torch, torch.export's
    deserialiser (which imports torch._dynamo) and the measurements."""
    import torch.export
    from torch._export.serde import serialize

    from grader.measure import captured, observe
    from grader.verifier import fixed, load, provenance

    del torch, serialize, captured, observe, fixed, load, provenance   # imported is all that is wanted


def _load_pair(programs: dict[str, dict[str, Any]], limits) -> tuple[Any, Any]:
    from grader.verifier.load import load_program

    train = load_program(Path(programs["train"]["file"]), programs["train"]["sha256"], limits)
    if programs["eval"]["file"] == programs["train"]["file"]:
        return train, train
    return train, load_program(Path(programs["eval"]["file"]), programs["eval"]["sha256"], limits)


def _check(target: VerifierVariant, device, request: VerifierRequest, channel: Channel, limits,
           imagenet, keep: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Load the checks' programs, identify the backbone, measure. Returns the observation
    and, when `keep` (the training starts from them), what training needs: the loaded
    programs and their initial state ({} otherwise); None when the programs were refused."""
    from grader.measure import observe
    from grader.measure.captured import as_model, graph_signature, state_names
    from grader.shared import structure
    from grader.verifier.fixed import fixed_values
    from grader.verifier.load import ProgramRefused, check_ops
    from grader.verifier.provenance import identify

    result: dict[str, Any] = {"id": target.id}
    started = time.perf_counter()
    try:
        train_program, eval_program = _load_pair(target.programs, limits)
        ops = sorted(set(check_ops(train_program)) | set(check_ops(eval_program)))
        model = as_model(train_program, eval_program)
    except ProgramRefused as refused:
        return result | {"build": {"ok": False, "error": f"the captured program was refused: {refused.message}"},
                         "verifier": {"refused": refused.reason, "message": refused.message}}, None
    except ValueError as exc:
        return result | {"build": {"ok": False, "error": f"the captured programs do not match: {exc}"},
                         "verifier": {"refused": "mismatch", "message": str(exc)}}, None
    load_seconds = round(time.perf_counter() - started, 3)
    result["build"] = {"ok": True, "seconds": load_seconds}
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()} if keep else None
    identified = None
    try:
        identified = identify(eval_program, model, imagenet, request.seed)
        result["backbone_found"] = {k: v for k, v in identified.items() if k not in ("tensors", "vgg_shaped")}
    except Exception as exc:
        result["backbone_found"] = {"error": observe.short_error(exc)}
    try:   # before any measurement trains it: what the program holds as built
        fixed = fixed_values((train_program, eval_program), model, set((identified or {}).get("tensors") or ()),
                             fcn=target.variant.family == "fcn")
    except Exception as exc:   # not counted: the grading side holds nothing for it
        print(f"[verifier] the fixed values of {target.id} were not counted: {observe.short_error(exc)}")
        fixed = None
    result |= observe.measure_checks(model, target.variant, device, request.batch_size, channel.send,
                                     lambda: None, identified, lambda _: structure.program_layers(train_program))
    result["verifier"] = {"ops": ops[:5000], "load_seconds": load_seconds,
                          "backbone_how": (identified or {}).get("how")} | ({"fixed": fixed} if fixed else {})
    kept = {"programs": (train_program, eval_program), "initial": initial} if keep else {}
    # A training build of its own must be this same model (_training_model): its tensors and its graphs.
    return result, kept | {"signature": state_names(train_program),
                           "graphs": (graph_signature(train_program), graph_signature(eval_program))}


def signature_difference(checked: dict[str, tuple], trained: dict[str, tuple]) -> str | None:
    """What tells two programs' states apart (grader.measure.captured.state_names), in a few
    words; None when they are the same."""
    def names(items) -> str:
        items = sorted(items)
        return ", ".join(items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")

    parts = []
    if set(trained) - set(checked):
        parts.append(f"tensors only in it: {names(set(trained) - set(checked))}")
    if set(checked) - set(trained):
        parts.append(f"tensors it lacks: {names(set(checked) - set(trained))}")
    other = [n for n in set(checked) & set(trained) if checked[n] != trained[n]]
    if other:
        parts.append(f"of another shape or type: {names(other)}")
    return "; ".join(parts) or None


def _training_model(target: VerifierVariant, loaded: dict[str, Any], limits) -> tuple[Any, str | None]:
    """The model to train: the training build's programs when the worker captured one (another
    pretrained switch, the submission's weights), else the checks' programs at their
    captured state (the checks' measurements trained that model a little)."""
    from grader.measure.captured import as_model, graph_difference, graph_signature, state_names

    if target.train_programs:
        train, evaluate = _load_pair(target.train_programs, limits)
        differs = signature_difference(loaded["signature"], state_names(train))
        if not differs:   # the same tensors computing something else: a skip only the second build takes
            differs = next(filter(None, (graph_difference(checked, graph_signature(program)) for checked, program
                                         in zip(loaded["graphs"], (train, evaluate)))), None)
        if differs:   # a constructor that builds another model the second time it is called
            raise ValueError(f"the model built for training is not the model that was checked ({differs}); a "
                             "constructor must build the same model each time it is called (only the seed, the "
                             "pretrained weights or the submitted weights may differ)")
        return as_model(train, evaluate), target.weights
    model = as_model(*loaded["programs"])
    model.load_state_dict(loaded["initial"])
    return model, target.weights


if __name__ == "__main__":
    end_now(main(sys.argv[1:]))
