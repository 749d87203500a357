"""What the adapters take and give: the student's `Candidate`s, the `VariantRequest` the grader
sends for each variant (a record of the worker's request, grader.shared.protocol), and the
answer, a `BuildPlan` (the only place that calls student code, in `build()`) or an
`Unresolved` (missing or ambiguous, with the message that fixes it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from grader.shared.protocol import TopLevelFreeze, VariantRequest  # noqa: F401  (the adapters' input, re-exported)


@dataclass(frozen=True)
class Candidate:
    """A class or function found in the student's code."""

    name: str     # attribute name in the student's module (e.g. "UNet")
    obj: Any      # the class or function object
    source: str   # file it was defined in, relative posix path (e.g. "models/unet.py")

    @property
    def label(self) -> str:
        return f"{self.name} in {self.source}"


@dataclass(frozen=True)
class BuildContext:
    """What the worker knows beyond the variant and the student's classes: the device models are
    built for (a constructor's `device` parameter gets it) and what the submission's top-level
    code sets requires_grad on (grader.submission.freezing)."""
    device: Any = "cpu"                          # a torch.device in the worker
    freezes: tuple[TopLevelFreeze, ...] = ()
    classes: tuple[Candidate, ...] = ()          # every class found, for a network argument (`pretrained_net`)


@dataclass(frozen=True)
class Built:
    """An argument that is itself a model, built when the plan is (`FCNs(pretrained_net=VGGNet(...))`)."""
    factory: Any
    kwargs: dict[str, Any]
    text: str                                    # how the mapping writes it: "VGGNet(pretrained=False)"

    def __repr__(self) -> str:
        return self.text


@dataclass
class BuildPlan:
    """How to build one variant; `build()` is the only place that calls student code."""

    variant_id: str
    factory: Any                       # class or function
    kwargs: dict[str, Any]
    after: tuple[tuple[str, dict], ...]   # methods to call on the built model, in order, with kwargs
    adapter: str                       # "manifest" | "contract" | "alias" | "name pattern" | "variant argument" | "flags", "+ ..."
    source: str
    description: str                   # one sentence: "UNetNoSkip ← UNet(...) from model.py, adapter: flags"
    notes: tuple[str, ...] = ()        # what had to be assumed
    args: tuple[Any, ...] = ()         # positional arguments, only for positional-only parameters
    freeze: tuple[TopLevelFreeze, ...] = ()   # requires_grad set after `after`, as the student's top-level code does

    def build(self) -> Any:
        args = [a.factory(**a.kwargs) if isinstance(a, Built) else a for a in self.args]
        kwargs = {k: v.factory(**v.kwargs) if isinstance(v, Built) else v for k, v in self.kwargs.items()}
        model = self.factory(*args, **kwargs)
        for name, kwargs in self.after:
            method = getattr(model, name, None)
            if not callable(method):
                raise AttributeError(f"{type(model).__name__} has no method {name}() to call after construction")
            method(**kwargs)
        for step in self.freeze:
            if not apply_freeze(model, step):
                # The notebook's line names a part this class does not have (an older version of it).
                self.notes += (f"{step.where} (`{step.code}`) selects no parameter of {type(model).__name__}: "
                               "not applied",)
        return model


def apply_freeze(model: Any, step: TopLevelFreeze) -> bool:
    """Set requires_grad on the parameters `step` selects; whether it selected any."""
    if step.select == "module":
        named = dict(model.named_parameters())
        if step.path in named:
            selected = [named[step.path]]
        else:
            try:
                selected = list(model.get_submodule(step.path).parameters())
            except AttributeError:
                selected = []
    elif step.select == "prefix":
        selected = [p for n, p in model.named_parameters() if n.startswith(step.path)]
    else:
        selected = [p for n, p in model.named_parameters() if step.path in n]
    for parameter in selected:
        parameter.requires_grad_(step.requires_grad)
    return bool(selected)


@dataclass(frozen=True)
class Unresolved:
    variant_id: str
    status: str                        # "missing" | "ambiguous"
    message: str                       # what was looked for / the candidates, and what to do
    looked_for: tuple[str, ...]
    candidates: tuple[str, ...]


def same_source(source: str, path: str) -> bool:
    source = PurePosixPath(source.replace("\\", "/")).as_posix()
    if path.endswith(".py"):
        return source == path
    dotted = path.replace(".", "/")
    return source in (f"{dotted}.py", f"{dotted}/__init__.py")
