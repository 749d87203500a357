"""The plan a manifest pins (`[variants.ID]` with factory, kwargs and after): checked against
the candidate's signature, with the class count, RGB input and pretrained switch added when
the manifest leaves them out.
"""

from __future__ import annotations

import inspect

from grader.shared.manifest import MANIFEST_NAME, _split_factory
from grader.worker.adapters.filling import Filled, call_text, fill_common, split_call
from grader.worker.adapters.known_names import (
    CLASS_COUNT_NAMES,
    DEVICE_NAMES,
    IN_CHANNEL_NAMES,
    PRETRAINED_NAMES,
    WEIGHTS_NAMES,
)
from grader.worker.adapters.plans import BuildContext, BuildPlan, Candidate, TopLevelFreeze, Unresolved, VariantRequest, same_source
from grader.worker.adapters.signatures import NotUsable, enum_member, enum_type_of, read_signature


def plan_from_manifest(request: VariantRequest, entry: dict, candidates: list[Candidate],
                       context: BuildContext = BuildContext()) -> BuildPlan | Unresolved:
    origin = entry.get("origin", MANIFEST_NAME)
    factory = entry["factory"]
    path, name = _split_factory(factory)
    looked_for = (factory,)
    matches: list[Candidate] = []
    for c in candidates:
        if c.name == name and (path is None or same_source(c.source, path)) and all(m.obj is not c.obj for m in matches):
            matches.append(c)
    if not matches:
        where = path or "the submission"
        in_file = sorted({c.name for c in candidates if path is not None and same_source(c.source, path)})
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
        sig = read_signature(candidate.obj)
    except NotUsable as exc:
        return fail(f"{candidate.label}: {exc}")
    given = dict(entry.get("kwargs") or {})
    unknown = [k for k in given if sig.get(k) is None and sig.var_kw is None]
    if unknown:
        return fail(f"{sig.text(candidate.name)} in {candidate.source} has no parameter "
                    f"{', '.join(f'`{k}`' for k in unknown)}: fix the kwargs")

    # Enum-typed parameters take a member's name or value in the manifest (TOML has no Enum).
    for key, value in list(given.items()):
        p = sig.get(key)
        enum_type = enum_type_of(p) if p is not None else None
        if enum_type is not None:
            member = enum_member(enum_type, value)
            if member is None:
                names = ", ".join(f'"{enum_type.__name__}.{m.name}"' for m in enum_type)
                return fail(f"{key} = {value!r} is not a member of {enum_type.__name__}: write one of {names}")
            given[key] = member

    # Fill what the manifest leaves out: the class count, RGB input, the pretrained switch.
    auto = Filled({}, [], [], [], set())
    fill_common(request, candidate.name, sig, auto, blind=False, device=context.device)
    values = dict(given)
    notes = [f"pinned by {origin}"]
    if not any(k in CLASS_COUNT_NAMES for k in given):
        for k in auto.auto & set(CLASS_COUNT_NAMES):
            values[k] = auto.values[k]
            notes.append(f"{k}={auto.values[k]!r} added by segrade (the manifest gives no class count)")
    for k in auto.auto & set(IN_CHANNEL_NAMES):
        if k not in given and sig.get(k).default is sig.get(k).empty:
            values[k] = 3
    for k in auto.auto & set(DEVICE_NAMES):
        if k not in given:
            values[k] = auto.values[k]
            notes.append(f"{k}={auto.values[k]} added by segrade: the device it builds and measures on")
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
    args, kwargs = split_call(sig, values)
    freeze = tuple(TopLevelFreeze(class_name=candidate.name, instance=request.id, select="module", path=part,
                                  requires_grad=False, where=origin, code=f"freeze = {part!r}")
                   for part in entry.get("freeze") or ())
    frozen = f", then {', '.join(part for part in entry.get('freeze') or ())} frozen" if freeze else ""
    description = (f"{request.class_name} ← {call_text(candidate.name, args, kwargs, after)}{frozen} "
                   f"from {candidate.source}, adapter: manifest")
    return BuildPlan(variant_id=request.id, factory=candidate.obj, kwargs=kwargs, after=after, adapter="manifest",
                     source=candidate.source, description=description, notes=tuple(notes), args=args, freeze=freeze)
