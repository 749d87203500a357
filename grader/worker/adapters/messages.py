"""What an `Unresolved` says: what segrade looked for, why candidates were not usable, and the
exact manifest lines (TOML) that pin the variant.
"""

from __future__ import annotations

import enum
import json
import re
import typing
from typing import Any

from grader.shared.manifest import MANIFEST_NAME
from grader.worker.adapters.filling import Option, split_call
from grader.worker.adapters.known_names import TRAIT_WORDS, UNET_FLAG_EXAMPLES, VARIANT_ARG_NAMES
from grader.worker.adapters.plans import Unresolved, VariantRequest
from grader.worker.adapters.signatures import value_text


def _names_for(request: VariantRequest) -> tuple[str, ...]:
    return (request.class_name, *request.aliases)


def _toml_value(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, enum.Enum):   # an Enum member by name; the manifest resolves it
        return json.dumps(value_text(value))
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
        flags = " and ".join(f"{'an' if TRAIT_WORDS[t][0] in 'aeiou' else 'a'} {TRAIT_WORDS[t]} flag "
                             f"({', '.join(UNET_FLAG_EXAMPLES[t][:4])}...)" for t in needed)
        looked.append(f"a U-Net class with {flags}" if flags else "a U-Net class with skip/residual/attention flags")
        kinds = {"skip": '"noskip"', "residual": '"residual"', "attention": '"attention"'}
        if needed:
            looked.append(f"a U-Net class with an argument choosing the kind of U-Net (mode, variant, type, kind... "
                          f"= {' or '.join(kinds[t] for t in needed)})")
    return tuple(looked)


def _pin_kwargs(request: VariantRequest) -> dict[str, Any]:
    """The variant-specific kwargs worth writing in a manifest template (not the class count
    or the pretrained switch, which segrade adds itself)."""
    contract = request.contract_kwargs()
    contract.pop(request.num_classes_kwarg, None)
    contract.pop(request.pretrained_kwarg, None)
    return contract


def missing_message(request: VariantRequest, reasons: list[str]) -> Unresolved:
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


def ambiguous_message(request: VariantRequest, options: list[Option]) -> Unresolved:
    labels = tuple(o.candidate.label for o in options)
    first = options[0]
    pinned = {k: v for k, v in split_call(first.sig, first.filled.values)[1].items() if k not in first.filled.auto}
    lines = manifest_lines(request.id, f"{first.candidate.source}:{first.candidate.name}", pinned, first.filled.after)
    others = " or ".join(f'factory = "{o.candidate.source}:{o.candidate.name}"' for o in options[1:])
    text = (f"{len(options)} candidates fit {request.class_name} ({request.id}) equally well ({first.tier}): "
            f"{', '.join(labels)}. Pin one in {MANIFEST_NAME}, e.g.:\n\n{lines}\n\n(or {others}; segrade adds the "
            "class count and the pretrained switch itself)")
    return Unresolved(request.id, "ambiguous", text, _looked_for(request), labels)
