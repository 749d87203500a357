"""The reference solution's structures, as boilerplate for structural similarity: a layer
the reference has in a variant weighs nothing in that variant, so two students whose models
are the reference's never match for it (as its code never counts textually).

The reference is segrade's own trusted code: it is imported here, in the grading process,
and each variant is built on torch's `meta` device (shapes only: no memory, no weights), or
on the CPU when its constructor copies weights; the tokens are kept in the results folder.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any


_BUILT: dict[str, dict[str, set[str]]] = {}  # per spec sha256, in this process


def reference_tokens(assignment) -> dict[str, set[str]]:
    """variant id -> the structure tokens of the reference's model for it ({} when the
    reference cannot build it, e.g. another course's spec)."""
    if assignment.sha256 not in _BUILT:
        _BUILT[assignment.sha256] = _reference_tokens(assignment)
    return {v: set(t) for v, t in _BUILT[assignment.sha256].items()}


def _reference_tokens(assignment) -> dict[str, set[str]]:
    from grader.shared.resources import reference_dir
    from grader.similarity.structural import variant_tokens

    modules = []
    for path in sorted(reference_dir().glob("*.py")):
        name = f"_segrade_reference_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
            modules.append(module)
        except Exception:  # noqa: BLE001 (a reference file that does not import is simply not used)
            sys.modules.pop(name, None)
    out: dict[str, set[str]] = {}
    for variant in assignment.variants:
        cls = next((getattr(m, variant.class_name) for m in modules if hasattr(m, variant.class_name)), None)
        if cls is None:
            continue
        kwargs: dict[str, Any] = {assignment.contract.num_classes_kwarg: assignment.num_classes, **variant.kwargs}
        if variant.family.pretrained_kwarg:
            kwargs[variant.family.pretrained_kwarg] = False
        try:
            out[variant.id] = {t for t in variant_tokens({"structure": {"layers": _layers(cls, kwargs)}})
                               if not t.startswith("A:")}
        except Exception:  # noqa: BLE001 (then that variant has no structural boilerplate)
            continue
    return out


def _layers(cls, kwargs: dict[str, Any]) -> list[str]:
    """Built on the meta device; a model whose constructor copies weights (the FCNs' fc6/fc7
    from VGG16's classifier) cannot be, and is built on the CPU once, without gradients."""
    import torch

    from grader.shared.structure import layers

    try:
        with torch.device("meta"):
            return layers(cls(**kwargs))
    except Exception:  # noqa: BLE001
        with torch.no_grad():
            return layers(cls(**kwargs))


def cached_reference_tokens(assignment, cache_file) -> dict[str, set[str]]:
    """reference_tokens, kept in `cache_file` for the reference's code and the spec they were
    built from (building the FCNs takes seconds)."""
    import hashlib
    import json
    from pathlib import Path

    from grader import __version__
    from grader.shared.resources import reference_dir

    from grader.shared.structure import FORM

    digest = hashlib.sha256(f"{__version__}\n{FORM}\n{assignment.sha256}".encode())
    for path in sorted(reference_dir().glob("*.py")):
        digest.update(path.read_bytes())
    key = digest.hexdigest()
    cache_file = Path(cache_file)
    try:
        data = json.loads(cache_file.read_text())
        if data.get("key") == key:
            return {v: set(t) for v, t in data["tokens"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    tokens = reference_tokens(assignment)
    try:
        cache_file.write_text(json.dumps({"key": key, "tokens": {v: sorted(t) for v, t in tokens.items()}}))
    except OSError:
        pass
    return tokens
