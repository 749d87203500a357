"""Choosing how to build one variant (`plan_variant`): the manifest first, then each candidate
ranked by tier (contract name, alias, name pattern, variant argument or flags); abstract
bases are passed over, and a tie is ambiguous.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import typing
from typing import Any

from grader.shared.names import is_helper_name, name_tokens, normalise_name
from grader.worker.adapters.filling import Option, call_text, fill, split_call
from grader.worker.adapters.heuristics import (
    frozen_from_name,
    is_factory_function,
    is_module_class,
    names_the_strides,
    source_text,
    stride_from_name,
    unet_flag,
    unet_kind_argument,
    unet_traits_from_name,
    variant_param,
)
from grader.worker.adapters.known_names import TRAIT_WORDS, UNET_FLAG_EXAMPLES, VARIANT_ARG_NAMES
from grader.worker.adapters.manifest_plan import plan_from_manifest
from grader.worker.adapters.messages import ambiguous_message, missing_message
from grader.worker.adapters.plans import BuildContext, BuildPlan, Candidate, Unresolved, VariantRequest
from grader.worker.adapters.signatures import NotUsable, boolish, read_signature


# How specific each way of finding a factory is: lower wins; ties are ambiguous.
_TIER_RANK = {"manifest": 0, "contract": 1, "alias": 2, "name pattern": 3, "variant argument": 4, "flags": 4}


def plan_variant(request: VariantRequest, candidates: list[Candidate],
                 manifest: dict[str, dict] | None = None, exclude: typing.Sequence[Any] = (),
                 context: BuildContext = BuildContext()) -> BuildPlan | Unresolved:
    """Decide how to build one variant from the student's candidates (see the package doc in
    grader/worker/adapters/__init__.py).
    `exclude`: factories already tried whose forward raised NotImplementedError; `context`: the
    device and the submission's top-level requires_grad statements (plans.BuildContext)."""
    if manifest and request.id in manifest:
        return plan_from_manifest(request, manifest[request.id], candidates, context)
    candidates = [c for c in candidates if not any(c.obj is e for e in exclude)]

    options: list[Option] = []
    rejected: list[tuple[tuple[int, ...], str]] = []   # (rank, reason) of candidates that fit but fail
    near_misses: list[str] = []
    for candidate in candidates:
        tier, sub, reason = _classify(request, candidate)
        if tier is None:
            if reason:
                near_misses.append(reason)
            continue
        # A name that says the variant's backbone state (FCN8s_FT, FCN8sFrozen) beats any tier
        # whose name does not: FCN8s frozen by default and FCN8s_FT(FCN8s) unfreezing it.
        said = 0 if "frozen" in request.traits and sub == 0 and tier != "manifest" else 1
        rank = (said, _TIER_RANK[tier], sub, 0 if inspect.isclass(candidate.obj) else 1)
        try:
            sig = read_signature(candidate.obj)
            filled = fill(request, candidate, tier, sig, context)
        except NotUsable as exc:
            rejected.append((rank, f"{candidate.label}: {exc}"))
            continue
        options.append(Option(rank, tier, candidate, sig, filled))
    options = _dedupe(options)

    if not options:
        return missing_message(request, [reason for _, reason in rejected] + near_misses)
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
        texts = {source_text(o.candidate.obj) for o in top}
        if len(texts) == 1 and None not in texts:
            top.sort(key=lambda o: o.candidate.source)
            notes.append(f"identical copies of {top[0].candidate.name} in "
                         f"{', '.join(o.candidate.source for o in top)}: used the one in {top[0].candidate.source}")
            top = top[:1]
        else:
            return ambiguous_message(request, top)
    chosen = top[0]
    notes += [f"not used: {reason}" for rank, reason in rejected if rank < chosen.rank]
    plan = _plan(request, chosen, abstract_notes + notes)
    if abstract_notes:
        plan.description += "; " + "; ".join(abstract_notes)
    return plan


def _raises_only_not_implemented(function: Any) -> bool:
    """A function whose body (after a docstring) is only `raise NotImplementedError...`."""
    text = source_text(function)
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
    if not inspect.isclass(obj) or not is_module_class(obj):
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


def _dedupe(options: list[Option]) -> list[Option]:
    """One option per object (a class exported under two names or re-imported): the best."""
    best: dict[int, Option] = {}
    for option in options:
        key = id(option.candidate.obj)
        if key not in best or option.rank < best[key].rank:
            best[key] = option
    return [o for o in options if best[id(o.candidate.obj)] is o]


def _classify(request: VariantRequest, candidate: Candidate) -> tuple[str | None, int, str | None]:
    """(tier, sub-rank, None) when the candidate may build the variant; (None, 0, reason or None) otherwise."""
    name, obj = candidate.name, candidate.obj
    n = normalise_name(name)
    is_class = inspect.isclass(obj)
    named = n == normalise_name(request.class_name) or n in {normalise_name(a) for a in request.aliases}
    if is_class and not is_module_class(obj):
        return None, 0, (f"{candidate.label} is named like {request.class_name} but is not a torch.nn.Module"
                         if named else None)
    if not is_class and not is_factory_function(obj):
        return None, 0, None
    if name.startswith("_"):
        return None, 0, None    # a private base class (_UNet, _FCNBase): only the manifest may name it
    frozen_sub = 1
    if "frozen" in request.traits:
        marker = frozen_from_name(n)
        if marker is None and "ft" in name_tokens(name):   # FCN8s_FT, FCN8sFT: fine-tuned
            marker = False
        frozen_sub = 1 if marker is None else (0 if marker == bool(request.traits["frozen"]) else 2)
    if n == normalise_name(request.class_name):
        return "contract", frozen_sub, None
    if named:
        return "alias", frozen_sub, None
    family = normalise_name(request.family)
    if not is_class or not family or is_helper_name(name):
        return None, 0, None
    if family not in n:
        # A family class under a name of its own whose variant argument takes the family's
        # values: SegModel(arch="fcn32s"|"fcn16s"|"fcn8s").
        if "stride" in request.traits and names_the_strides(obj, family):
            return "variant argument", frozen_sub, None
        return None, 0, None
    if "stride" in request.traits:
        stride = stride_from_name(name)
        if stride == request.traits["stride"]:
            return "name pattern", frozen_sub, None
        if stride is not None:
            return None, 0, None    # another variant's class
        try:
            sig = read_signature(obj)
        except NotUsable as exc:
            return None, 0, f"{candidate.label}: {exc}"
        if variant_param(sig) is not None:
            return "variant argument", frozen_sub, None
        return None, 0, (f"{candidate.label} has no argument choosing the output stride "
                         f"(looked for {', '.join(VARIANT_ARG_NAMES[:8])}...)")
    unet_traits = [t for t in ("skip", "residual", "attention") if t in request.traits]
    if unet_traits:
        try:
            sig = read_signature(obj)
        except NotUsable as exc:
            return None, 0, f"{candidate.label}: {exc}"
        if any(unet_flag(p.name) and boolish(p) for p in sig.params):
            return "flags", 0, None
        said = unet_traits_from_name(n)
        if all(said[t] == bool(request.traits[t]) for t in unet_traits):
            return "name pattern", 0, None
        if unet_kind_argument(obj, sig, request.traits) is not None:   # UNet(mode="noskip")
            return "variant argument", 0, None
        if all(said[t] == (t == "skip") for t in said):   # a plain U-Net name: say what it lacks
            lacking = [t for t in unet_traits if said[t] != bool(request.traits[t])]
            return None, 0, (f"{candidate.label} has no {' or '.join(TRAIT_WORDS[t] for t in lacking)} flag "
                             f"(looked for {', '.join(UNET_FLAG_EXAMPLES[lacking[0]][:6])}...)")
    return None, 0, None


def _plan(request: VariantRequest, option: Option, notes: list[str]) -> BuildPlan:
    candidate, filled = option.candidate, option.filled
    args, kwargs = split_call(option.sig, filled.values)
    after = tuple(filled.after)
    adapter = " + ".join([option.tier, *(m for m in filled.mechanisms if m != option.tier)])
    then = f", then as {filled.freeze[0].where}: {filled.freeze[0].code}" if filled.freeze else ""
    description = (f"{request.class_name} ← {call_text(candidate.name, args, kwargs, after)}{then} "
                   f"from {candidate.source}, adapter: {adapter}")
    return BuildPlan(variant_id=request.id, factory=candidate.obj, kwargs=kwargs, after=after, adapter=adapter,
                     source=candidate.source, description=description, notes=tuple(notes + filled.notes), args=args,
                     freeze=filled.freeze)
