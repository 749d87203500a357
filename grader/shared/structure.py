"""What a model is made of, independent of how its code is written, for structural similarity.

One line per module that holds parameters, in the order the modules were registered: a torch
layer by its class name, a student's own module as `Module` (its class name is the student's
choice), then the shapes of the parameters it holds itself, e.g. `Conv2d(64x3x3x3, 64)`.
Attribute and class names, comments and code layout do not appear, so a copy whose names were
changed gives the same lines. Used by grader.similarity.structural.

The same lines come from a built model (`layers`: the worker's fallback, the reference's
boilerplate) and from a captured program (`program_layers`: the verifier, so a captured
variant's lines are not the student's process's word). A program keeps its parameters in
registration order and records which module class ran each op, but not the layers without
parameters (activations, pooling) nor a layer's settings; so neither path lists those. A
layer with parameters that forward never calls is `Module` in a program (no op says what it
is), its class name in a built model.
"""

from __future__ import annotations

MAX_LAYERS = 2000
FORM = 2   # 1: every torch layer with its settings, from the built model only (before issue 26)


def layers(model) -> list[str]:
    """The lines of a built nn.Module."""
    out = []
    for module in model.modules():
        own = [tuple(p.shape) for p in module.parameters(recurse=False)]
        if own:
            out.append(_line(_kind(f"{type(module).__module__}.{type(module).__qualname__}"), own))
        if len(out) >= MAX_LAYERS:
            break
    return out


def program_layers(program) -> list[str]:
    """The lines of a captured program (torch.export.ExportedProgram), from its parameters and
    the module stack its ops record."""
    kinds: dict[str, str] = {}
    for node in program.graph.nodes:
        for path, kind in (node.meta.get("nn_module_stack") or {}).values():
            kinds.setdefault(path, kind if isinstance(kind, str) else f"{kind.__module__}.{kind.__qualname__}")
    parameters = set(program.graph_signature.parameters)
    owned: dict[str, list[tuple[int, ...]]] = {}
    for name, tensor in program.state_dict.items():   # registration order, as named_parameters
        if name in parameters:
            owned.setdefault(name.rpartition(".")[0], []).append(tuple(tensor.shape))
    out = []
    for path, shapes in owned.items():
        out.append(_line(_kind(kinds.get(path, "")), shapes))
        if len(out) >= MAX_LAYERS:
            break
    return out


def _kind(qualified_class: str) -> str:
    """A torch layer by its class name; anything else (a student's own module, a class a
    program does not name) as `Module`."""
    return qualified_class.rpartition(".")[2] if qualified_class.startswith("torch.") else "Module"


MAX_LINE = 400   # the protocol's bound on a line (grader.shared.protocol.Structure)


def _line(kind: str, shapes: list[tuple[int, ...]]) -> str:
    line = f"{kind}(" + ", ".join("x".join(map(str, s)) for s in shapes) + ")"
    return line if len(line) <= MAX_LINE else line[:MAX_LINE - 4] + "...)"   # a module holding many parameters
