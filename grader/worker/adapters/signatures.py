"""Reading a candidate's signature: its named parameters, annotations, Literal and Enum
choices, and how values are written back in a sentence. `NotUsable` says why a candidate
cannot be used.
"""

from __future__ import annotations

import ast
import enum
import inspect
import re
import typing
from dataclasses import dataclass
from typing import Any

from grader.worker.left_out import LeftOut


class NotUsable(Exception):
    """A candidate that cannot be used; the message says why, in a sentence part."""


@dataclass
class Sig:
    params: list[inspect.Parameter]     # named parameters, without self, *args and **kwargs
    var_kw: str | None                  # the name of **kwargs, if any
    var_pos: str | None

    def get(self, name: str) -> inspect.Parameter | None:
        return next((p for p in self.params if p.name == name), None)

    def text(self, name: str) -> str:
        parts = [p.name for p in self.params]
        if self.var_pos:
            parts.append(f"*{self.var_pos}")
        if self.var_kw:
            parts.append(f"**{self.var_kw}")
        return f"{name}({', '.join(parts)})"


def read_signature(obj: Any) -> Sig:
    try:
        try:   # annotations as objects (`variant: "FCNVariant"` under `from __future__ import annotations`)
            sig = inspect.signature(obj, eval_str=True)
        except (TypeError, ValueError):
            raise
        except Exception:  # an annotation that does not evaluate: keep it as text
            sig = inspect.signature(obj)
    except (TypeError, ValueError) as exc:
        raise NotUsable(f"segrade cannot read its signature ({exc})") from None
    params, var_kw, var_pos = [], None, None
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            var_kw = p.name
        elif p.kind is p.VAR_POSITIONAL:
            var_pos = p.name
        else:
            params.append(p)
    return Sig(params, var_kw, var_pos)


def annotation_text(p: inspect.Parameter) -> str:
    ann = p.annotation
    if ann is p.empty:
        return ""
    return ann if isinstance(ann, str) else getattr(ann, "__name__", None) or str(ann)


def unset(p: inspect.Parameter) -> bool:
    """No default, or one that only left-out top-level code sets (grader.worker.left_out: a
    `n_classes=NUM_CLASSES` computed from the data), which segrade fills as if required."""
    return p.default is p.empty or isinstance(p.default, LeftOut)


def boolish(p: inspect.Parameter) -> bool:
    """A parameter that can take True/False: a bool default, or none and no other type."""
    ann = annotation_text(p).replace("typing.", "")
    if not unset(p):
        return isinstance(p.default, bool) or (p.default is None and "bool" in ann)
    return ann in ("", "bool", "Optional[bool]", "bool | None", "Any")


def count_like(p: inspect.Parameter) -> bool:
    return unset(p) or (isinstance(p.default, int) and not isinstance(p.default, bool)) or p.default is None


def first_param(sig: Sig, names: typing.Sequence[str], ok=lambda p: True) -> inspect.Parameter | None:
    for name in names:
        p = sig.get(name)
        if p is not None and ok(p):
            return p
    return None


def literal_choices(p: inspect.Parameter) -> list[Any]:
    ann = p.annotation
    if ann is p.empty:
        return []
    match = re.search(r"Literal\[(.*)\]", ann) if isinstance(ann, str) else None
    if match:
        try:
            return list(ast.literal_eval(f"({match.group(1)},)"))
        except (ValueError, SyntaxError):
            return []
    if typing.get_origin(ann) is typing.Literal:
        return list(typing.get_args(ann))
    enum_type = enum_type_of(p)
    if enum_type is not None:
        return list(enum_type)
    return []


def enum_type_of(p: inspect.Parameter) -> type[enum.Enum] | None:
    """The Enum class a parameter takes: its annotation (`variant: FCNVariant`, Optional too)
    or its default's class."""
    ann = p.annotation
    for t in [ann, *typing.get_args(ann)] if ann is not p.empty else []:
        if isinstance(t, type) and issubclass(t, enum.Enum):
            return t
    if isinstance(p.default, enum.Enum):
        return type(p.default)
    return None


def value_text(value: Any) -> str:
    """How a value is written in a mapping sentence: Enum members by name (FCNVariant.FCN8S)."""
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if inspect.isfunction(value) and getattr(value, "__module__", "").startswith("torchvision"):
        return f"torchvision.models.{value.__name__}"
    if type(value).__name__ == "device" and type(value).__module__ == "torch":
        return f"torch.device({str(value)!r})"
    return repr(value)


def enum_member(enum_type: type[enum.Enum], value: Any) -> enum.Enum | None:
    """A manifest's value for an Enum parameter: a member's name ("FCN8S", "FCNVariant.FCN8S",
    case ignored) or its value ("fcn8s", 8)."""
    if isinstance(value, enum_type):
        return value
    if isinstance(value, str):
        name = value.rpartition(".")[2] if value.startswith(enum_type.__name__ + ".") else value
        for member in enum_type:
            if member.name == name or member.name.lower() == name.lower():
                return member
    for member in enum_type:
        if member.value == value or (isinstance(value, str) and str(member.value).lower() == value.lower()):
            return member
    return None
