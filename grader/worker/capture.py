"""Capture a built model as a program (torch.export), for the verifier to measure and grade.

Runs in the worker, right after a variant is built. `capture(model, ...)` exports the model
once in train mode and once in eval mode (they differ where BatchNorm or dropout behave
differently; when the two graphs are the same one file serves both; when they differ the
eval program's file holds the graph and only placeholders of the weights, which are the
train program's), non-strict, with a
dynamic batch and a dynamic image size (multiples of 32), compares each program with the
model in its mode at another size (`faithfulness`: a program that computes another model is not
saved), saves each with torch.export.save
into the job's capture folder and returns what the `capture` message reports: the files,
their sha256 and size, the time taken, or why the model could not be captured (then the
worker measures it in its own process, and the grade says so).

Nothing here is trusted by the grading side: the files are what is graded, whoever wrote
them; the verifier checks them before loading (grader.verifier.load).

Two things torch does on the way that nothing reads are left out (`_lean_export`,
`_lean_save`): each node's Python stack trace (segrade reads the module path, never the
trace) and the serializer's self-test of its canonical form (its result is thrown away).
Measured on one CPU thread, 2026-12-07 (benchmarks/bench_capture_lean.py): a whole capture of
the reference's U-Net 0.93x, its attention U-Net 0.86x, its FCN-8s 1.00x (its time is the
forwards and the 0.5 GB of weights); the programs compute the same.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import time
import warnings
from pathlib import Path
from typing import Any

MAX_BATCH = 64
MAX_SIDE_BLOCKS = 64   # sides up to 64 x 32 = 2048 pixels


@contextlib.contextmanager
def _lean_export():
    """torch.export without a stack trace per node (torch.fx.config.do_not_emit_stack_traces)."""
    import torch.fx.config as config

    was = getattr(config, "do_not_emit_stack_traces", False)
    config.do_not_emit_stack_traces = True
    try:
        yield
    finally:
        config.do_not_emit_stack_traces = was


@contextlib.contextmanager
def _lean_save():
    """torch.export.save without the serializer's check that the program has a canonical form:
    torch computes it and throws it away (torch._export.serde.serialize, "Test canonical form
    is well defined"). Where torch has no such function any more, save as it is."""
    from torch._export.serde import serialize

    canonicalize = getattr(serialize, "canonicalize", None)
    if canonicalize is None:
        yield
        return
    serialize.canonicalize = lambda program, constants=None: program
    try:
        yield
    finally:
        serialize.canonicalize = canonicalize


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:480]


def _dynamic_shapes(min_blocks: int = 1):
    from torch.export import Dim

    # Dims are named per call: export refuses two dims of one name with other bounds.
    return {"x": {0: Dim("n", min=1, max=MAX_BATCH), 2: 32 * Dim("h", min=min_blocks, max=MAX_SIDE_BLOCKS),
                  3: 32 * Dim("w", min=min_blocks, max=MAX_SIDE_BLOCKS)}}


# Smallest side first (32 px: the checks probe half the assignment's size, 32 px for a 64-px
# spec); a model whose code needs more (a guard on a 1x1 feature map) is tried from 64 px.
_MIN_BLOCKS = (1, 2)


def _graph_signature(program) -> tuple[str, ...]:
    """The graph as it computes: each node's op, target and arguments. The arguments count:
    train and eval mode can differ in a constant alone (`aten.feature_dropout(x, 0.5, True)`
    in train mode, `..., False)` in eval mode), and one file for both would run the eval
    forward with dropout on."""
    return tuple(f"{n.op}:{n.target}:{n.args!r}:{n.kwargs!r}" for n in program.graph.nodes)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def capture(model, input_size: int, folder: Path, stem: str, batch_size: int = 2,
            probe_size: int | None = None, channels: int = 3) -> dict[str, Any]:
    """Export `model` in train and eval mode and save the programs as folder/stem.{mode}.pt2.
    Returns {"ok": True, "programs": {mode: {"file", "sha256", "bytes"}}, "seconds"} or
    {"ok": False, "error": why, "seconds"}. The model is left as it was (mode, attributes).
    `probe_size`: the smallest size the checks run the model at (the spec's), where the
    program is compared with the model before it is saved (`faithfulness`)."""
    import torch

    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    x = torch.randn(batch_size, channels, input_size, input_size, generator=torch.Generator().manual_seed(0))
    try:
        x = x.to(next(model.parameters()).device)
    except StopIteration:
        pass
    quiet = io.StringIO()
    exported = {}
    # The forward ran on fake tensors: attributes it assigned (self.alpha = ...) hold them.
    with _as_built(model):
        try:
            # export prints partial graphs and the forward's own prints would show fake tensors
            with warnings.catch_warnings(), contextlib.redirect_stderr(quiet), contextlib.redirect_stdout(quiet), \
                    _lean_export():
                warnings.simplefilter("ignore")
                for mode in ("train", "eval"):
                    model.train(mode == "train")
                    for min_blocks in _MIN_BLOCKS:
                        try:
                            exported[mode] = torch.export.export(model, (x,), strict=False,
                                                                 dynamic_shapes=_dynamic_shapes_for(model, min_blocks))
                            break
                        except Exception:
                            if min_blocks == _MIN_BLOCKS[-1]:
                                raise
        except Exception as error:
            return {"ok": False, "error": f"torch.export could not capture the model with a dynamic batch and image "
                                          f"size: {_first_line(error)}",
                    "seconds": round(time.perf_counter() - started, 3)}
    same = _graph_signature(exported["train"]) == _graph_signature(exported["eval"])
    # The eval program, and the train program where it is another graph (the verifier trains it).
    differs = faithfulness(model, {"eval": exported["eval"]} if same else exported,
                           comparison_size(batch_size, input_size, probe_size), x.device, channels)
    if differs:
        return {"ok": False, "error": differs, "seconds": round(time.perf_counter() - started, 3)}
    if not same:
        _weights_once(exported["eval"])
    programs: dict[str, dict[str, Any]] = {}
    for mode in ("train",) if same else ("train", "eval"):
        path = folder / f"{stem}.{mode}.pt2"
        try:
            with warnings.catch_warnings(), _lean_save():
                warnings.simplefilter("ignore")
                torch.export.save(exported[mode], path)
        except Exception as error:
            from torch._export.serde.serialize import SerializeError   # loaded by torch.export.save

            if not isinstance(error, SerializeError):
                raise   # the disk, a file size limit: the worker says the program could not be saved
            for written in [path, *(folder / entry["file"] for entry in programs.values())]:
                written.unlink(missing_ok=True)
            return {"ok": False, "error": f"the captured program cannot be written: {_first_line(error)}: a Python "
                                          f"function applied to a size (math.ceil, math.floor on x.shape) is not "
                                          f"part of a program that can be saved; integer arithmetic on sizes "
                                          f"(-(-h // 32) * 32 for a ceiling) is",
                    "seconds": round(time.perf_counter() - started, 3)}
        programs[mode] = {"file": path.name, "sha256": sha256_of(path), "bytes": path.stat().st_size}
    if same:
        programs["eval"] = dict(programs["train"])
    exported.clear()   # the programs hold the graph and fake tensors: free them before the next variant
    gc.collect()
    return {"ok": True, "programs": programs, "seconds": round(time.perf_counter() - started, 3)}


def comparison_size(batch_size: int, input_size: int, probe_size: int | None) -> tuple[int, int, int]:
    """A size unlike the capture's (batch_size x input_size x input_size) in batch, height and
    width, among those the checks run: the probe size and 32 px wider, or, where the probes
    run at the input size, the other-sizes check's (input_size - 32) x (input_size + 32)."""
    batch = 1 if batch_size != 1 else 2
    if probe_size and probe_size < input_size:
        return batch, probe_size, probe_size + 32
    return batch, input_size - 32, input_size + 32


def faithfulness(model, programs: dict[str, Any], size: tuple[int, int, int], device,
                 channels: int = 3) -> str | None:
    """None when each program (`programs`: mode -> exported program, "eval" and "train")
    computes what the model computes in that mode at `size` (a size other than the
    capture's), else why not. torch.export can turn a value computed from a
    size into a constant without a guard (`int(x.shape[2] / 2)`, numpy or math on a size): the
    program then computes another model at every other size, and the verifier would grade
    that one. Both run from the same random state (dropout left on in eval mode, as
    `F.dropout(x, 0.5)` does, draws the same masks); a model whose output is random beyond
    torch's generator, or that cannot run at `size`, is not compared (the checks say so)."""
    import torch

    from grader.measure.logits import to_logits

    batch, height, width = size
    shape = f"{batch}x{channels}x{height}x{width}"
    x = torch.randn(batch, channels, height, width, generator=torch.Generator().manual_seed(1)).to(device)

    def run(forward):
        torch.manual_seed(0)
        return to_logits(forward(x))

    why = None
    # What the forwards may change (a counter buffer, an attribute) is put back: the
    # programs are saved after this, and their state is the model's as built.
    with _as_built(model), torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for mode in (m for m in ("eval", "train") if m in programs):
            model.train(mode == "train")
            try:
                expected = run(model)
            except Exception:
                continue
            where = shape if mode == "eval" else f"{shape} in train mode"
            try:
                got = run(programs[mode].module(check_guards=False))
            except Exception as error:
                why = f"the captured program does not run at {where}, where the model does ({_first_line(error)})"
                break
            why = _difference(expected, got, where)
            if why and _difference(expected, run(model), where):   # random beyond the seeded generator
                why = None
            if why:
                break
    return why


@contextlib.contextmanager
def _as_built(model):
    """On leaving, puts back what calling the model may have changed: each module's attributes
    (an assigned `self.alpha`; fake tensors after an export), its buffers, reassigned or changed
    in place, and the mode."""
    import torch

    was_training = model.training
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    attributes = [(module, dict(vars(module)), dict(module._buffers)) for module in model.modules()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in buffers:
                buffer.copy_(value)
        for module, values, own in attributes:
            vars(module).clear()
            vars(module).update(values)
            module._buffers.clear()
            module._buffers.update(own)
        model.train(was_training)


def _difference(expected, got, shape: str) -> str | None:
    import torch

    if not (torch.is_tensor(expected) and torch.is_tensor(got)):
        return None
    if expected.shape != got.shape:
        return (f"the captured program's output at {shape} is {'x'.join(map(str, got.shape))}, the model's "
                f"{'x'.join(map(str, expected.shape))}: a size in the model's code became a constant when it was "
                f"captured")
    if expected.is_floating_point():
        scale = max(1.0, float(expected.abs().nan_to_num().max()))
        difference = float((expected - got).abs().nan_to_num(nan=float("inf")).max()) if expected.numel() else 0.0
        if not torch.equal(expected.isnan(), got.isnan()) or difference > 1e-3 * scale:
            return (f"the captured program computes other logits than the model at {shape} (largest difference "
                    f"{difference:.3g}): a value the code computes from the input's size (int() or float() of a "
                    f"size, numpy or math on x.shape) became a constant when it was captured; integer arithmetic "
                    f"on sizes (x.shape[2] // 2) is captured as it is. A model that computes otherwise while "
                    f"torch.export traces it (a test for fake tensors or torch.compiler.is_exporting()) differs "
                    f"here too")
    elif not torch.equal(expected, got):
        return f"the captured program computes other outputs than the model at {shape}"
    return None


def _weights_once(program) -> None:
    """The eval program's parameters and buffers are the train program's (the verifier ties
    them: grader.measure.captured), so its file holds only their shapes: each becomes a
    one-element placeholder expanded to its shape (a few bytes instead of 0.5 GB for an FCN's
    fc6/fc7). The program's own tensors are untouched: its state_dict entries are replaced."""
    import torch

    state = program.state_dict
    for name, tensor in list(state.items()):
        placeholder = torch.zeros((), dtype=tensor.dtype).expand(tensor.shape)
        state[name] = torch.nn.Parameter(placeholder, requires_grad=tensor.requires_grad) \
            if isinstance(tensor, torch.nn.Parameter) else placeholder


def _dynamic_shapes_for(model, min_blocks: int = 1):
    """dynamic_shapes for forward(x, ...): a tuple, positionally, so the name of forward's
    first argument does not matter."""
    return (_dynamic_shapes(min_blocks)["x"],)
