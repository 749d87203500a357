"""Adapters: how to build each variant of the assignment from a student's code.

Real submissions follow no interface (BRIEF §3). For each variant, `plan_variant` looks at
the classes and functions the worker imported (`Candidate`s) and decides how to build the
variant, in this order:

1. the manifest (`segrade.toml` in the submission, or the instructor's file for it), which
   names a factory, its keyword arguments and methods to call after construction;
2. the contract class name (`FCN8s`, `UNetNoSkip`...), case and underscores ignored;
3. an alias from the spec (`NoSkipUNet`, `GatedAttentionUNet`...);
4. a class whose name says the variant (`FCN8`, `VGG16FCN8s`, `UNetWithoutSkips`);
5. a family class that takes the variant as an argument (`FCN(variant="8s")`) or as flags
   (`UNet(..., use_skip_connections=False)`).

The result is a `BuildPlan` (factory, kwargs, methods to call after, and a one-line
description of the choice) or an `Unresolved` (missing or ambiguous, with a message that
says what was looked for and the exact manifest lines that fix it). Whatever the tier, the
arguments are filled from the constructor's signature: the class count under any of its
usual names, the input channels, the pretrained switch (the grader runs offline), the
frozen backbone (flag, inverted flag, method, or nothing) and the U-Net flags.

This module runs inside the worker process, next to student code. It is pure logic: it
reads signatures and source text but builds nothing except through `BuildPlan.build()`.
The manifest parser also runs in the grading process, which imports no student code.
"""

from __future__ import annotations

import ast
import enum
import functools
import inspect
import json
import re
import textwrap
import typing
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from grader.shared.names import is_helper_name, name_tokens, normalise_name  # noqa: F401
from grader.shared.manifest import (  # noqa: F401  (re-exported: the manifest is parsed on the grading side)
    MANIFEST_NAME, ManifestError, _split_factory, check_manifest_ids, parse_manifest,
)


# --------------------------------------------------------------------------- names segrade recognises

# Ordered: when a signature has several, the first one listed wins.
CLASS_COUNT_NAMES = (
    "num_classes", "n_classes", "nclass", "n_class", "num_class", "nclasses", "classes", "num_labels",
    "out_channels", "output_channels", "n_out_channels", "out_ch", "output_ch",
)
IN_CHANNEL_NAMES = ("in_channels", "n_channels", "input_channels", "in_ch", "in_chans", "input_ch",
                    "n_input_channels", "img_ch")
PRETRAINED_NAMES = ("pretrained", "pretrained_backbone", "use_pretrained", "pretrain", "use_pretrain",
                    "backbone_pretrained", "imagenet_pretrained", "use_imagenet", "load_pretrained",
                    "pretrained_vgg")
# torchvision-style weights arguments: None when not pretrained, else this string (which
# torchvision's `vgg16(weights=...)` accepts) unless the parameter already has a default.
WEIGHTS_NAMES = ("weights", "backbone_weights", "vgg_weights", "encoder_weights")
PRETRAINED_WEIGHTS_VALUE = "IMAGENET1K_V1"
FREEZE_FLAG_NAMES = ("freeze_backbone", "freeze", "frozen", "freeze_encoder", "freeze_features", "fixed_backbone",
                     "freeze_vgg", "freeze_base", "frozen_backbone", "backbone_frozen", "fix_backbone",
                     "freeze_pretrained", "freeze_weights")
# True means fine-tuned: passed as `not frozen`.
INVERTED_FREEZE_FLAG_NAMES = ("update_weights", "train_backbone", "finetune", "fine_tune", "trainable_backbone",
                              "trainable", "finetune_backbone", "fine_tune_backbone", "train_encoder",
                              "update_backbone", "backbone_trainable", "train_features", "fine_tuning",
                              "finetuning", "requires_grad")
FREEZE_METHOD_NAMES = ("freeze_backbone", "freeze", "freeze_encoder", "freeze_features", "freeze_vgg",
                       "freeze_base", "freeze_pretrained", "freeze_weights")
UNFREEZE_METHOD_NAMES = ("unfreeze_backbone", "unfreeze", "unfreeze_encoder", "unfreeze_features",
                         "unfreeze_vgg", "unfreeze_base", "unfreeze_all")
# Parameters that choose the backbone (FCN family): given the assignment's, VGG16, in the
# style the class uses ("vgg16", "VGG16_BN", torchvision.models.vgg16...).
BACKBONE_ARG_NAMES = ("backbone", "backbone_name", "backbone_type", "backbone_arch", "encoder", "encoder_name",
                      "base_model", "base_net", "basenet", "base_network", "vgg", "vgg_type", "vgg_version",
                      "vgg_name", "vgg_variant", "feature_extractor", "features", "pretrained_model", "cnn")
ASSIGNMENT_BACKBONE = "vgg16"
# Parameters of a family class that choose the FCN variant (its output stride).
VARIANT_ARG_NAMES = ("variant", "fcn_variant", "mode", "arch", "architecture", "type", "fcn_type", "model_type",
                     "net_type", "kind", "version", "stride", "output_stride", "out_stride", "upsample",
                     "upsampling", "upsample_factor")
_INT_STYLE_ARGS = {"stride", "output_stride", "out_stride", "upsample", "upsampling", "upsample_factor"}
# U-Net flags, as examples: the matching itself is by pattern (see _unet_flag).
UNET_FLAG_EXAMPLES = {
    "skip": ("skip", "skips", "use_skip", "use_skips", "skip_connections", "use_skip_connections",
             "with_skip", "no_skip (inverted)"),
    "residual": ("residual", "use_residual", "res", "use_res", "residual_block", "use_residual_block",
                 "res_block", "no_residual (inverted)"),
    "attention": ("attention", "use_attention", "gated_attention", "use_gated_attention", "attn", "use_attn",
                  "att", "attention_gates", "no_attention (inverted)"),
}
_TRAIT_WORDS = {"skip": "skip-connection", "residual": "residual-block", "attention": "attention-gate",
                "stride": "output stride", "frozen": "frozen backbone"}
# Words that mark a building block, not a whole model (UNetBlock, AttentionGate, UpConv).
# How specific each way of finding a factory is: lower wins; ties are ambiguous.
_TIER_RANK = {"manifest": 0, "contract": 1, "alias": 2, "name pattern": 3, "variant argument": 4, "flags": 4}


# --------------------------------------------------------------------------- public data


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


def _same_source(source: str, path: str) -> bool:
    source = PurePosixPath(source.replace("\\", "/")).as_posix()
    if path.endswith(".py"):
        return source == path
    dotted = path.replace(".", "/")
    return source in (f"{dotted}.py", f"{dotted}/__init__.py")


# --------------------------------------------------------------------------- signatures


class _NotUsable(Exception):
    """A candidate that cannot be used; the message says why, in a sentence part."""


@dataclass
class _Sig:
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


def _signature(obj: Any) -> _Sig:
    try:
        try:   # annotations as objects (`variant: "FCNVariant"` under `from __future__ import annotations`)
            sig = inspect.signature(obj, eval_str=True)
        except (TypeError, ValueError):
            raise
        except Exception:  # an annotation that does not evaluate: keep it as text
            sig = inspect.signature(obj)
    except (TypeError, ValueError) as exc:
        raise _NotUsable(f"segrade cannot read its signature ({exc})") from None
    params, var_kw, var_pos = [], None, None
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            var_kw = p.name
        elif p.kind is p.VAR_POSITIONAL:
            var_pos = p.name
        else:
            params.append(p)
    return _Sig(params, var_kw, var_pos)


def _annotation_text(p: inspect.Parameter) -> str:
    ann = p.annotation
    if ann is p.empty:
        return ""
    return ann if isinstance(ann, str) else getattr(ann, "__name__", None) or str(ann)


def _boolish(p: inspect.Parameter) -> bool:
    """A parameter that can take True/False: a bool default, or none and no other type."""
    ann = _annotation_text(p).replace("typing.", "")
    if p.default is not p.empty:
        return isinstance(p.default, bool) or (p.default is None and "bool" in ann)
    return ann in ("", "bool", "Optional[bool]", "bool | None", "Any")


def _count_like(p: inspect.Parameter) -> bool:
    return p.default is p.empty or (isinstance(p.default, int) and not isinstance(p.default, bool)) or p.default is None


def _first(sig: _Sig, names: typing.Sequence[str], ok=lambda p: True) -> inspect.Parameter | None:
    for name in names:
        p = sig.get(name)
        if p is not None and ok(p):
            return p
    return None


def _literal_choices(p: inspect.Parameter) -> list[Any]:
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
    enum_type = _enum_type(p)
    if enum_type is not None:
        return list(enum_type)
    return []


def _enum_type(p: inspect.Parameter) -> type[enum.Enum] | None:
    """The Enum class a parameter takes: its annotation (`variant: FCNVariant`, Optional too)
    or its default's class."""
    ann = p.annotation
    for t in [ann, *typing.get_args(ann)] if ann is not p.empty else []:
        if isinstance(t, type) and issubclass(t, enum.Enum):
            return t
    if isinstance(p.default, enum.Enum):
        return type(p.default)
    return None


def _value_text(value: Any) -> str:
    """How a value is written in a mapping sentence: Enum members by name (FCNVariant.FCN8S)."""
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if inspect.isfunction(value) and getattr(value, "__module__", "").startswith("torchvision"):
        return f"torchvision.models.{value.__name__}"
    return repr(value)


def _enum_member(enum_type: type[enum.Enum], value: Any) -> enum.Enum | None:
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


# --------------------------------------------------------------------------- name heuristics


_STRIDE_VALUE = re.compile(r"^\s*(?:fcn)?[-_ ]?(8|16|32)\s*s?\s*$", re.IGNORECASE)


def _stride_of(value: Any) -> int | None:
    """8, "8", "8s", "fcn8s", "FCN-8s", "fcn_8s" -> 8; anything else -> None."""
    if isinstance(value, enum.Enum):   # FCNVariant.FCN8S = "fcn8s" / = 8 / = auto()
        by_value = _stride_of(value.value)
        by_name = _stride_from_name(value.name)
        return by_value if by_value is not None else by_name if isinstance(by_name, int) else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value in (8, 16, 32) else None
    if isinstance(value, str):
        match = _STRIDE_VALUE.match(value)
        return int(match.group(1)) if match else None
    return None


def _stride_from_name(name: str) -> int | None | str:
    """FCN8 / VGG16FCN8s / FCN_VGG16_8s -> 8; no stride in the name -> None; several -> "conflict"."""
    low = name.lower()
    found = {int(m) for m in re.findall(r"fcn[_-]?(8|16|32)(?!\d)", low)}
    found |= {int(m) for m in re.findall(r"(?<![a-z0-9])(8|16|32)s(?![a-z0-9])", low)}
    if len(found) > 1:
        return "conflict"
    return found.pop() if found else None


def _frozen_from_name(normalised: str) -> bool | None:
    if any(w in normalised for w in ("finetun", "tuned", "trainable", "unfrozen", "unfreeze")):
        return False
    if any(w in normalised for w in ("frozen", "freeze", "fixed")):
        return True
    return None


def _unet_traits_from_name(normalised: str) -> dict[str, bool]:
    """What a U-Net class name says about it; a plain name means a vanilla U-Net."""
    return {"skip": not any(w in normalised for w in ("noskip", "withoutskip", "skipless", "nonskip", "woskip")),
            "residual": "res" in normalised,
            "attention": "att" in normalised}


def _unet_flag(name: str) -> tuple[str, bool] | None:
    """(trait, inverted) for a U-Net flag parameter name, else None."""
    n = normalise_name(name)
    inverted = False
    for prefix in ("without", "disable", "remove", "drop", "no"):
        if n.startswith(prefix) and len(n) > len(prefix):
            n, inverted = n[len(prefix):], True
            break
    if "skip" in n:
        return "skip", inverted
    if "residual" in n or re.fullmatch(r"(use|with)?res(block|blocks|connections?|unit|units)?", n):
        return "residual", inverted
    if "attention" in n or "attn" in n or re.fullmatch(r"(use|with)?(att|gated?|gates|gating)", n):
        return "attention", inverted
    return None


def _freeze_flag(p: inspect.Parameter) -> bool | None:
    """True: a freeze flag (True freezes); False: an inverted one (True fine-tunes); None: neither."""
    if p.name in FREEZE_FLAG_NAMES:
        return True if _boolish(p) else None
    if p.name in INVERTED_FREEZE_FLAG_NAMES:
        return False if _boolish(p) else None
    if p.default is p.empty or not isinstance(p.default, bool):
        return None   # by pattern only with a bool default: too many other meanings otherwise
    n = normalise_name(p.name)
    if "unfreez" in n or "unfrozen" in n or "finetun" in n or "trainable" in n:
        return False
    if "freez" in n or "frozen" in n:
        return True
    if n.startswith(("update", "train")) and any(w in n for w in ("backbone", "encoder", "feature", "vgg", "base",
                                                                 "weight", "pretrained")):
        return False   # train_vgg, update_encoder; not `training` or `train_mode`
    return None


def _is_module_class(obj: Any) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return True
    return isinstance(obj, type) and issubclass(obj, torch.nn.Module)


def _is_factory_function(obj: Any) -> bool:
    return inspect.isfunction(obj) or isinstance(obj, functools.partial)


def _source_text(obj: Any) -> str | None:
    if inspect.isclass(obj):
        # From the file its methods were compiled from: inspect finds a class through
        # sys.modules[cls.__module__], which is another file when two subprojects both have
        # a `src.model` (see the worker's _Roots).
        code = next((f.__code__ for f in vars(obj).values() if inspect.isfunction(f)), None)
        if code is not None:
            try:
                text = open(code.co_filename, encoding="utf-8", errors="replace").read()
                for node in ast.walk(ast.parse(text)):
                    if isinstance(node, ast.ClassDef) and node.name == obj.__name__ \
                            and node.lineno <= code.co_firstlineno <= (node.end_lineno or node.lineno):
                        return ast.get_source_segment(text, node, padded=True)
            except (OSError, SyntaxError, ValueError):
                pass
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return None


def _string_constants(obj: Any) -> list[str]:
    text = _source_text(obj)
    if text is None:
        return []
    try:
        tree = ast.parse(textwrap.dedent(text))
    except SyntaxError:
        return []
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def _stride_value(obj: Any, p: inspect.Parameter, stride: int) -> tuple[Any, str | None]:
    """The value to pass for a variant parameter, in the style the class uses; and a note
    when the style had to be guessed."""
    for choice in _literal_choices(p):
        if _stride_of(choice) == stride:
            return choice, None
    seen = [s for s in _string_constants(obj) if _stride_of(s) is not None]
    exact = [s for s in seen if _stride_of(s) == stride]
    default = p.default if p.default is not p.empty else None
    if exact:
        if isinstance(default, str) and _stride_of(default) is not None:
            same_style = [s for s in exact if s == _restyle(default, stride)]
            if same_style:
                return same_style[0], None
        return exact[0], None
    if _stride_of(default) is not None:
        return (stride if isinstance(default, int) else _restyle(default, stride)), None
    if seen:
        return _restyle(seen[0], stride), None
    ann = _annotation_text(p)
    if ann == "int" or (ann != "str" and p.name in _INT_STYLE_ARGS):
        return stride, None
    guess = f"fcn{stride}s"
    return guess, f"{p.name}={guess!r} is a guess: segrade found no example of the values {p.name} takes"


def _restyle(example: str, stride: int) -> str:
    return re.sub(r"8|16|32", str(stride), example, count=1)


def _variant_param(sig: _Sig) -> inspect.Parameter | None:
    for name in VARIANT_ARG_NAMES:
        p = sig.get(name)
        if p is None or _annotation_text(p) == "bool":
            continue
        if p.default is p.empty or _stride_of(p.default) is not None:
            return p
        if any(_stride_of(c) is not None for c in _literal_choices(p)):
            return p
    for p in sig.params:   # any name, when its Enum or Literal choices are the three strides
        if {_stride_of(c) for c in _literal_choices(p)} >= {8, 16, 32}:
            return p
    return None


def _find_method(cls: type, names: typing.Sequence[str], frozen: bool) -> tuple[str, dict] | None:
    """A method callable after construction with no argument we cannot give."""
    for name in names:
        attr = getattr(cls, name, None)
        if not callable(attr):
            continue
        try:
            params = list(inspect.signature(attr).parameters.values())
        except (TypeError, ValueError):
            continue
        if not isinstance(inspect.getattr_static(cls, name, None), (staticmethod, classmethod)) and params:
            params = params[1:]   # self
        kwargs: dict[str, Any] = {}
        usable = True
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.default is not p.empty:
                continue
            kind = _freeze_flag(p) if p.kind is not p.POSITIONAL_ONLY else None
            if kind is None and p.name in ("flag", "value", "mode", "on", "enable", "enabled"):
                kind = True
            if kind is None:
                usable = False
                break
            kwargs[p.name] = frozen if kind else not frozen
        if usable:
            return name, kwargs
    return None


# --------------------------------------------------------------------------- planning


@dataclass
class _Filled:
    values: dict[str, Any]
    after: list[tuple[str, dict]]
    mechanisms: list[str]
    notes: list[str]
    auto: set[str]          # parameter names segrade fills itself (class count, channels, pretrained)


@dataclass
class _Option:
    rank: tuple[int, int, int]
    tier: str
    candidate: Candidate
    sig: _Sig
    filled: _Filled


def plan_variant(request: VariantRequest, candidates: list[Candidate],
                 manifest: dict[str, dict] | None = None, exclude: typing.Sequence[Any] = ()) -> BuildPlan | Unresolved:
    """Decide how to build one variant from the student's candidates (see the module doc).
    `exclude`: factories already tried whose forward raised NotImplementedError."""
    if manifest and request.id in manifest:
        return _plan_from_manifest(request, manifest[request.id], candidates)
    candidates = [c for c in candidates if not any(c.obj is e for e in exclude)]

    options: list[_Option] = []
    rejected: list[tuple[tuple[int, int, int], str]] = []   # (rank, reason) of candidates that fit but fail
    near_misses: list[str] = []
    for candidate in candidates:
        tier, sub, reason = _classify(request, candidate)
        if tier is None:
            if reason:
                near_misses.append(reason)
            continue
        rank = (_TIER_RANK[tier], sub, 0 if inspect.isclass(candidate.obj) else 1)
        try:
            sig = _signature(candidate.obj)
            filled = _fill(request, candidate, tier, sig)
        except _NotUsable as exc:
            rejected.append((rank, f"{candidate.label}: {exc}"))
            continue
        options.append(_Option(rank, tier, candidate, sig, filled))
    options = _dedupe(options)

    if not options:
        return _missing(request, [reason for _, reason in rejected] + near_misses)
    # An abstract base carrying the contract name (`class UNet` whose forward or decode()
    # raises NotImplementedError, subclassed by VanillaUNet): concrete classes first.
    abstract_notes: list[str] = []
    abstract = {id(o.candidate.obj): why for o in options
                if (why := _abstract_reason(o.candidate.obj, candidates)) is not None}
    if abstract and any(id(o.candidate.obj) not in abstract for o in options):
        for o in sorted(options, key=lambda o: o.rank):
            if id(o.candidate.obj) in abstract:
                abstract_notes.append(f"{o.candidate.label} is an abstract base ({abstract[id(o.candidate.obj)]}): "
                                      "not built")
        options = [o for o in options if id(o.candidate.obj) not in abstract]
    best = min(o.rank for o in options)
    top = [o for o in options if o.rank == best]
    notes: list[str] = []
    if len(top) > 1:
        texts = {_source_text(o.candidate.obj) for o in top}
        if len(texts) == 1 and None not in texts:
            top.sort(key=lambda o: o.candidate.source)
            notes.append(f"identical copies of {top[0].candidate.name} in "
                         f"{', '.join(o.candidate.source for o in top)}: used the one in {top[0].candidate.source}")
            top = top[:1]
        else:
            return _ambiguous(request, top)
    chosen = top[0]
    notes += [f"not used: {reason}" for rank, reason in rejected if rank < chosen.rank]
    plan = _plan(request, chosen, abstract_notes + notes)
    if abstract_notes:
        plan.description += "; " + "; ".join(abstract_notes)
    return plan


def _raises_only_not_implemented(function: Any) -> bool:
    """A function whose body (after a docstring) is only `raise NotImplementedError...`."""
    text = _source_text(function)
    if text is None:
        return False
    try:
        tree = ast.parse(textwrap.dedent(text))
    except SyntaxError:
        return False
    fn = tree.body[0] if tree.body and isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef)) else None
    if fn is None:
        return False
    body = [n for n in fn.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    if len(body) != 1 or not isinstance(body[0], ast.Raise) or body[0].exc is None:
        return False
    exc = body[0].exc.func if isinstance(body[0].exc, ast.Call) else body[0].exc
    return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"


def _abstract_reason(obj: Any, candidates: list[Candidate]) -> str | None:
    """Why a candidate class is an abstract base, or None: abc-abstract, no forward of its own,
    a forward that only raises NotImplementedError, or another method that only raises it and
    that a subclass among the candidates implements."""
    if not inspect.isclass(obj) or not _is_module_class(obj):
        return None
    import torch

    if inspect.isabstract(obj):
        return "it has abstract methods"
    forward = getattr(obj, "forward", None)
    if forward is torch.nn.Module.forward:
        return "it defines no forward"
    if _raises_only_not_implemented(forward):
        return "its forward raises NotImplementedError"
    subclasses = [c.obj for c in candidates if inspect.isclass(c.obj) and c.obj is not obj and issubclass(c.obj, obj)]
    for name, member in vars(obj).items():
        if not inspect.isfunction(member) or not _raises_only_not_implemented(member):
            continue
        implementers = sorted({sub.__name__ for sub in subclasses
                               if any(name in k.__dict__ for k in sub.__mro__[:sub.__mro__.index(obj)])})
        if implementers:
            return f"its {name}() raises NotImplementedError; {', '.join(implementers)} implement it"
    return None


def _dedupe(options: list[_Option]) -> list[_Option]:
    """One option per object (a class exported under two names or re-imported): the best."""
    best: dict[int, _Option] = {}
    for option in options:
        key = id(option.candidate.obj)
        if key not in best or option.rank < best[key].rank:
            best[key] = option
    return [o for o in options if best[id(o.candidate.obj)] is o]


def _names_for(request: VariantRequest) -> tuple[str, ...]:
    return (request.class_name, *request.aliases)


def _classify(request: VariantRequest, candidate: Candidate) -> tuple[str | None, int, str | None]:
    """(tier, sub-rank, None) when the candidate may build the variant; (None, 0, reason or None) otherwise."""
    name, obj = candidate.name, candidate.obj
    n = normalise_name(name)
    is_class = inspect.isclass(obj)
    named = n == normalise_name(request.class_name) or n in {normalise_name(a) for a in request.aliases}
    if is_class and not _is_module_class(obj):
        return None, 0, (f"{candidate.label} is named like {request.class_name} but is not a torch.nn.Module"
                         if named else None)
    if not is_class and not _is_factory_function(obj):
        return None, 0, None
    if name.startswith("_"):
        return None, 0, None    # a private base class (_UNet, _FCNBase): only the manifest may name it
    frozen_sub = 1
    if "frozen" in request.traits:
        marker = _frozen_from_name(n)
        frozen_sub = 1 if marker is None else (0 if marker == bool(request.traits["frozen"]) else 2)
    if n == normalise_name(request.class_name):
        return "contract", frozen_sub, None
    if named:
        return "alias", frozen_sub, None
    family = normalise_name(request.family)
    if not is_class or not family or family not in n or is_helper_name(name):
        return None, 0, None
    if "stride" in request.traits:
        stride = _stride_from_name(name)
        if stride == request.traits["stride"]:
            return "name pattern", frozen_sub, None
        if stride is not None:
            return None, 0, None    # another variant's class
        try:
            sig = _signature(obj)
        except _NotUsable as exc:
            return None, 0, f"{candidate.label}: {exc}"
        if _variant_param(sig) is not None:
            return "variant argument", frozen_sub, None
        return None, 0, (f"{candidate.label} has no argument choosing the output stride "
                         f"(looked for {', '.join(VARIANT_ARG_NAMES[:8])}...)")
    unet_traits = [t for t in ("skip", "residual", "attention") if t in request.traits]
    if unet_traits:
        try:
            sig = _signature(obj)
        except _NotUsable as exc:
            return None, 0, f"{candidate.label}: {exc}"
        if any(_unet_flag(p.name) and _boolish(p) for p in sig.params):
            return "flags", 0, None
        said = _unet_traits_from_name(n)
        if all(said[t] == bool(request.traits[t]) for t in unet_traits):
            return "name pattern", 0, None
        if all(said[t] == (t == "skip") for t in said):   # a plain U-Net name: say what it lacks
            lacking = [t for t in unet_traits if said[t] != bool(request.traits[t])]
            return None, 0, (f"{candidate.label} has no {' or '.join(_TRAIT_WORDS[t] for t in lacking)} flag "
                             f"(looked for {', '.join(UNET_FLAG_EXAMPLES[lacking[0]][:6])}...)")
    return None, 0, None


def _fill(request: VariantRequest, candidate: Candidate, tier: str, sig: _Sig) -> _Filled:
    """Keyword arguments for this candidate; raises _NotUsable when it cannot build the variant."""
    name, obj, traits = candidate.name, candidate.obj, request.traits
    blind = sig.var_kw is not None and tier in ("contract", "alias")   # **kwargs: pass the contract's names
    contract = request.contract_kwargs()
    out = _Filled({}, [], [], [], set())
    values = out.values

    _fill_common(request, name, sig, out, blind)

    if "stride" in traits:
        p = _variant_param(sig)
        if p is not None and (tier == "variant argument" or p.default is p.empty):
            values[p.name], guessed = _stride_value(obj, p, int(traits["stride"]))
            if guessed:
                out.notes.append(guessed)

    if "frozen" in traits:
        _fill_freeze(request, candidate, sig, out, blind, contract)

    if request.family == "fcn" or "stride" in traits:
        _fill_backbone_choice(candidate, sig, out)

    unet_traits = [t for t in ("skip", "residual", "attention") if t in traits]
    flagged = False
    for trait in unet_traits:
        want = bool(traits[trait])
        flags = [(p, kind[1]) for p in sig.params if (kind := _unet_flag(p.name)) and kind[0] == trait and _boolish(p)]
        for p, inverted in flags:
            values[p.name] = (not want) if inverted else want
            flagged = True
        if not flags and tier == "flags":
            default = _unet_traits_from_name(normalise_name(name))[trait]
            if default != want:
                raise _NotUsable(f"{sig.text(name)} has no {_TRAIT_WORDS[trait]} flag "
                                 f"(looked for {', '.join(UNET_FLAG_EXAMPLES[trait][:6])}...)")
    if flagged and tier != "flags":
        out.mechanisms.append("flags")

    # The spec's other contract kwargs (a course's own options), where the class takes them.
    recognised = set(CLASS_COUNT_NAMES) | set(PRETRAINED_NAMES) | set(WEIGHTS_NAMES) | set(FREEZE_FLAG_NAMES) | set(
        INVERTED_FREEZE_FLAG_NAMES) | {request.pretrained_kwarg, request.num_classes_kwarg}
    for key, value in request.kwargs.items():
        if key in recognised or key in values:
            continue
        if sig.get(key) is not None or blind:
            values[key] = value
        else:
            out.notes.append(f"{name} has no `{key}` argument: the spec's {key}={value!r} was left out")

    missing = [p.name for p in sig.params if p.default is p.empty and p.name not in values]
    if missing:
        needs = ", ".join(f"`{m}`" for m in missing)
        raise _NotUsable(f"{sig.text(name)} needs {needs}, which segrade can't guess: add a manifest")
    if sig.var_pos and not sig.params and not sig.var_kw:
        raise _NotUsable(f"{sig.text(name)} takes only positional *{sig.var_pos}: add a manifest")
    if blind:
        passed = [k for k in values if sig.get(k) is None]
        if passed:
            out.notes.append(f"{name} takes **{sig.var_kw}: passed {', '.join(passed)} as the contract names "
                             "them, without seeing its parameters")
    return out


def _by_pattern(sig: _Sig, matches: typing.Callable[[str], bool]) -> inspect.Parameter | None:
    """The first count-like parameter (an int default, None, or required; an `int` annotation
    or none) whose name matches: the class count or input channels under a name not listed."""
    for p in sig.params:
        if not matches(p.name) or not _count_like(p) or isinstance(p.default, bool):
            continue
        ann = _annotation_text(p).replace("typing.", "")
        if ann in ("", "int", "Optional[int]", "int | None"):
            return p
    return None


def _is_class_count_name(name: str) -> bool:
    """output_classes, nb_classes, number_of_classes, n_labels, num_outputs, out_dim..."""
    words = name_tokens(name)
    if any(w in ("weight", "weights", "names", "name", "map", "mapping", "ids", "idx", "index") for w in words):
        return False
    if any(w in ("class", "classes", "cls", "label", "labels", "categories", "category") for w in words):
        return True
    return bool(words) and words[0] in ("out", "output", "outputs", "nout", "num", "n", "nb") and any(
        w in ("out", "output", "outputs", "dim", "dims", "channels", "chans", "ch", "planes") for w in words[1:]) \
        and "in" not in words


def _is_in_channel_name(name: str) -> bool:
    """image_channels, img_channels, in_dim, input_dim, num_channels, n_channel, in_planes..."""
    words = name_tokens(name)
    channel = any(w in ("channel", "channels", "chans", "ch", "chs", "dim", "planes") for w in words)
    source = any(w in ("in", "input", "inputs", "img", "image", "images", "rgb") for w in words)
    return channel and (source or name in ("channels", "num_channels", "n_channel", "nchannels"))


def _fill_common(request: VariantRequest, name: str, sig: _Sig, out: _Filled, blind: bool) -> None:
    """Class count, input channels and the pretrained switch (used by the manifest too)."""
    values = out.values
    p = _first(sig, CLASS_COUNT_NAMES, _count_like) or _by_pattern(sig, _is_class_count_name)
    if p is not None:
        values[p.name] = request.num_classes
        out.auto.add(p.name)
    elif blind:
        values[request.num_classes_kwarg] = request.num_classes
        out.auto.add(request.num_classes_kwarg)
    else:
        out.notes.append(f"{name} takes no class-count argument: assumed to output {request.num_classes} classes")

    p = _first(sig, IN_CHANNEL_NAMES, _count_like) or _by_pattern(sig, _is_in_channel_name)
    if p is not None:
        if p.default is p.empty or p.default is None:
            values[p.name] = 3
            out.auto.add(p.name)
        elif isinstance(p.default, int) and p.default < 8 and p.default != 3:   # 1 or 4; 64 is a width
            values[p.name] = 3
            out.auto.add(p.name)
            out.notes.append(f"{p.name}=3 instead of its default {p.default!r}: the inputs are RGB images")

    if request.pretrained is None:
        return
    switches = [p for p in sig.params if p.name in PRETRAINED_NAMES or p.name in WEIGHTS_NAMES]
    for p in switches:
        if p.name in WEIGHTS_NAMES:
            if not request.pretrained:
                values[p.name] = None
            elif p.default is p.empty or p.default is None:
                values[p.name] = PRETRAINED_WEIGHTS_VALUE
            else:
                continue   # its own default already asks for pretrained weights
        else:
            values[p.name] = bool(request.pretrained)
        out.auto.add(p.name)
    if not switches:
        if blind:
            values[request.pretrained_kwarg] = request.pretrained
            out.auto.add(request.pretrained_kwarg)
        elif not request.pretrained:
            out.notes.append(f"{name} has no pretrained switch: if it loads ImageNet weights itself, "
                             "that fails offline")


def _fill_freeze(request: VariantRequest, candidate: Candidate, sig: _Sig, out: _Filled, blind: bool,
                 contract: dict[str, Any]) -> None:
    frozen = bool(request.traits["frozen"])
    name, obj, values = candidate.name, candidate.obj, out.values
    contract_names = {k for k in contract if k in FREEZE_FLAG_NAMES or k in INVERTED_FREEZE_FLAG_NAMES}
    flags = [(p, kind) for p in sig.params if (kind := _freeze_flag(p)) is not None]
    direct = [p for p, kind in flags if kind]
    inverted = [p for p, kind in flags if not kind]
    if direct:
        values[direct[0].name] = frozen
        if direct[0].name not in contract_names:
            out.mechanisms.append("freeze flag")
        return
    if inverted:
        values[inverted[0].name] = not frozen
        out.mechanisms.append("inverted freeze flag")
        return
    if blind and contract_names:
        for key in contract_names:
            values[key] = contract[key]
        return
    if inspect.isclass(obj):
        if frozen:
            method = _find_method(obj, FREEZE_METHOD_NAMES, True)
            if method:
                out.after.append(method)
                out.mechanisms.append("freeze method")
                return
        else:
            method = _find_method(obj, UNFREEZE_METHOD_NAMES, False)
            if method:
                out.after.append(method)
                out.mechanisms.append("unfreeze method")
                return
            freezer = _find_method(obj, FREEZE_METHOD_NAMES, True)
            if freezer:
                out.notes.append(f"fine-tuned: built as the class defaults, without calling {freezer[0]}()")
                return
    out.mechanisms.append("no freeze option")
    out.notes.append(f"no freeze option found in {name} (no flag, no freeze method): built as the class defaults; "
                     "the frozen-backbone check shows whether the backbone "
                     + ("is frozen" if frozen else "trains"))


_VGG16_TEXT = re.compile(r"vgg[-_ ]?16(?!\d)", re.IGNORECASE)
_VGG_TEXT = re.compile(r"vgg[-_ ]?(\d+)", re.IGNORECASE)


def _fill_backbone_choice(candidate: Candidate, sig: _Sig, out: _Filled) -> None:
    """A backbone-choice argument (`backbone_name="vgg19"`, `backbone="resnet50"`) gets VGG16,
    the assignment's backbone, in the form the class uses; left alone when no VGG16 form is
    found (and said so)."""
    for p in sig.params:
        if p.name not in BACKBONE_ARG_NAMES or p.name in out.values or _annotation_text(p) == "bool":
            continue
        default = p.default if p.default is not p.empty else None
        if isinstance(default, bool) or isinstance(default, (int, float)):
            continue
        value = _vgg16_value(candidate.obj, p, default)
        if value is None:
            if default is not None and not (isinstance(default, str) and _VGG16_TEXT.search(default)):
                out.notes.append(f"{candidate.name}'s {p.name} defaults to {_value_text(default)} and segrade found no "
                                 f"VGG16 value for it: built with that backbone")
            continue
        if default is not None and (value is default or value == default):
            return   # already VGG16
        out.values[p.name] = value
        out.mechanisms.append("backbone argument")
        was = f" instead of its default {_value_text(default)}" if default is not None else ""
        out.notes.append(f"{p.name}={_value_text(value)}{was}: the assignment's backbone is VGG16")
        return


def _vgg16_value(obj: Any, p: inspect.Parameter, default: Any) -> Any:
    """VGG16 in the style of this parameter: a Literal/Enum choice, a string of the class's
    source, the default restyled (vgg19 -> vgg16), or torchvision's vgg16 builder."""
    for choice in _literal_choices(p):
        text = choice.name if isinstance(choice, enum.Enum) else choice
        if isinstance(text, str) and _VGG16_TEXT.search(text) and "bn" not in text.lower():
            return choice
    if callable(default) and getattr(default, "__module__", "").startswith("torchvision.models"):
        match = _VGG_TEXT.search(getattr(default, "__name__", ""))
        if match:
            import torchvision

            return getattr(torchvision.models, _VGG_TEXT.sub("vgg16", default.__name__, count=1), None)
        return None
    if isinstance(default, str) and _VGG16_TEXT.search(default):
        return default
    if isinstance(default, str) and _VGG_TEXT.search(default):
        return _VGG_TEXT.sub(lambda m: m.group(0)[:-len(m.group(1))] + "16", default, count=1)
    texts = [t for t in _string_constants(obj) if _VGG16_TEXT.fullmatch(t.strip())]
    if texts and (default is None or isinstance(default, str)):
        return texts[0]
    return None


def _split_call(sig: _Sig, values: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional-only parameters go in args; the rest stays keyword, in signature order."""
    kwargs = dict(values)
    positional = [p for p in sig.params if p.kind is p.POSITIONAL_ONLY]
    last = max((i for i, p in enumerate(positional) if p.name in kwargs), default=-1)
    args = []
    for p in positional[:last + 1]:
        args.append(kwargs.pop(p.name) if p.name in kwargs else p.default)
    order = {p.name: i for i, p in enumerate(sig.params)}
    ordered = dict(sorted(kwargs.items(), key=lambda kv: order.get(kv[0], len(order))))
    return tuple(args), ordered


def _call_text(name: str, args: tuple, kwargs: dict[str, Any], after: typing.Iterable[tuple[str, dict]]) -> str:
    parts = [_value_text(a) for a in args] + [f"{k}={_value_text(v)}" for k, v in kwargs.items()]
    text = f"{name}({', '.join(parts)})"
    for method, kw in after:
        text += f".{method}({', '.join(f'{k}={_value_text(v)}' for k, v in kw.items())})"
    return text


def _plan(request: VariantRequest, option: _Option, notes: list[str]) -> BuildPlan:
    candidate, filled = option.candidate, option.filled
    args, kwargs = _split_call(option.sig, filled.values)
    after = tuple(filled.after)
    adapter = " + ".join([option.tier, *(m for m in filled.mechanisms if m != option.tier)])
    description = (f"{request.class_name} ← {_call_text(candidate.name, args, kwargs, after)} "
                   f"from {candidate.source}, adapter: {adapter}")
    return BuildPlan(variant_id=request.id, factory=candidate.obj, kwargs=kwargs, after=after, adapter=adapter,
                     source=candidate.source, description=description, notes=tuple(notes + filled.notes), args=args)


# --------------------------------------------------------------------------- the manifest's plan


def _plan_from_manifest(request: VariantRequest, entry: dict, candidates: list[Candidate]) -> BuildPlan | Unresolved:
    origin = entry.get("origin", MANIFEST_NAME)
    factory = entry["factory"]
    path, name = _split_factory(factory)
    looked_for = (factory,)
    matches: list[Candidate] = []
    for c in candidates:
        if c.name == name and (path is None or _same_source(c.source, path)) and all(m.obj is not c.obj for m in matches):
            matches.append(c)
    if not matches:
        where = path or "the submission"
        in_file = sorted({c.name for c in candidates if path is not None and _same_source(c.source, path)})
        found = (f" Found in {path}: {', '.join(in_file)}." if in_file else
                 f" segrade found no classes or functions in {path}." if path else "")
        return Unresolved(request.id, "missing",
                          f"{origin} builds {request.id} with {factory}, but no {name} was found in {where}: "
                          f"the file may have failed to import (see its import error), or the name or path is "
                          f"wrong.{found}", looked_for, tuple(c.label for c in candidates if c.name == name))
    if len(matches) > 1:
        pins = "\n".join(f'factory = "{c.source}:{c.name}"' for c in matches)
        return Unresolved(request.id, "ambiguous",
                          f"{origin} builds {request.id} with {factory}, which is defined in several files: "
                          f"{', '.join(c.label for c in matches)}. Name the file in [variants.{request.id}], "
                          f"one of:\n{pins}", looked_for, tuple(c.label for c in matches))
    candidate = matches[0]

    def fail(text: str) -> Unresolved:
        return Unresolved(request.id, "missing", f"{origin}, [variants.{request.id}]: {text}", looked_for,
                          (candidate.label,))

    try:
        sig = _signature(candidate.obj)
    except _NotUsable as exc:
        return fail(f"{candidate.label}: {exc}")
    given = dict(entry.get("kwargs") or {})
    unknown = [k for k in given if sig.get(k) is None and sig.var_kw is None]
    if unknown:
        return fail(f"{sig.text(candidate.name)} in {candidate.source} has no parameter "
                    f"{', '.join(f'`{k}`' for k in unknown)}: fix the kwargs")

    # Enum-typed parameters take a member's name or value in the manifest (TOML has no Enum).
    for key, value in list(given.items()):
        p = sig.get(key)
        enum_type = _enum_type(p) if p is not None else None
        if enum_type is not None:
            member = _enum_member(enum_type, value)
            if member is None:
                names = ", ".join(f'"{enum_type.__name__}.{m.name}"' for m in enum_type)
                return fail(f"{key} = {value!r} is not a member of {enum_type.__name__}: write one of {names}")
            given[key] = member

    # Fill what the manifest leaves out: the class count, RGB input, the pretrained switch.
    auto = _Filled({}, [], [], [], set())
    _fill_common(request, candidate.name, sig, auto, blind=False)
    values = dict(given)
    notes = [f"pinned by {origin}"]
    if not any(k in CLASS_COUNT_NAMES for k in given):
        for k in auto.auto & set(CLASS_COUNT_NAMES):
            values[k] = auto.values[k]
            notes.append(f"{k}={auto.values[k]!r} added by segrade (the manifest gives no class count)")
    for k in auto.auto & set(IN_CHANNEL_NAMES):
        if k not in given and sig.get(k).default is sig.get(k).empty:
            values[k] = 3
    if request.pretrained is not None and not any(k in PRETRAINED_NAMES or k in WEIGHTS_NAMES for k in given):
        for k in auto.auto & (set(PRETRAINED_NAMES) | set(WEIGHTS_NAMES)):
            values[k] = auto.values[k]
            notes.append(f"{k}={auto.values[k]!r} added by segrade: ImageNet weights are "
                         + ("available" if request.pretrained else "not available offline"))

    after = tuple((call["method"], dict(call.get("kwargs") or {})) for call in entry.get("after") or ())
    if inspect.isclass(candidate.obj):
        for method, _ in after:
            if not callable(getattr(candidate.obj, method, None)):
                return fail(f"after = {method!r}, but {candidate.name} has no method {method}()")
    missing = [p.name for p in sig.params if p.default is p.empty and p.name not in values]
    if missing:
        return fail(f"{sig.text(candidate.name)} needs {', '.join(f'`{m}`' for m in missing)}: add "
                    f"{' and '.join(missing)} to kwargs")
    args, kwargs = _split_call(sig, values)
    description = (f"{request.class_name} ← {_call_text(candidate.name, args, kwargs, after)} "
                   f"from {candidate.source}, adapter: manifest")
    return BuildPlan(variant_id=request.id, factory=candidate.obj, kwargs=kwargs, after=after, adapter="manifest",
                     source=candidate.source, description=description, notes=tuple(notes), args=args)


# --------------------------------------------------------------------------- unresolved: messages


def _toml_value(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, enum.Enum):   # an Enum member by name; the manifest resolves it
        return json.dumps(_value_text(value))
    return None   # None and objects cannot be written in TOML: leave them to their defaults


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def manifest_lines(variant_id: str, factory: str, kwargs: dict[str, Any] | None = None,
                   after: typing.Iterable[tuple[str, dict]] = ()) -> str:
    """The TOML that pins one variant: [variants.ID], factory, kwargs and after lines."""
    lines = [f"[variants.{variant_id}]", f"factory = {json.dumps(factory)}"]
    items = [(k, _toml_value(v)) for k, v in (kwargs or {}).items()]
    items = [(k, v) for k, v in items if v is not None]
    if items:
        lines.append("kwargs = { " + ", ".join(f"{_toml_key(k)} = {v}" for k, v in items) + " }")
    after = list(after)
    if after and all(not kw for _, kw in after):
        names = [m for m, _ in after]
        lines.append(f"after = {json.dumps(names[0])}" if len(names) == 1 else f"after = {json.dumps(names)}")
    elif after:
        entries = []
        for method, kw in after:
            kw_items = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in kw.items() if _toml_value(v))
            entries.append(f'{{ method = {json.dumps(method)}, kwargs = {{ {kw_items} }} }}')
        lines.append(f"after = [{', '.join(entries)}]")
    return "\n".join(lines)


def _looked_for(request: VariantRequest) -> tuple[str, ...]:
    looked = list(_names_for(request))
    family = (request.family or "model").upper()
    article = "an" if family[:1] in "AEFHILMNORSX" else "a"   # letters said with a vowel sound
    if "stride" in request.traits:
        s = request.traits["stride"]
        looked.append(f"{article} {family} class whose name says {s} (e.g. {family}{s}, VGG16{family}{s}s)")
        looked.append(f"{article} {family} class with an argument choosing the stride "
                      f"({', '.join(VARIANT_ARG_NAMES[:8])}...)")
    unet_traits = [t for t in ("skip", "residual", "attention") if t in request.traits]
    if unet_traits:
        needed = [t for t in unet_traits if request.traits[t] != (t == "skip")]
        flags = " and ".join(f"a {_TRAIT_WORDS[t]} flag ({', '.join(UNET_FLAG_EXAMPLES[t][:4])}...)" for t in needed)
        looked.append(f"a U-Net class with {flags}" if flags else "a U-Net class with skip/residual/attention flags")
    return tuple(looked)


def _pin_kwargs(request: VariantRequest) -> dict[str, Any]:
    """The variant-specific kwargs worth writing in a manifest template (not the class count
    or the pretrained switch, which segrade adds itself)."""
    contract = request.contract_kwargs()
    contract.pop(request.num_classes_kwarg, None)
    contract.pop(request.pretrained_kwarg, None)
    return contract


def _missing(request: VariantRequest, reasons: list[str]) -> Unresolved:
    looked = _looked_for(request)
    names = ", ".join(_names_for(request))
    patterns = "; ".join(looked[len(_names_for(request)):])
    text = f"Nothing in the submission builds {request.class_name} ({request.id}). segrade looked for a class " \
           f"or function named {names} (case and underscores ignored)"
    text += f"; {patterns}." if patterns else "."
    if reasons:
        text += " Not usable: " + "; ".join(reasons) + "."
    template = manifest_lines(request.id, "path/to/file.py:ClassName", _pin_kwargs(request))
    text += f" If the code is there under another name, pin it in {MANIFEST_NAME}:\n\n{template}"
    return Unresolved(request.id, "missing", text, looked, tuple(reasons))


def _ambiguous(request: VariantRequest, options: list[_Option]) -> Unresolved:
    labels = tuple(o.candidate.label for o in options)
    first = options[0]
    pinned = {k: v for k, v in _split_call(first.sig, first.filled.values)[1].items() if k not in first.filled.auto}
    lines = manifest_lines(request.id, f"{first.candidate.source}:{first.candidate.name}", pinned, first.filled.after)
    others = " or ".join(f'factory = "{o.candidate.source}:{o.candidate.name}"' for o in options[1:])
    text = (f"{len(options)} candidates fit {request.class_name} ({request.id}) equally well ({first.tier}): "
            f"{', '.join(labels)}. Pin one in {MANIFEST_NAME}, e.g.:\n\n{lines}\n\n(or {others}; segrade adds the "
            "class count and the pretrained switch itself)")
    return Unresolved(request.id, "ambiguous", text, _looked_for(request), labels)


# --------------------------------------------------------------------------- outputs

from grader.measure.logits import to_logits  # noqa: E402,F401  (measured in the verifier too)
