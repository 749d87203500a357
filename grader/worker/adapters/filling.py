"""Filling a candidate's arguments from its signature: the class count under any of its usual
names, the input channels (3, or 1 for a grayscale course), the pretrained switch (the grader
runs offline), the frozen backbone (flag, inverted flag, method, the student's top-level code
or nothing), the VGG16
backbone, the stride and the U-Net flags; then the call, split into positional and keyword
arguments.
"""

from __future__ import annotations

import enum
import inspect
import re
import typing
from dataclasses import dataclass
from typing import Any

from grader.shared.names import name_tokens, normalise_name
from grader.worker.adapters.heuristics import (
    find_method,
    frozen_from_name,
    is_module_class,
    freeze_flag,
    stride_value,
    string_constants,
    unet_flag,
    unet_kind_argument,
    unet_traits_from_name,
    variant_param,
)
from grader.worker.adapters.known_names import (
    BACKBONE_ARG_NAMES,
    CLASS_COUNT_NAMES,
    DEVICE_NAMES,
    IMAGE_SIZE_NAMES,
    FREEZE_FLAG_NAMES,
    FREEZE_METHOD_NAMES,
    INVERTED_FREEZE_FLAG_NAMES,
    IN_CHANNEL_NAMES,
    PRETRAINED_NAMES,
    PRETRAINED_WEIGHTS_VALUE,
    TRAIT_WORDS,
    UNET_FLAG_EXAMPLES,
    UNFREEZE_METHOD_NAMES,
    WEIGHTS_NAMES,
)
from grader.worker.adapters.plans import BuildContext, Built, Candidate, TopLevelFreeze, VariantRequest
from grader.worker.adapters.signatures import (
    NotUsable,
    Sig,
    annotation_text,
    boolish,
    count_like,
    first_param,
    literal_choices,
    read_signature,
    unset,
    value_text,
)


@dataclass
class Filled:
    values: dict[str, Any]
    after: list[tuple[str, dict]]
    mechanisms: list[str]
    notes: list[str]
    auto: set[str]          # parameter names segrade fills itself (class count, channels, pretrained)
    freeze: tuple[TopLevelFreeze, ...] = ()   # the student's top-level freezing, for a class with no option


@dataclass
class Option:
    rank: tuple[int, ...]
    tier: str
    candidate: Candidate
    sig: Sig
    filled: Filled


def fill(request: VariantRequest, candidate: Candidate, tier: str, sig: Sig,
         context: BuildContext = BuildContext()) -> Filled:
    """Keyword arguments for this candidate; raises NotUsable when it cannot build the variant.
    `context`: the device, and what the submission's top-level code sets requires_grad on."""
    name, obj, traits = candidate.name, candidate.obj, request.traits
    blind = sig.var_kw is not None and tier in ("contract", "alias")   # **kwargs: pass the contract's names
    contract = request.contract_kwargs()
    out = Filled({}, [], [], [], set())
    values = out.values

    fill_common(request, name, sig, out, blind, context.device)
    network_freezes = _fill_networks(request, candidate, sig, out, context.classes)

    if "stride" in traits:
        p = variant_param(sig)
        if p is not None and (tier == "variant argument" or p.default is p.empty):
            values[p.name], guessed = stride_value(obj, p, int(traits["stride"]))
            if guessed:
                out.notes.append(guessed)

    if "frozen" in traits:
        if network_freezes:   # the network argument's own flag freezes or fine-tunes it
            out.mechanisms.append("freeze flag of the network argument")
        else:
            _fill_freeze(request, candidate, sig, out, blind, contract, context.freezes)

    if request.family == "fcn" or "stride" in traits:
        _fill_backbone_choice(candidate, sig, out)

    unet_traits = [t for t in ("skip", "residual", "attention") if t in traits]
    if unet_traits:   # an argument choosing the kind of U-Net: UNet(mode="noskip")
        kind = unet_kind_argument(obj, sig, traits)
        if kind is not None and (kind[1] != kind[0].default or tier == "variant argument"):
            values[kind[0].name] = kind[1]
            if tier != "variant argument":
                out.mechanisms.append("variant argument")
    flagged = False
    for trait in unet_traits:
        want = bool(traits[trait])
        flags = [(p, kind[1]) for p in sig.params if (kind := unet_flag(p.name)) and kind[0] == trait and boolish(p)]
        for p, inverted in flags:
            values[p.name] = (not want) if inverted else want
            flagged = True
        if not flags and tier == "flags":
            default = unet_traits_from_name(normalise_name(name))[trait]
            if default != want:
                raise NotUsable(f"{sig.text(name)} has no {TRAIT_WORDS[trait]} flag "
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
        objects = [m for m in missing if _takes_a_network(m)]
        if objects:   # FCNs(pretrained_net=VGGNet(...), n_class=13): no TOML value is a network
            raise NotUsable(f"{sig.text(name)} needs {needs}, and `{objects[0]}` is a network object that no one "
                            "class of the submission fits (a VGG class for an FCN, or one named after it), which "
                            f"a manifest's kwargs cannot give either: add a function that builds the model, e.g. `def "
                            f"build_{request.id}(num_classes): return {name}({objects[0]}=..., ...)`, and pin it "
                            f'in segrade.toml (factory = "file.py:build_{request.id}")')
        raise NotUsable(f"{sig.text(name)} needs {needs}, which segrade can't guess: add a manifest")
    if sig.var_pos and not sig.params and not sig.var_kw:
        raise NotUsable(f"{sig.text(name)} takes only positional *{sig.var_pos}: add a manifest")
    if blind:
        passed = [k for k in values if sig.get(k) is None]
        if passed:
            out.notes.append(f"{name} takes **{sig.var_kw}: passed {', '.join(passed)} as the contract names "
                             "them, without seeing its parameters")
    return out


def _by_pattern(sig: Sig, matches: typing.Callable[[str], bool]) -> inspect.Parameter | None:
    """The first count-like parameter (an int default, None, or required; an `int` annotation
    or none) whose name matches: the class count or input channels under a name not listed."""
    for p in sig.params:
        if not matches(p.name) or not count_like(p) or isinstance(p.default, bool):
            continue
        ann = annotation_text(p).replace("typing.", "")
        if ann in ("", "int", "Optional[int]", "int | None"):
            return p
    return None


def _is_class_count_name(name: str) -> bool:
    """output_classes, nb_classes, number_of_classes, n_labels, num_outputs, out_dim..."""
    words = name_tokens(name)
    if any(w in ("weight", "weights", "names", "name", "map", "mapping", "ids", "idx", "index") for w in words):
        return False
    if any(w in ("class", "classes", "cls", "label", "labels", "categories", "category", "clases", "clase",
                 "classi", "klassen") for w in words):   # and in Spanish, Italian, German: num_clases
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


def fill_common(request: VariantRequest, name: str, sig: Sig, out: Filled, blind: bool, device: Any = "cpu") -> None:
    """Class count, input channels, the device and the pretrained switch (used by the manifest too)."""
    values = out.values
    # A constructor that takes the device (Colab code: `UNet(13, device)`, `device="cuda"`) is
    # given the one segrade builds on: required, it would make the class unusable; defaulted to
    # a GPU, it would fail on a CPU machine.
    for p in sig.params:
        if p.name in DEVICE_NAMES:
            values[p.name] = device
            out.auto.add(p.name)
            if p.default is not p.empty and str(p.default) != str(device):
                out.notes.append(f"{p.name}={device} instead of its default {p.default!r}: the device segrade "
                                 "builds and measures on")
    p = first_param(sig, CLASS_COUNT_NAMES, count_like) or _by_pattern(sig, _is_class_count_name)
    if p is not None:
        values[p.name] = request.num_classes
        out.auto.add(p.name)
    elif blind:
        values[request.num_classes_kwarg] = request.num_classes
        out.auto.add(request.num_classes_kwarg)
    else:
        out.notes.append(f"{name} takes no class-count argument: assumed to output {request.num_classes} classes")

    # An input size the constructor requires (`UNet(img_size, ...)` for a fixed upsampling):
    # the family's, with a note; the checks at other sizes then show what a fixed size costs.
    p = first_param(sig, IMAGE_SIZE_NAMES, lambda q: unset(q) and annotation_text(q) in ("", "int"))
    if p is not None:
        values[p.name] = request.input_size
        out.auto.add(p.name)
        out.notes.append(f"{p.name}={request.input_size}: the constructor requires an input size, and segrade gives "
                         "the one it builds for; the model is measured at other sizes too")

    p = first_param(sig, IN_CHANNEL_NAMES, count_like) or _by_pattern(sig, _is_in_channel_name)
    channels = request.in_channels
    if p is not None:
        if unset(p) or p.default is None:
            values[p.name] = channels
            out.auto.add(p.name)
        elif isinstance(p.default, int) and p.default < 8 and p.default != channels:   # 1, 3 or 4; 64 is a width
            values[p.name] = channels
            out.auto.add(p.name)
            kind = "RGB images" if channels == 3 else "grayscale images (one channel)"
            out.notes.append(f"{p.name}={channels} instead of its default {p.default!r}: the inputs are {kind}")
    _fill_pretrained(request, name, sig, out, blind)


def _fill_pretrained(request: VariantRequest, name: str, sig: Sig, out: Filled, blind: bool) -> None:
    """The pretrained switches: ImageNet weights when the instructor supplied them, else none."""
    values = out.values
    if request.pretrained is None:
        return
    switches = [p for p in sig.params if p.name in PRETRAINED_NAMES or p.name in WEIGHTS_NAMES]
    for p in switches:
        if p.name in WEIGHTS_NAMES:
            if not request.pretrained:
                values[p.name] = None
            elif unset(p) or p.default is None:
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


def _fill_freeze(request: VariantRequest, candidate: Candidate, sig: Sig, out: Filled, blind: bool,
                 contract: dict[str, Any], freezes: typing.Sequence[TopLevelFreeze] = ()) -> None:
    frozen = bool(request.traits["frozen"])
    name, obj, values = candidate.name, candidate.obj, out.values
    contract_names = {k for k in contract if k in FREEZE_FLAG_NAMES or k in INVERTED_FREEZE_FLAG_NAMES}
    flag = _freeze_flag(sig)
    if flag is not None:
        p, direct = flag
        values[p.name] = frozen if direct else not frozen
        if not direct:
            out.mechanisms.append("inverted freeze flag")
        elif p.name not in contract_names:
            out.mechanisms.append("freeze flag")
        return
    if blind and contract_names:
        for key in contract_names:
            values[key] = contract[key]
        return
    if inspect.isclass(obj):
        if frozen:
            method = find_method(obj, FREEZE_METHOD_NAMES, True)
            if method:
                out.after.append(method)
                out.mechanisms.append("freeze method")
                return
        else:
            method = find_method(obj, UNFREEZE_METHOD_NAMES, False)
            if method:
                out.after.append(method)
                out.mechanisms.append("unfreeze method")
                return
            freezer = find_method(obj, FREEZE_METHOD_NAMES, True)
            if freezer:
                out.notes.append(f"fine-tuned: built as the class defaults, without calling {freezer[0]}()")
                return
    steps = top_level_steps(frozen, candidate, freezes)
    if steps:
        out.freeze = steps
        out.mechanisms.append("top-level freeze")
        out.notes.append(f"{name} has no freeze option (no flag, no freeze method); the submission's top-level code "
                         f"{'freezes' if frozen else 'unfreezes'} an instance of it ({steps[0].instance}, "
                         f"{steps[0].where}: `{steps[0].code}`), so segrade does the same after building it. A "
                         "freeze_backbone flag in the class keeps this with the model")
        return
    out.mechanisms.append("no freeze option")
    out.notes.append(f"no freeze option found in {name} (no flag, no freeze method): built as the class defaults; "
                     "the frozen-backbone check shows whether the backbone "
                     + ("is frozen" if frozen else "trains"))


def _freeze_flag(sig: Sig) -> tuple[inspect.Parameter, bool] | None:
    """The constructor's freeze flag and whether it is direct (True freezes) or inverted (True
    fine-tunes); a direct one first. None without one."""
    flags = [(p, kind) for p in sig.params if (kind := freeze_flag(p)) is not None]
    return next((f for f in flags if f[1]), None) or next(iter(flags), None)


def top_level_steps(frozen: bool, candidate: Candidate,
                    freezes: typing.Sequence[TopLevelFreeze]) -> tuple[TopLevelFreeze, ...]:
    """What the top-level code does to the first instance of the candidate's class it freezes
    (a frozen variant) or only unfreezes (a fine-tuned one), in order; () when none. Freezing
    the whole model and nothing else is left out: what made such a model trainable again (a
    head replaced by assignment) is not seen, and a model with nothing to train measures nothing."""
    names = {candidate.name, getattr(candidate.obj, "__name__", candidate.name)}
    by_instance: dict[str, list[TopLevelFreeze]] = {}
    for step in freezes:
        if step.class_name in names:
            by_instance.setdefault(step.instance, []).append(step)
    # A variable whose name says the other state (`model_ft` for a frozen variant) is not used;
    # one whose name says this state is tried first.
    said = {instance: _state_in_name(instance) for instance in by_instance}
    order = sorted((i for i in by_instance if said[i] is not (not frozen)), key=lambda i: said[i] is not frozen)
    for steps in (by_instance[i] for i in order):
        values = {step.requires_grad for step in steps}
        if frozen and False in values and any(step.path or step.requires_grad for step in steps):
            return tuple(steps)
        if not frozen and values == {True}:
            return tuple(steps)
    return ()


# A required parameter that takes a network, not a value: `pretrained_net`, `backbone`, `encoder`.
_MODEL_OBJECT_WORDS = frozenset({"net", "backbone", "encoder", "vgg", "vgg16", "extractor", "basenet", "model"})
_MODEL_OBJECT_QUALIFIERS = frozenset({"pretrained", "base", "feature", "features", "my", "the", "cnn"})


def _takes_a_network(parameter: str) -> bool:
    """`pretrained_net`, `backbone`, `vgg_model`, `feature_extractor`; not `encoder_depth`."""
    words = set(parameter.lower().split("_")) - {""}
    return bool(words & _MODEL_OBJECT_WORDS) and words <= _MODEL_OBJECT_WORDS | _MODEL_OBJECT_QUALIFIERS


def _fill_networks(request: VariantRequest, candidate: Candidate, sig: Sig, out: Filled,
                   classes: typing.Sequence[Candidate]) -> bool:
    """A required parameter that takes a network (`FCNs(pretrained_net, n_class)`, the backbone
    built outside and passed in): the submission's one class that fits it (a VGG class for an
    FCN, or a class named as the parameter: `encoder` -> `Encoder`), built with the pretrained
    switch and, for a frozen or fine-tuned variant, its own freeze flag (VGGNet(requires_grad=...)).
    Returns whether that flag decides the freezing."""
    decides = False
    for p in sig.params:
        if p.default is not p.empty or p.name in out.values or not _takes_a_network(p.name):
            continue
        network = _network_class(request, p.name, candidate, classes)
        if network is None:
            continue
        try:
            inner_sig = read_signature(network.obj)
        except NotUsable:
            continue
        inner = Filled({}, [], [], [], set())
        _fill_pretrained(request, network.name, inner_sig, inner, blind=False)
        flag = _freeze_flag(inner_sig) if "frozen" in request.traits else None
        if flag is not None:
            frozen = bool(request.traits["frozen"])
            inner.values[flag[0].name] = frozen if flag[1] else not frozen
        if any(q.default is q.empty and q.name not in inner.values for q in inner_sig.params):
            continue   # not buildable either: the argument stays missing
        decides = decides or flag is not None
        text = call_text(network.name, (), inner.values, ())
        out.values[p.name] = Built(network.obj, dict(inner.values), text)
        out.mechanisms.append("network argument")
        out.notes.append(f"{p.name}={text}: {network.name} from {network.source}, the submission's class for it "
                         "(a network argument cannot be guessed otherwise)")
        out.notes.extend(f"{network.name}: {note}" for note in inner.notes)
    return decides


def _network_class(request: VariantRequest, parameter: str, candidate: Candidate,
                   classes: typing.Sequence[Candidate]) -> Candidate | None:
    words = {w for w in parameter.lower().split("_") if len(w) > 2} - {"net", "model", "pretrained", "base"}
    fits: dict[int, Candidate] = {}
    for other in classes:
        if other.obj is candidate.obj or not is_module_class(other.obj):
            continue
        name = normalise_name(other.name)
        if ("vgg" in name and request.family == "fcn") or any(w in name for w in words):
            fits.setdefault(id(other.obj), other)
    return next(iter(fits.values())) if len(fits) == 1 else None


def _state_in_name(instance: str) -> bool | None:
    """Whether a variable's name says frozen (True: `fcn8_frozen`) or fine-tuned (False:
    `model_ft`, `fcn32_finetune`), or neither."""
    variable = instance.split(" (")[0]
    if {"ft", "finetune", "finetuned", "tuned", "tune"} & set(re.split(r"[_\W\d]+", variable.lower())):
        return False
    return frozen_from_name(normalise_name(variable))


_VGG16_TEXT = re.compile(r"vgg[-_ ]?16(?!\d)", re.IGNORECASE)


_VGG_TEXT = re.compile(r"vgg[-_ ]?(\d+)", re.IGNORECASE)


def _fill_backbone_choice(candidate: Candidate, sig: Sig, out: Filled) -> None:
    """A backbone-choice argument (`backbone_name="vgg19"`, `backbone="resnet50"`) gets VGG16,
    the assignment's backbone, in the form the class uses; left alone when no VGG16 form is
    found (and said so)."""
    for p in sig.params:
        if p.name not in BACKBONE_ARG_NAMES or p.name in out.values or annotation_text(p) == "bool":
            continue
        default = p.default if p.default is not p.empty else None
        if isinstance(default, bool) or isinstance(default, (int, float)):
            continue
        value = _vgg16_value(candidate.obj, p, default)
        if value is None:
            if default is not None and not (isinstance(default, str) and _VGG16_TEXT.search(default)):
                out.notes.append(f"{candidate.name}'s {p.name} defaults to {value_text(default)} and segrade found no "
                                 f"VGG16 value for it: built with that backbone")
            continue
        if default is not None and (value is default or value == default):
            return   # already VGG16
        out.values[p.name] = value
        out.mechanisms.append("backbone argument")
        was = f" instead of its default {value_text(default)}" if default is not None else ""
        out.notes.append(f"{p.name}={value_text(value)}{was}: the assignment's backbone is VGG16")
        return


def _vgg16_value(obj: Any, p: inspect.Parameter, default: Any) -> Any:
    """VGG16 in the style of this parameter: a Literal/Enum choice, a string of the class's
    source, the default restyled (vgg19 -> vgg16), or torchvision's vgg16 builder."""
    for choice in literal_choices(p):
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
    texts = [t for t in string_constants(obj) if _VGG16_TEXT.fullmatch(t.strip())]
    if texts and (default is None or isinstance(default, str)):
        return texts[0]
    return None


def split_call(sig: Sig, values: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
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


def call_text(name: str, args: tuple, kwargs: dict[str, Any], after: typing.Iterable[tuple[str, dict]]) -> str:
    parts = [value_text(a) for a in args] + [f"{k}={value_text(v)}" for k, v in kwargs.items()]
    text = f"{name}({', '.join(parts)})"
    for method, kw in after:
        text += f".{method}({', '.join(f'{k}={value_text(v)}' for k, v in kw.items())})"
    return text
