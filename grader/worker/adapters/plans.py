"""What the adapters take and give: the student's `Candidate`s, the `VariantRequest` the grader
sends for each variant, and the answer, a `BuildPlan` (the only place that calls student code,
in `build()`) or an `Unresolved` (missing or ambiguous, with the message that fixes it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any


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
class VariantRequest:
    """One variant to build, as the grader describes it to the worker (JSON)."""

    id: str                      # "unet_noskip"
    family: str                  # "fcn" | "unet"
    class_name: str              # contract name, "UNetNoSkip"
    aliases: tuple[str, ...]
    traits: dict[str, Any]       # fcn: {"stride": 8, "frozen": True}; unet: {"skip": False, ...}
    num_classes: int
    pretrained: bool | None      # None for families without a pretrained switch (unet)
    # The spec's contract kwargs (e.g. {"freeze_backbone": True}); when empty they are
    # derived from the traits. Passed as they are to contract classes that take **kwargs.
    kwargs: dict[str, Any] = field(default_factory=dict)
    pretrained_kwarg: str = "pretrained"
    num_classes_kwarg: str = "num_classes"

    @classmethod
    def from_json(cls, data: dict) -> VariantRequest:
        """Accepts the worker request's variant entry. `kwargs` may hold the class count and
        the pretrained switch (the older request format); they are taken out of it."""
        kwargs = dict(data.get("kwargs") or {})
        count_kwarg = data.get("num_classes_kwarg") or "num_classes"
        pretrained_kwarg = data.get("pretrained_kwarg") or "pretrained"
        num_classes = data["num_classes"] if data.get("num_classes") is not None else kwargs.get(count_kwarg)
        if num_classes is None:
            raise ValueError(f"variant {data.get('id')!r}: the request gives no num_classes")
        pretrained = data["pretrained"] if "pretrained" in data else kwargs.get(pretrained_kwarg)
        kwargs.pop(count_kwarg, None)
        kwargs.pop(pretrained_kwarg, None)
        traits = dict(data.get("traits") or {})
        family = data.get("family") or ("fcn" if "stride" in traits else "unet" if "skip" in traits else "")
        return cls(id=data["id"], family=family, class_name=data.get("class_name") or data["class"],
                   aliases=tuple(data.get("aliases") or ()), traits=traits, num_classes=int(num_classes),
                   pretrained=None if pretrained is None else bool(pretrained), kwargs=kwargs,
                   pretrained_kwarg=pretrained_kwarg, num_classes_kwarg=count_kwarg)

    @classmethod
    def from_spec(cls, variant: Any, num_classes: int, pretrained_available: bool) -> VariantRequest:
        """From a `grader.spec.Variant`; `pretrained_available`: ImageNet weights are on hand."""
        family = variant.family
        return cls(id=variant.id, family=family.id, class_name=variant.class_name, aliases=tuple(variant.aliases),
                   traits=dict(variant.traits), num_classes=num_classes,
                   pretrained=bool(pretrained_available) if family.pretrained_kwarg else None,
                   kwargs=dict(variant.kwargs), pretrained_kwarg=family.pretrained_kwarg or "pretrained")

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "family": self.family, "class_name": self.class_name, "aliases": list(self.aliases),
                "traits": dict(self.traits), "num_classes": self.num_classes, "pretrained": self.pretrained,
                "kwargs": dict(self.kwargs), "pretrained_kwarg": self.pretrained_kwarg,
                "num_classes_kwarg": self.num_classes_kwarg}

    def contract_kwargs(self) -> dict[str, Any]:
        """What the contract constructor receives: class count, the spec's kwargs, pretrained."""
        kwargs: dict[str, Any] = {self.num_classes_kwarg: self.num_classes}
        if self.kwargs:
            kwargs |= self.kwargs
        elif "frozen" in self.traits:
            kwargs["freeze_backbone"] = bool(self.traits["frozen"])
        if self.pretrained is not None:
            kwargs[self.pretrained_kwarg] = self.pretrained
        return kwargs


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

    def build(self) -> Any:
        model = self.factory(*self.args, **self.kwargs)
        for name, kwargs in self.after:
            method = getattr(model, name, None)
            if not callable(method):
                raise AttributeError(f"{type(model).__name__} has no method {name}() to call after construction")
            method(**kwargs)
        return model


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
