"""A captured program pair (train mode, eval mode) as a model the measurements can use.

`as_model(train_program, eval_program)` returns the train program's module (its parameters
and buffers keep the student's names, `features.0.weight`) whose `train()`/`eval()` choose
which graph runs; the eval graph reads the same parameter and buffer objects, so training the
model and then evaluating it is one model, as it was in the student's process. The layer
order of the graph (which parameterised layer ran last: the head) replaces forward hooks,
which a graph module never calls.
"""

from __future__ import annotations

import types
from typing import Any


def _tie(target, source) -> None:
    """Make `target` hold `source`'s parameter and buffer objects (same names)."""
    for name, value in list(source.named_parameters()) + list(source.named_buffers()):
        owner_name, _, attr = name.rpartition(".")
        owner = target.get_submodule(owner_name) if owner_name else target
        if attr in owner._parameters:
            if owner._parameters[attr] is not value:
                owner._parameters[attr] = value
        elif attr in owner._buffers:
            if owner._buffers[attr] is not value:
                owner._buffers[attr] = value


def state_names(program) -> dict[str, tuple[tuple[int, ...], bool, str]]:
    """{parameter or buffer name: (shape, is parameter, dtype)} of an ExportedProgram."""
    params = set(program.graph_signature.parameters)
    return {k: (tuple(v.shape), k in params, str(v.dtype)) for k, v in program.state_dict.items()}


def program_tensors(program, model: Any = None) -> dict[str, tuple[str, str, Any]]:
    """{placeholder: (name, kind, tensor)} for every parameter, buffer and constant tensor the
    program takes, in input order; kind is "PARAMETER", "BUFFER" or "CONSTANT_TENSOR".
    Parameters and buffers are read from `model`'s state (as_model: the objects a measurement
    trains) where given, else from the program's; non-persistent buffers and lifted constants,
    which no state dict holds, from `program.constants`."""
    import torch

    state = model.state_dict(keep_vars=True) if model is not None else program.state_dict
    tensors: dict[str, tuple[str, str, Any]] = {}
    for spec in program.graph_signature.input_specs:
        kind, name = spec.kind.name, spec.target
        if name is None or kind not in ("PARAMETER", "BUFFER", "CONSTANT_TENSOR"):
            continue
        tensor = state.get(name) if kind != "CONSTANT_TENSOR" else None
        if tensor is None:
            tensor = program.constants.get(name)
        if isinstance(tensor, torch.Tensor):
            tensors[spec.arg.name] = (name, kind, tensor)
    return tensors


def graph_signature(program) -> tuple[str, ...]:
    """The graph as it computes: each node's op, target and arguments (as in
    grader.worker.capture, which the verifier does not import). Two builds of one class with
    another seed, other pretrained weights or submitted weights have the same."""
    return tuple(f"{n.op}:{n.target}:{n.args!r}:{n.kwargs!r}" for n in program.graph.nodes)


def graph_difference(checked: tuple[str, ...], trained: tuple[str, ...]) -> str | None:
    """Where two graph signatures part, in a few words; None when they are the same."""
    if checked == trained:
        return None
    at = next((i for i, (a, b) in enumerate(zip(checked, trained)) if a != b), min(len(checked), len(trained)))
    def node(sig: tuple[str, ...]) -> str:
        return sig[at].split(":(", 1)[0][:120] if at < len(sig) else "the end of the graph"
    return (f"its graph has {len(trained)} nodes, the checked one {len(checked)}; they part at node {at + 1} "
            f"({node(trained)} where the checked model has {node(checked)})")


def call_order(program) -> list[str]:
    """Module paths of the parameterised layers in the order the graph uses them."""
    inputs = {spec.arg.name: spec.target for spec in program.graph_signature.input_specs
              if spec.target is not None and spec.kind.name == "PARAMETER"}
    order: list[str] = []
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        for arg in node.all_input_nodes:
            target = inputs.get(arg.name)
            if target is not None:
                path = target.rpartition(".")[0]
                if not order or order[-1] != path:
                    order.append(path)
    return order


def as_model(train_program, eval_program) -> Any:
    """One model over both programs (see the module's docstring). Raises ValueError when the
    two programs do not hold the same parameters and buffers."""
    import torch

    if state_names(train_program) != state_names(eval_program):
        raise ValueError("the eval-mode program's parameters and buffers are not the train-mode program's")
    model = train_program.module(check_guards=False)   # no generated guard code
    other = model if eval_program is train_program else eval_program.module(check_guards=False)
    if other is not model:
        _tie(other, model)
    train_forward = type(model).forward

    def forward(self, *args, **kwargs):
        if self.training or other is model:
            return train_forward(self, *args, **kwargs)
        _tie(other, model)   # .to(device) replaces buffer objects
        return other(*args, **kwargs)

    def train(self, mode: bool = True):
        torch.nn.Module.train(self, mode)
        return self

    def eval(self):
        return train(self, False)

    def eval_graph():
        """The graph module that runs in eval mode, holding the model's parameters (graph.record_captured)."""
        if other is not model:
            _tie(other, model)
        return other

    model.segrade_eval_graph = eval_graph
    model.forward = types.MethodType(forward, model)
    model.train = types.MethodType(train, model)
    model.eval = types.MethodType(eval, model)
    # Children of a graph module are plain containers: nn.Module.train recurses into them.
    model.segrade_call_order = call_order(train_program)
    model.training = True
    return model
