"""Verifying architecture from the dataflow graph of one forward pass (BRIEF §6).

Runs in the verifier on captured programs, and in the worker next to student code for a model
that could not be captured (imports torch). `fingerprint(model, size)` builds
the dataflow graph of one forward pass on a 1 x 3 x size x size input at the aten level, in one
of two ways, and fingerprints it:

- "export" (tried first): `torch.export.export(model, (x,), strict=False)` under `no_grad`,
  functionalised with `run_decompositions({})` (no decomposition table: `conv2d`, `cat`,
  `upsample_bilinear2d` stay whole, in-place writes become `slice_scatter`/`copy`). The forward
  runs on fake tensors, so no real compute: cheap even at INFLATED_RETRY_SIZE. Attributes the
  forward assigns (`self.alpha = ...`) would keep fake tensors, so every submodule's attributes
  are restored afterwards. A captured program in the verifier (grader.measure.captured) is an
  exported graph already: its nodes are read at the probe size from one real forward pass
  through it (`record_captured`, ~10x cheaper than exporting it again; the same fingerprint,
  tests/test_graph.py), and exported again only when it keeps a grad-mode region.
- "dispatch" (when export fails: data-dependent control flow such as `.item()` in an `if`,
  `.numpy()`, a control-flow operator left in the graph): one real forward pass recorded with
  a `TorchDispatchMode` (the mechanism behind `torch.utils.flop_counter.FlopCounterMode`),
  which works on any Python forward. `Fingerprint.export_error` says why export was not used.

Both give the same `Graph` (below) and the same fingerprint on the reference, the planted
defects and the example submissions (tests/test_graph.py runs every case both ways).
`skip_ablation` always uses the dispatch recording: it has to run the real ops with one
operand replaced by zeros.

The graph
---------
From export: every FX node with a tensor value (one per tensor for tuple outputs, which
`getitem` nodes select) is a value and every call is an op; the user input placeholder is
live, parameters, buffers and lifted constants are not.

From the dispatch recording: values are *tensor versions*. A tensor is identified by what it
is in memory: (storage pointer, storage offset, shape, stride, dtype), so a view's alias or a
tensor that the autograd layer re-wraps is the same value, and a new view is a new value
produced by the view op (lineage is kept). An op that writes into an argument (`relu_`, `add_`, `copy_`, `out=`; known from its
schema) makes a new version of *every* recorded tensor that shares the written storage: a
buffer filled by `buf[:, :c] = x` descends from x. Tensors seen are kept alive until the
recording ends (up to KEEP_ALIVE_BYTES), so memory is not reused under a recorded key; past the
budget a reused address is harmless, since every op output re-registers its key. Ops whose outputs are tuples or
lists (`max_pool2d_with_indices`, `split`, batch norm) give one value per output. Values that
descend from the input are *live*; parameters, buffers and constants are not, and `*_like` /
`new_*` factories do not pass liveness on (they read only a shape).

Scales
------
The scale of a 4-D live value is its height over the input's height, rounded to the nearest
power of two. 1 x 1 maps (global pooling) and non-4-D values have no scale: they are transparent.
Only live values that are ancestors of the output are analysed (dead branches, such as an
attention gate computed but never applied, do not count).

- bypass_scale: the widest path from input to output: max over paths of the min scale on it,
  in information scale: ops that only move elements (a fold into channels, pixel_unshuffle,
  views, strided slices) and maps made smaller with room for every element keep their
  operand's scale (_MOVES), so a skip folded to 1/16 and unfolded again is still a bypass.
- downsampling_levels: log2(1 / the smallest scale among the analysed values).
- long_skips: a cat/add at scale s with one operand that has a path from the input never going
  below s (it arrives directly from the encoder) and another whose every path went below s
  (it went down and back up).
- residual_adds: an add of two live operands at the same scale s that share an ancestor reached
  from both without leaving scale s (identity or 1x1-projected shortcut around a block).
- gated / ungated attention: a multiply of a feature F by a 1-channel sigmoid map M (followed
  back through views, expands, copies, padding and interpolation to a sigmoid). Gated when M's
  ancestry reaches a coarser scale than anything in F's ancestry; otherwise ungated (CBAM-style
  self-attention computed from the feature itself).
- gated_long_skips: the long-skip scales where the encoder operand descends, without leaving
  the scale, from a gated multiply (the gate is on the skip).

Requirements (spec keys, see check_architecture)
------------------------------------------------
    unet            {bypass_scale: 1, long_skips: [1, 0.5, 0.25, 0.125]}
    unet_noskip     {no_long_skips: true, max_bypass_scale: 0.0625}
    unet_residual   {bypass_scale: 1, long_skips: [...], residual_adds_min: 8}
    unet_attention  {bypass_scale: 1, long_skips: [...], gated_skips: true}
    fcn32s / fcn16s / fcn8s   {bypass_scale: 1/32 | 1/16 | 1/8}
residual_adds_min = 8: the reference and every example submission have 9 residual blocks
(4 encoder + bottleneck + 4 decoder), each with one add; 8 tolerates one plain block (a plain
stem is a common and defensible choice) but still requires residual blocks on both the
encoder and the decoder side (an encoder-only residual U-Net has 4-5 adds and fails).

Limitations
-----------
- A sigmoid map counts as gated when its ancestry reaches a coarser scale than the feature's
  own ancestry. A self-attention that downsamples the feature itself and upsamples the map back
  (no g at all) therefore counts as gated; a gate whose sigmoid is hand-written
  (1 / (1 + exp(-z))) or a softmax is not recognised.
- A structural skip that is numerically dead (`cat([f * 0, x])`) still counts; ablation on
  trained weights is the check for that.
- Views taken BEFORE an in-place write to an overlapping but different region are updated too
  (by storage), which can only add lineage, never lose it.
- 1 x 1 maps (global pooling) have no scale; inputs must be multiples of 32 and >= 64.
"""

from __future__ import annotations

import contextlib
import io
import math
import operator
import warnings
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

from grader.shared.protocol import Fingerprint

__all__ = ["Fingerprint", "GraphError", "ExportFailed", "Graph", "record", "record_export", "fingerprint"]

METHODS = ("auto", "export", "dispatch")


class GraphError(RuntimeError):
    """The forward pass could not be recorded (it raised, or its output is not a tensor
    computed from the input)."""


class ExportFailed(GraphError):
    """torch.export could not capture the forward pass; the dispatch recording can."""


# --------------------------------------------------------------------------- recording


@dataclass
class Value:
    shape: tuple[int, ...]
    producer: int | None      # index of the op in Graph.ops, None for external tensors
    live: bool                # descends from the input


@dataclass
class Op:
    name: str                 # aten overload packet name: "convolution", "cat", "add_", ...
    target: str               # full overload: "aten.add.Tensor"
    inputs: list[int]         # value indices: the argument tensors in order, then written-over versions
    outputs: list[int] = field(default_factory=list)
    n_args: int = 0           # how many of `inputs` are argument tensors


@dataclass
class Graph:
    values: list[Value]
    ops: list[Op]
    input: int
    output: int | None
    input_height: int


# Ops whose output depends only on the shape/dtype of their tensor argument.
_SHAPE_ONLY = {
    "zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like", "randint_like",
    "new_zeros", "new_ones", "new_empty", "new_full", "new_empty_strided", "empty_strided",
    "sym_size", "sym_stride", "sym_numel", "sym_storage_offset",
}


KEEP_ALIVE_BYTES = 512 * 2**20


def _key(t: torch.Tensor) -> tuple | None:
    try:
        ptr = t.untyped_storage().data_ptr()
        return (ptr, t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype, t.device.type)
    except Exception:  # sparse, nested, meta: no storage identity
        return None


class _Recorder(TorchDispatchMode):
    def __init__(self, ablate: tuple[int, tuple[int, ...]] | None = None) -> None:
        super().__init__()
        # (op index, argument-tensor positions): those arguments are replaced by zeros when
        # that op runs (skip ablation); the op count is the recording's own, so a replayed
        # forward pass on the same input hits the same op.
        self.ablate = ablate
        self.values: list[Value] = []
        self.ops: list[Op] = []
        self.by_key: dict[tuple, int] = {}
        self.keys_by_storage: dict[int, set[tuple]] = {}
        self.keep: list[torch.Tensor] = []      # strong refs: no memory reuse under a key
        self.kept_bytes = 0

    def _keep(self, t: torch.Tensor) -> None:
        size = t.untyped_storage().nbytes()
        if self.kept_bytes + size <= KEEP_ALIVE_BYTES:
            self.keep.append(t)
            self.kept_bytes += size

    # -- values
    def _new(self, t: torch.Tensor, producer: int | None, live: bool, key: tuple | None = None) -> int:
        self.values.append(Value(tuple(int(d) for d in t.shape), producer, live))
        index = len(self.values) - 1
        key = _key(t) if key is None else key
        if key is not None:
            self.by_key[key] = index
            self.keys_by_storage.setdefault(key[0], set()).add(key)
            self._keep(t)
        return index

    def register_input(self, t: torch.Tensor) -> int:
        return self._new(t, None, True)

    def lookup(self, t: torch.Tensor) -> int:
        key = _key(t)
        if key is not None and key in self.by_key:
            return self.by_key[key]
        return self._new(t, None, False, key)

    # -- ops
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.ablate is not None and len(self.ops) == self.ablate[0]:
            args, kwargs = _zero_arguments(args, kwargs, self.ablate[1])
        out = func(*args, **kwargs)
        try:
            self._record(func, args, kwargs, out)
        except Exception:  # recording must never break the student's forward
            pass
        return out

    def _record(self, func, args, kwargs, out) -> None:
        name = func.overloadpacket.__name__ if hasattr(func, "overloadpacket") else str(func)
        flat_in, _ = tree_flatten((args, kwargs))
        in_tensors = [t for t in flat_in if isinstance(t, torch.Tensor)]
        inputs = [self.lookup(t) for t in in_tensors]
        live = name not in _SHAPE_ONLY and any(self.values[i].live for i in inputs)

        # Arguments the op writes into (in-place and out= variants), from the schema.
        written: list[torch.Tensor] = []
        schema = getattr(func, "_schema", None)
        if schema is not None:
            for position, argument in enumerate(schema.arguments):
                info = argument.alias_info
                if info is None or not info.is_write:
                    continue
                value = args[position] if position < len(args) else kwargs.get(argument.name)
                flat, _ = tree_flatten(value)
                written.extend(t for t in flat if isinstance(t, torch.Tensor))

        op = Op(name, str(func), inputs, n_args=len(inputs))
        self.ops.append(op)
        index = len(self.ops) - 1
        done: set[tuple] = set()
        for t in written:
            key = _key(t)
            if key is None:
                continue
            for alias in sorted(self.keys_by_storage.get(key[0], {key}) | {key}, key=str):
                if alias in done:
                    continue
                done.add(alias)
                old = self.by_key.get(alias)
                alias_live = live
                if old is not None:
                    op.inputs.append(old)
                    alias_live = live or self.values[old].live
                self.values.append(Value(tuple(alias[2]), index, alias_live))
                new = len(self.values) - 1
                self.by_key[alias] = new
                self.keys_by_storage.setdefault(alias[0], set()).add(alias)
                op.outputs.append(new)
        flat_out, _ = tree_flatten(out)
        for t in flat_out:
            if not isinstance(t, torch.Tensor):
                continue
            key = _key(t)
            if key is not None and key in done:
                continue
            op.outputs.append(self._new(t, index, live, key))
            if key is not None:
                done.add(key)


def _output_tensor(out: Any) -> torch.Tensor | None:
    """The logits in what forward returned, by the rule every other measurement (the checks,
    the training, the predictions) applies: grader.measure.logits.to_logits. Until 2026-12-07
    the graph had a rule of its own (the first 4-D tensor in flattened order), and a forward
    returning `((no_skip_logits,), logits)` had its architecture read from the one output and
    was trained and scored on the other. None when the output holds no logits."""
    from grader.measure.logits import to_logits

    try:
        chosen = to_logits(out)
    except TypeError:
        return None
    return chosen if isinstance(chosen, torch.Tensor) else None


def _zero_arguments(args, kwargs, positions: tuple[int, ...]):
    flat, spec = tree_flatten((args, kwargs))
    tensor_positions = [i for i, t in enumerate(flat) if isinstance(t, torch.Tensor)]
    for p in positions:
        if p < len(tensor_positions):
            flat[tensor_positions[p]] = torch.zeros_like(flat[tensor_positions[p]])
    return tree_unflatten(flat, spec)


def _probe_input(model: torch.nn.Module, size: int, in_channels: int, seed: int) -> torch.Tensor:
    if size < 64 or size % 32:
        raise ValueError(f"size must be a multiple of 32 and at least 64, got {size}")
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(1, in_channels, size, size, generator=generator)
    try:
        return x.to(next(model.parameters()).device)
    except StopIteration:
        return x


def record(model: torch.nn.Module, size: int = 64, in_channels: int = 3, seed: int = 0,
           ablate: tuple[int, tuple[int, ...]] | None = None, outputs: list | None = None) -> Graph:
    """Run one forward pass (eval mode, no_grad) on a random 1 x in_channels x size x size
    input and return its recorded dataflow graph. Raises GraphError when the forward fails.
    `ablate`: zero some arguments of one op (see _Recorder); `outputs`: receives the output."""
    x = _probe_input(model, size, in_channels, seed)
    was_training = model.training
    recorder = _Recorder(ablate)
    x_index = recorder.register_input(x)
    model.eval()
    try:
        with torch.no_grad(), recorder:
            out = model(x)
    except Exception as error:
        raise GraphError(
            f"the forward pass on a 1x{in_channels}x{size}x{size} input failed: "
            f"{type(error).__name__}: {error}"
        ) from error
    finally:
        model.train(was_training)
    tensor = _output_tensor(out)
    if tensor is None:
        raise GraphError(f"the model returned {type(out).__name__}, in which segrade finds no logits tensor")
    if outputs is not None:
        outputs.append(tensor.detach().float().cpu())
    key = _key(tensor)
    output = recorder.by_key.get(key) if key is not None else None
    if output is None or not recorder.values[output].live:
        raise GraphError("the model's output is not computed from its input")
    return Graph(recorder.values, recorder.ops, x_index, output, size)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def record_export(model: torch.nn.Module, size: int = 64, in_channels: int = 3, seed: int = 0) -> Graph:
    """The dataflow graph of `model` on a 1 x in_channels x size x size input, from
    torch.export (non-strict, eval mode, no_grad), functionalised. Raises ExportFailed when
    export cannot capture the forward pass; the model is left as it was either way."""
    x = _probe_input(model, size, in_channels, seed)
    saved = [(module, dict(vars(module))) for module in model.modules()]
    model.eval()
    # export prints the partial graph to stderr when it fails; the forward's own prints would
    # show fake tensors. Neither belongs in the worker log.
    quiet = io.StringIO()
    try:
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stderr(quiet), \
                contextlib.redirect_stdout(quiet):
            warnings.simplefilter("ignore")
            program = torch.export.export(model, (x,), strict=False).run_decompositions({})
        return _graph_from_program(program, size)
    except ExportFailed:
        raise
    except Exception as error:
        raise ExportFailed(f"torch.export failed: {_first_line(error)}") from error
    finally:
        # The forward ran on fake tensors: attributes it assigned (self.alpha = ...) hold them.
        for module, attributes in saved:
            vars(module).clear()
            vars(module).update(attributes)


def record_captured(model: torch.nn.Module, size: int = 64, in_channels: int = 3, seed: int = 0) -> Graph:
    """The dataflow graph of a captured program (grader.measure.captured.as_model: the model
    carries its eval-mode graph) on a 1 x in_channels x size x size input: the graph torch.export
    already made, its nodes' shapes at this size read from one real forward pass through it (an
    fx Interpreter) instead of exporting the model again, which costs ~10x more. Raises
    ExportFailed when the graph keeps a control-flow or grad-mode region (record_export then
    functionalises it); GraphError when the forward fails."""
    from torch.fx import Interpreter

    module = model.segrade_eval_graph()
    x = _probe_input(model, size, in_channels, seed)
    seen: dict[Any, Any] = {}   # node -> its value with each tensor as a shape-only (meta) stand-in

    def shape_of(value):
        return torch.empty(value.shape, device="meta") if isinstance(value, torch.Tensor) else value

    class Recorder(Interpreter):
        def run_node(self, node):
            value = super().run_node(node)
            seen[node] = tree_map(shape_of, value)   # the activations themselves are freed as the pass goes
            return value

    try:
        with torch.no_grad():
            Recorder(module).run(x)
    except Exception as error:
        raise GraphError(f"the forward pass on a 1x{in_channels}x{size}x{size} input failed: "
                         f"{type(error).__name__}: {error}") from error
    nodes = list(module.graph.nodes)
    output = next(n for n in nodes if n.op == "output")
    outputs = list(output.args[0]) if isinstance(output.args[0], (tuple, list)) else [output.args[0]]
    return _graph_from_nodes(nodes, seen.get, lambda node: True, outputs, module._out_spec, size)


def _graph_from_program(program, input_height: int) -> Graph:
    from torch.export.graph_signature import OutputKind

    user_inputs = set(program.graph_signature.user_inputs)
    nodes = list(program.graph.nodes)
    output = next(n for n in nodes if n.op == "output")
    outputs = [n for n, spec in zip(output.args[0], program.graph_signature.output_specs)
               if spec.kind == OutputKind.USER_OUTPUT]
    return _graph_from_nodes(nodes, lambda node: node.meta.get("val"), lambda node: node.name in user_inputs,
                             outputs, program.call_spec.out_spec, input_height)


def _graph_from_nodes(nodes, value_of, is_user_input, outputs, out_spec, input_height: int) -> Graph:
    """The Graph of FX `nodes`: `value_of(node)` its tensor (fake or real), `is_user_input`
    which placeholders are the model's input, `outputs` the user outputs (flattened as
    `out_spec` says). Arithmetic on sizes (dynamic shapes) is not an op."""
    from torch._ops import HigherOrderOperator, OpOverload, OpOverloadPacket
    from torch.fx import Node

    values: list[Value] = []
    ops: list[Op] = []
    # FX node -> its value indices, one per element of a tuple output (None: not a tensor).
    of: dict[Node, list[int | None]] = {}

    def new(t: Any, producer: int | None, live: bool) -> int | None:
        if not isinstance(t, torch.Tensor):
            return None
        values.append(Value(tuple(int(d) for d in t.shape), producer, live))
        return len(values) - 1

    # In-place writes. A graph that is not functionalised (a captured program read as it is)
    # keeps `copy_(slice(z), x)`, and a later `cat([z, ...])` names z's node, not the write:
    # every later use of a tensor, or of a view of it, also depends on the writes into it (as
    # the dispatch recording does by storage). Until 2026-12-07 a "no-skip" U-Net that copied
    # its first feature into a view of a zeros_like tensor had no skip in its program's graph.
    writes: dict[Node, list[int]] = {}   # a tensor's root node (views followed back) -> values written into it

    def root(n: Node) -> Node:
        for _ in range(64):
            schema = getattr(n.target, "_schema", None) if n.op == "call_function" else None
            returned = schema.returns[0].alias_info if schema is not None and schema.returns else None
            if returned is None or not n.args or not isinstance(n.args[0], Node):
                return n
            n = n.args[0]   # a view (or an in-place op's result) of its first argument
        return n

    def written(n: Node) -> list[Node]:
        schema = getattr(n.target, "_schema", None)
        if schema is None:
            return []
        found = []
        for position, argument in enumerate(schema.arguments):
            if argument.alias_info is None or not argument.alias_info.is_write:
                continue
            value = n.args[position] if position < len(n.args) else n.kwargs.get(argument.name)
            found += [v for v in tree_flatten(value)[0] if isinstance(v, Node)]
        return found

    graph_input = None
    for node in nodes:
        val = value_of(node)
        if node.op == "placeholder":
            user = is_user_input(node)
            of[node] = [new(val, None, user)]
            if user and graph_input is None:
                graph_input = of[node][0]
        elif node.op == "call_function" and node.target is operator.getitem:
            source, position = node.args
            items = of.get(source, [])
            of[node] = [items[position]] if isinstance(position, int) and position < len(items) else []
        elif node.op == "call_function":
            if isinstance(node.target, HigherOrderOperator):
                raise ExportFailed(f"torch.export kept {node.target.__name__} as a subgraph")
            if not isinstance(node.target, (OpOverload, OpOverloadPacket)) and not isinstance(val, torch.Tensor):
                of[node] = []   # Python arithmetic on sizes (operator.mul on a dynamic height)
                continue
            packet = getattr(node.target, "overloadpacket", None)
            name = packet.__name__ if packet is not None else getattr(node.target, "__name__", str(node.target))
            flat, _ = tree_flatten((node.args, node.kwargs))
            inputs = [i for n in flat if isinstance(n, Node) for i in of.get(n, []) if i is not None]
            n_args = len(inputs)
            inputs += [i for n in flat if isinstance(n, Node) for i in writes.get(root(n), ()) if i not in inputs]
            live = name not in _SHAPE_ONLY and any(values[i].live for i in inputs)
            ops.append(Op(name, str(node.target), inputs, n_args=n_args))
            index = len(ops) - 1
            items = list(val) if isinstance(val, (tuple, list)) else [val]
            of[node] = [new(t, index, live) for t in items]
            ops[-1].outputs = [i for i in of[node] if i is not None]
            for target in written(node):
                writes.setdefault(root(target), []).extend(i for i in of[node] if i is not None)
        elif node.op == "get_attr":
            of[node] = [new(val, None, False)]

    if graph_input is None or not outputs:
        raise ExportFailed("the exported graph has no input or no output")
    tensors = [value_of(n) if isinstance(n, Node) else n for n in outputs]
    chosen = _output_tensor(tree_unflatten(tensors, out_spec))
    if chosen is None:
        raise GraphError("the model returned no tensor")
    node = next(n for n, t in zip(outputs, tensors) if t is chosen)
    output = (of.get(node) or [None])[0] if isinstance(node, Node) else None
    if output is None or not values[output].live:
        raise GraphError("the model's output is not computed from its input")
    return Graph(values, ops, graph_input, output, input_height)


# --------------------------------------------------------------------------- fingerprint


_CAT = {"cat", "concat", "concatenate", "stack", "_cat"}
_ADD = {"add", "add_"}
_MUL = {"mul", "mul_"}
_SIGMOID = {"sigmoid", "sigmoid_", "hardsigmoid", "hardsigmoid_"}
# Followed back from a multiply's operand to find the sigmoid that made it.
_TRANSPARENT = {
    "view", "_unsafe_view", "reshape", "expand", "expand_as", "clone", "_to_copy", "contiguous",
    "alias", "detach", "unsqueeze", "squeeze", "repeat", "slice", "constant_pad_nd", "pad",
    "upsample_bilinear2d", "upsample_nearest2d", "_upsample_bilinear2d_aa", "upsample_bicubic2d",
    "_upsample_nearest_exact2d", "upsample_nearest2d_backward", "lift_fresh", "lift_fresh_copy",
    # Names that only the export graph keeps whole (the dispatch recording sees their parts).
    "view_as", "reshape_as", "type_as", "to", "flatten", "unflatten", "copy", "dropout",
    "feature_dropout", "alpha_dropout",
}


# Ops that only pick or move elements. The bypass is measured in *information* scale, not in
# shape: what a tensor holds of the input at full resolution stays full resolution when it is
# folded into channels (pixel_unshuffle, a view to N x 256C x H/16 x W/16, into the batch
# dimension, through a 1-D tensor), picked apart by strided slices or gathered again, and
# computed on position by position there (`* 1.0`, a cat with the bottleneck); so does the
# output of any op that makes a map smaller yet has room for every element of its input (a
# stride-16 convolution to 256x the channels of a learned feature map can be a space-to-depth
# fold; a stride-2 stem from the image is not one: `folds` in fingerprint_graph). The information
# scale of a value is its operand's times the op's change in shape, except through these ops
# and such folds, which keep it; on an ordinary graph it is the shape's scale. Until
# 2026-12-07 the shape's scale alone was read, and a "no-skip" U-Net that folded its first
# feature into channels at 1/16 and unfolded it before the output passed as having no skip
# (tests/data/hostile/hidden_backbone_folded_skip).
_MOVES = {
    "view", "_unsafe_view", "reshape", "view_as", "reshape_as", "expand", "expand_as", "repeat", "clone",
    "_to_copy", "to", "type_as", "contiguous", "alias", "detach", "lift_fresh", "lift_fresh_copy", "copy",
    "unsqueeze", "squeeze", "flatten", "unflatten", "permute", "transpose", "t", "movedim", "swapaxes",
    "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "native_channel_shuffle", "as_strided", "unfold",
    "im2col", "col2im", "slice", "select", "narrow", "split", "split_with_sizes", "unsafe_split", "chunk",
    "unbind", "index", "index_select", "gather", "take", "roll", "flip", "rot90", "diagonal",
}


def _log2_scale(height: int, input_height: int) -> int:
    return round(math.log2(height / input_height))


def _scales(graph: Graph) -> list[float | None]:
    out: list[float | None] = []
    for v in graph.values:
        if len(v.shape) == 4 and v.shape[-2] > 0 and v.shape[-1] > 0 and (v.shape[-2], v.shape[-1]) != (1, 1):
            out.append(2.0 ** _log2_scale(v.shape[-2], graph.input_height))
        else:
            out.append(None)
    return out


def fingerprint_graph(graph: Graph, method: str = "dispatch") -> Fingerprint:
    values, ops = graph.values, graph.ops
    scale = _scales(graph)

    def live_preds(i: int) -> list[int]:
        p = values[i].producer
        if p is None:
            return []
        return [j for j in dict.fromkeys(ops[p].inputs) if values[j].live and j != i]

    # Ancestors of the output (inclusive), among live values.
    keep: set[int] = set()
    queue = deque([graph.output])
    while queue:
        i = queue.popleft()
        if i in keep:
            continue
        keep.add(i)
        queue.extend(live_preds(i))

    def numel(i: int) -> int:
        return math.prod(values[i].shape)

    image_channels = values[graph.input].shape[1] if len(values[graph.input].shape) == 4 else 0

    def folds(i: int, j: int) -> bool:
        # A stem (a stride-2 convolution from the image to 32 or 64 channels, ResNet's 7x7) has
        # room for every pixel too, and is no fold: from a map with no more channels than the
        # image, only a drop of 4x or more in one op counts, so a ResNet reads at its strides;
        # from learned features (more channels than the image) any drop with room does.
        shape = values[j].shape
        return len(shape) == 4 and (shape[1] > image_channels or scale[i] <= scale[j] / 4)

    def carried(i: int, j: int) -> float:
        """The information scale of value i as computed from its operand j (see _MOVES)."""
        s, sj, op = scale[i], scale[j], ops[values[i].producer]
        if op.name in _MOVES or s is None:
            return info[j]
        if sj is None:
            return min(info[j], s)
        if s < sj and numel(i) >= numel(j) and folds(i, j):   # smaller, yet room for every element
            return info[j]
        return min(1.0, info[j] * s / sj)

    order = sorted(keep)  # value indices are created in execution order: topological
    best: dict[int, float] = {}
    deep: dict[int, float] = {}
    info: dict[int, float] = {}   # the finest scale of the input a value can carry (see _MOVES)
    for i in order:
        preds = live_preds(i)
        s = scale[i]
        if i == graph.input or not preds:
            b = 1.0 if i == graph.input else (s if s is not None else 1.0)
            d = info[i] = b
        else:
            through = {j: carried(i, j) for j in preds}
            info[i] = max(through.values())
            b = max(min(best[j], through[j]) for j in preds)
            d = min(deep[j] for j in preds)
        if s is not None:
            d = min(d, s)
        best[i], deep[i] = b, d

    bypass = best[graph.output]
    finest = min((scale[i] for i in keep if scale[i] is not None), default=1.0)
    levels = max(0, round(-math.log2(finest)))

    def local_ancestors(i: int, s: float) -> set[int]:
        """i and its ancestors reachable without leaving scale s (transparent values pass)."""
        seen: set[int] = set()
        stack = [i]
        while stack:
            j = stack.pop()
            if j in seen:
                continue
            seen.add(j)
            for k in live_preds(j):
                if scale[k] is None or scale[k] == s:
                    stack.append(k)
        return seen

    def sigmoid_source(i: int) -> int | None:
        """The 1-channel sigmoid map value that i is a (resampled/reshaped) copy of."""
        j = i
        for _ in range(32):
            p = values[j].producer
            if p is None:
                return None
            name = ops[p].name
            if name in _SIGMOID:
                shape = values[j].shape
                return j if len(shape) == 4 and shape[1] == 1 else None
            if name not in _TRANSPARENT:
                return None
            preds = live_preds(j)
            if len(preds) != 1:
                return None
            j = preds[0]
        return None

    # Attention multiplies.
    gated_outputs: dict[int, float] = {}
    gated: list[float] = []
    ungated = 0
    for op_index, op in enumerate(ops):
        if op.name not in _MUL:
            continue
        outs = [o for o in op.outputs if o in keep]
        if not outs:
            continue
        o = outs[0]
        operands = [j for j in dict.fromkeys(op.inputs) if values[j].live and j not in op.outputs]
        if len(operands) != 2 or scale[o] is None:
            continue
        for m, f in (operands, operands[::-1]):
            src = sigmoid_source(m)
            if src is None or sigmoid_source(f) is not None:
                continue
            if deep[src] < deep[f]:
                gated.append(scale[o])
                for out in op.outputs:
                    gated_outputs[out] = scale[o]
            else:
                ungated += 1
            break

    # Joins: long skips and residual adds.
    long: dict[float, str] = {}
    gated_long: set[float] = set()
    joins: list[tuple[float, int, tuple[int, ...]]] = []
    residual = 0
    for index, op in enumerate(ops):
        is_cat, is_add = op.name in _CAT, op.name in _ADD
        if not (is_cat or is_add):
            continue
        outs = [o for o in op.outputs if o in keep]
        if not outs:
            continue
        o = outs[0]
        s = scale[o]
        if s is None:
            continue
        operands = [j for j in dict.fromkeys(op.inputs) if values[j].live and j not in op.outputs]
        if len(operands) < 2:
            continue
        direct = [j for j in operands if best[j] >= s]
        went_down = [j for j in operands if best[j] < s]
        if direct and went_down:
            joins.append((s, index, tuple(p for p, v in enumerate(op.inputs[:op.n_args]) if v in direct)))
            long.setdefault(s, "cat" if is_cat else "add")
            if is_cat and long[s] == "add":
                long[s] = "cat"
            for j in direct:
                if local_ancestors(j, s) & gated_outputs.keys():
                    gated_long.add(s)
        if is_add and len(operands) == 2 and all(scale[j] == s for j in operands):
            a, b = (local_ancestors(j, s) for j in operands)
            if a & b:
                residual += 1

    skips = tuple(sorted(long, reverse=True))
    return Fingerprint(
        method=method,
        bypass_scale=bypass,
        downsampling_levels=levels,
        long_skips=skips,
        residual_adds=residual,
        gated_multiplies=tuple(sorted(gated, reverse=True)),
        ungated_attention=ungated,
        gated_long_skips=tuple(sorted(gated_long, reverse=True)),
        long_skip_ops=tuple(long[s] for s in skips),
        skip_joins=tuple(joins),
    )


# Caffe-style FCNs pad conv1_1 by 100 pixels: at a small input the padding dominates every
# height and the rounded scales are off by one level. Such a model is recorded again at this size.
INFLATED_RETRY_SIZE = 512


def _inflated(graph: Graph) -> bool:
    return any(v.live and len(v.shape) == 4 and v.shape[-2] > 1.5 * graph.input_height
               for v in graph.values)


def skip_ablation(model: torch.nn.Module, size: int = 64, in_channels: int = 3) -> list[dict]:
    """For each long-skip join of the recorded graph: run the same forward pass with the
    encoder operand replaced by zeros and measure how much the output moves (relative
    max-abs change). A skip whose operand is multiplied by zero, detached into a constant
    or otherwise ignored changes nothing."""
    base: list = []
    graph = record(model, size, in_channels, outputs=base)
    joins = fingerprint_graph(graph).skip_joins
    results = []
    for scale, op_index, positions in joins:
        ablated: list = []
        record(model, size, in_channels, ablate=(op_index, positions), outputs=ablated)
        change = float((ablated[0] - base[0]).abs().max() / (base[0].abs().max() + 1e-12))
        results.append({"scale": scale, "op": graph.ops[op_index].name, "relative_change": change})
    return results


def fingerprint(model: torch.nn.Module, size: int = 64, in_channels: int = 3,
                method: str = "auto") -> Fingerprint:
    """Fingerprint the architecture of `model` from the dataflow graph of one forward pass on
    a 1 x in_channels x size x size input. method "auto": torch.export, and the dispatch
    recording when export fails (the reason is kept in `export_error`); "export" or
    "dispatch": that one only. When some activation is much larger than the input (conv1
    padding=100 in Caffe-style FCNs), the graph is built again at INFLATED_RETRY_SIZE so the
    padding no longer shifts the rounded scales. Raises GraphError with a clear message when
    the forward pass fails."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    export_error = ""
    if method in ("auto", "export"):
        # A captured program (the verifier's) is a graph already: read it at this size first.
        builders = (record_captured, record_export) if hasattr(model, "segrade_eval_graph") else (record_export,)
        for build in builders:
            try:
                return fingerprint_graph(_graph(build, model, size, in_channels), "export")
            except ExportFailed as error:
                if method == "export" and build is record_export:
                    raise
                export_error = str(error)
    fp = fingerprint_graph(_graph(record, model, size, in_channels), "dispatch")
    return replace(fp, export_error=export_error)


def _graph(build, model: torch.nn.Module, size: int, in_channels: int) -> Graph:
    graph = build(model, size, in_channels)
    if _inflated(graph) and size < INFLATED_RETRY_SIZE:
        graph = build(model, INFLATED_RETRY_SIZE, in_channels)
    return graph
