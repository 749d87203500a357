"""What names and source text say: the FCN stride in a class name or a variant value, frozen
or fine-tuned in a name, U-Net traits and flags, freeze flags and methods, and the value a
variant argument takes in the style the class uses.
"""

from __future__ import annotations

import ast
import enum
import functools
import inspect
import re
import textwrap
import typing
from typing import Any

from grader.shared.names import normalise_name
from grader.worker.adapters.known_names import (
    FREEZE_FLAG_NAMES,
    INT_STYLE_ARGS,
    INVERTED_FREEZE_FLAG_NAMES,
    VARIANT_ARG_NAMES,
)
from grader.worker.adapters.signatures import NotUsable, Sig, annotation_text, boolish, literal_choices, read_signature


_STRIDE_VALUE = re.compile(r"^\s*(?:fcn)?[-_ ]?(8|16|32)\s*s?\s*$", re.IGNORECASE)


def _stride_of(value: Any) -> int | None:
    """8, "8", "8s", "fcn8s", "FCN-8s", "fcn_8s" -> 8; anything else -> None."""
    if isinstance(value, enum.Enum):   # FCNVariant.FCN8S = "fcn8s" / = 8 / = auto()
        by_value = _stride_of(value.value)
        by_name = stride_from_name(value.name)
        return by_value if by_value is not None else by_name if isinstance(by_name, int) else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value in (8, 16, 32) else None
    if isinstance(value, str):
        match = _STRIDE_VALUE.match(value)
        return int(match.group(1)) if match else None
    return None


def stride_from_name(name: str) -> int | None | str:
    """FCN8 / VGG16FCN8s / FCN_VGG16_8s -> 8; no stride in the name -> None; several -> "conflict"."""
    low = name.lower()
    found = {int(m) for m in re.findall(r"fcn[_-]?(8|16|32)(?!\d)", low)}
    found |= {int(m) for m in re.findall(r"(?<![a-z0-9])(8|16|32)s(?![a-z0-9])", low)}
    if len(found) > 1:
        return "conflict"
    return found.pop() if found else None


def frozen_from_name(normalised: str) -> bool | None:
    if any(w in normalised for w in ("finetun", "tuned", "trainable", "unfrozen", "unfreeze")):
        return False
    if any(w in normalised for w in ("frozen", "freeze", "fixed")):
        return True
    return None


# Attention in a U-Net class name: AttUNet, UNetAttn; GatedUNet, UNetGating (the assignment's
# "gated attention"); the common misspelling AtentionUNet and Spanish UNetAtencion.
_ATTENTION_IN_NAME = re.compile(r"att|aten[ct]|gated|gating")


def unet_traits_from_name(normalised: str) -> dict[str, bool]:
    """What a U-Net class name says about it; a plain name means a vanilla U-Net."""
    return {"skip": not any(w in normalised for w in ("noskip", "withoutskip", "skipless", "nonskip", "woskip")),
            "residual": "res" in normalised,
            "attention": bool(_ATTENTION_IN_NAME.search(normalised))}


def unet_flag(name: str) -> tuple[str, bool] | None:
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


def freeze_flag(p: inspect.Parameter) -> bool | None:
    """True: a freeze flag (True freezes); False: an inverted one (True fine-tunes); None: neither."""
    if p.name in FREEZE_FLAG_NAMES:
        return True if boolish(p) else None
    if p.name in INVERTED_FREEZE_FLAG_NAMES:
        return False if boolish(p) else None
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


def is_module_class(obj: Any) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return True
    return isinstance(obj, type) and issubclass(obj, torch.nn.Module)


def is_factory_function(obj: Any) -> bool:
    return inspect.isfunction(obj) or isinstance(obj, functools.partial)


def source_text(obj: Any) -> str | None:
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


def string_constants(obj: Any) -> list[str]:
    text = source_text(obj)
    if text is None:
        return []
    try:
        tree = ast.parse(textwrap.dedent(text))
    except SyntaxError:
        return []
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def stride_value(obj: Any, p: inspect.Parameter, stride: int) -> tuple[Any, str | None]:
    """The value to pass for a variant parameter, in the style the class uses; and a note
    when the style had to be guessed."""
    for choice in literal_choices(p):
        if _stride_of(choice) == stride:
            return choice, None
    seen = [s for s in string_constants(obj) if _stride_of(s) is not None]
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
    ann = annotation_text(p)
    if ann == "int" or (ann != "str" and p.name in INT_STYLE_ARGS):
        return stride, None
    guess = f"fcn{stride}s"
    return guess, f"{p.name}={guess!r} is a guess: segrade found no example of the values {p.name} takes"


def _restyle(example: str, stride: int) -> str:
    return re.sub(r"8|16|32", str(stride), example, count=1)


def variant_param(sig: Sig) -> inspect.Parameter | None:
    for name in VARIANT_ARG_NAMES:
        p = sig.get(name)
        if p is None or annotation_text(p) == "bool":
            continue
        if p.default is p.empty or _stride_of(p.default) is not None:
            return p
        if any(_stride_of(c) is not None for c in literal_choices(p)):
            return p
    for p in sig.params:   # any name, when its Enum or Literal choices are the three strides
        if {_stride_of(c) for c in literal_choices(p)} >= {8, 16, 32}:
            return p
    return None


# Values of a U-Net kind argument that mean the vanilla U-Net (`UNet(mode="vanilla")`).
_VANILLA_KIND_WORDS = {"vanilla", "plain", "basic", "base", "standard", "default", "normal", "original", "classic",
                       "simple", "unet", "skip", "skips", "withskip", "withskips"}
_KIND_TEXT = re.compile(r"[A-Za-z][\w\-]{0,29}")
# Words that contain "res" or "att" without saying residual or attention.
_NOT_KIND_WORDS = ("resiz", "rescal", "result", "reshap", "resolut", "reset", "pattern", "format", "batt")


def _unet_kind_of(text: str) -> dict[str, bool] | None:
    """The U-Net a kind value says ("noskip", "no_skip", "residual", "res", "attention",
    "gated", "vanilla"...), or None when the value names no U-Net kind ("bilinear")."""
    n = normalise_name(text)
    if any(w in n for w in _NOT_KIND_WORDS):
        return None
    said = unet_traits_from_name(n)
    if not said["skip"] or said["residual"] or said["attention"]:
        return said
    return said if n in _VANILLA_KIND_WORDS else None


def unet_kind_argument(obj: Any, sig: Sig, traits: dict[str, Any]) -> tuple[inspect.Parameter, Any] | None:
    """(parameter, value) of a U-Net family class's argument that chooses the kind of U-Net
    (`UNet(mode="noskip"|"residual"|"attention")`, `variant: Literal[...]`, an Enum), for the
    U-Net these traits describe; None when the class has no such argument or no value for it.
    The values are read from a Literal/Enum annotation, else from short strings in the class's
    source (`if mode == "residual"`) and the default."""
    want = {t: bool(traits[t]) for t in ("skip", "residual", "attention") if t in traits}
    for name in VARIANT_ARG_NAMES:
        p = sig.get(name)
        if p is None or name in INT_STYLE_ARGS or annotation_text(p) in ("bool", "int"):
            continue
        choices = literal_choices(p)
        if not choices:
            default = [p.default] if isinstance(p.default, str) else []
            choices = default + [t for t in string_constants(obj) if _KIND_TEXT.fullmatch(t)]
        kinds = []
        for choice in choices:
            text = choice if isinstance(choice, str) else choice.name if isinstance(choice, enum.Enum) else None
            said = _unet_kind_of(text) if text is not None else None
            if said is None and isinstance(choice, enum.Enum) and isinstance(choice.value, str):
                said = _unet_kind_of(choice.value)
            if said is not None:
                kinds.append((choice, said))
        # a kind argument names at least two kinds of U-Net (not `mode="bilinear"`)
        if len({tuple(sorted(said.items())) for _, said in kinds}) < 2:
            continue
        for choice, said in kinds:
            if all(said[t] == want[t] for t in want):
                return p, choice
    return None


def names_the_strides(obj: Any, family: str) -> bool:
    """A class whose variant argument takes values naming the family and each of the three
    strides ("fcn32s", "fcn16s", "fcn8s" as Literal choices or strings of its source), though
    the class name does not say the family."""
    try:
        sig = read_signature(obj)
    except NotUsable:
        return False
    p = variant_param(sig)
    if p is None:
        return False
    values = [v for v in [*literal_choices(p), *string_constants(obj)] if isinstance(v, (str, enum.Enum))]
    texts = [v.name if isinstance(v, enum.Enum) else v for v in values]
    return {_stride_of(t) for t in texts if family in normalise_name(t)} >= {8, 16, 32}


def find_method(cls: type, names: typing.Sequence[str], frozen: bool) -> tuple[str, dict] | None:
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
            kind = freeze_flag(p) if p.kind is not p.POSITIONAL_ONLY else None
            if kind is None and p.name in ("flag", "value", "mode", "on", "enable", "enabled"):
                kind = True
            if kind is None:
                usable = False
                break
            kwargs[p.name] = frozen if kind else not frozen
        if usable:
            return name, kwargs
    return None
