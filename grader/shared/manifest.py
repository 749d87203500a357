"""The manifest (segrade.toml): which student class or function builds each variant.

Parsed on the grading side (grader.submission.load) and handed to the worker as plain JSON in its
request; the worker (grader.worker.adapters) follows it. Neutral: imports nothing from segrade.
"""

from __future__ import annotations

import difflib
import tomllib
import typing
from pathlib import PurePosixPath
from typing import Any

MANIFEST_NAME = "segrade.toml"
MANIFEST_SECTIONS = ("variants",)             # top-level tables a manifest may hold
MANIFEST_VARIANT_KEYS = ("factory", "kwargs", "after", "freeze", "weights")


class ManifestError(ValueError):
    """The manifest (segrade.toml) is malformed; the message names the file and the variant."""


def parse_manifest(text: str, origin: str = MANIFEST_NAME) -> dict[str, dict]:
    """Parse a manifest into {variant_id: {"factory", "kwargs", "after", "freeze", "origin"}}.

    `after` is normalised to a list of {"method": str, "kwargs": dict}, `freeze` to a list of
    the parts (submodules or parameters, `features`, `encoder.0`) whose parameters are frozen
    after construction, for a class whose backbone the student froze outside it. Variant ids are not
    checked here (the parser does not know the spec): see `check_manifest_ids`. The result is
    plain JSON, so the grading process can hand it to the worker.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{origin} is not valid TOML: {exc}") from None
    unknown = [key for key in data if key not in MANIFEST_SECTIONS]
    if unknown:
        raise ManifestError(f"{origin}: unknown top-level key(s) {', '.join(map(repr, unknown))}; a manifest holds "
                            "only [variants.<variant id>] tables (see docs/submissions.md)")
    variants = data.get("variants", {})
    if not isinstance(variants, dict):
        raise ManifestError(f"{origin}: `variants` must be tables, [variants.<variant id>]")
    manifest: dict[str, dict] = {}
    for variant_id, entry in variants.items():
        where = f"{origin}: [variants.{variant_id}]"
        if not isinstance(entry, dict):
            raise ManifestError(f'{where} must be a table with factory = "path/to/file.py:ClassName"')
        for key in entry:
            if key not in MANIFEST_VARIANT_KEYS:
                close = difflib.get_close_matches(key, MANIFEST_VARIANT_KEYS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ManifestError(f"{where}: unknown key {key!r}{hint}; allowed: {', '.join(MANIFEST_VARIANT_KEYS)}")
        factory = entry.get("factory")
        if not isinstance(factory, str):
            raise ManifestError(f'{where} needs factory = "path/to/file.py:ClassName"')
        try:
            _split_factory(factory)
        except ValueError as exc:
            raise ManifestError(f"{where}: {exc}") from None
        kwargs = entry.get("kwargs", {})
        if not isinstance(kwargs, dict):
            raise ManifestError(f"{where}: kwargs must be a table, e.g. kwargs = {{ n_classes = 13 }}")
        for key in kwargs:
            if not key.isidentifier():
                raise ManifestError(f"{where}: kwargs key {key!r} is not a Python parameter name")
        _check_plain(kwargs, f"{where}: kwargs")
        weights = entry.get("weights")
        if weights is not None and not isinstance(weights, str):
            raise ManifestError(f'{where}: weights must be a path inside the submission, "weights/unet.pt"')
        manifest[variant_id] = {"factory": factory.strip(), "kwargs": dict(kwargs),
                                "after": _parse_after(entry.get("after", []), where), "origin": origin,
                                "weights": weights, "freeze": _parse_freeze(entry.get("freeze", []), where)}
    return manifest


def _parse_freeze(value: Any, where: str) -> list[str]:
    parts = [value] if isinstance(value, str) else value
    if not isinstance(parts, list) or not all(isinstance(p, str) for p in parts):
        raise ManifestError(f'{where}: freeze must be a part of the model or a list of them, e.g. freeze = "features"')
    for part in parts:
        if not all(piece.isidentifier() or piece.isdigit() for piece in part.split(".")):
            raise ManifestError(f"{where}: freeze names {part!r}, which is not a dotted attribute path "
                                "(features, backbone.layer1, encoder.0)")
    return list(parts)


def _parse_after(value: Any, where: str) -> list[dict[str, Any]]:
    items = [value] if isinstance(value, (str, dict)) else value
    if not isinstance(items, list):
        raise ManifestError(f'{where}: after must be a method name or a list, e.g. after = "freeze_backbone"')
    calls = []
    for item in items:
        if isinstance(item, str):
            item = {"method": item}
        if not isinstance(item, dict) or not isinstance(item.get("method"), str):
            raise ManifestError(f'{where}: each `after` entry is a method name or {{ method = "name", kwargs = {{...}} }}')
        extra = set(item) - {"method", "kwargs"}
        if extra:
            raise ManifestError(f"{where}: unknown key(s) {sorted(extra)} in `after`; allowed: method, kwargs")
        if not item["method"].isidentifier():
            raise ManifestError(f"{where}: after names {item['method']!r}, which is not a method name")
        kwargs = item.get("kwargs", {})
        if not isinstance(kwargs, dict):
            raise ManifestError(f"{where}: the kwargs of after-method {item['method']!r} must be a table")
        _check_plain(kwargs, f"{where}: the kwargs of after-method {item['method']!r}")
        calls.append({"method": item["method"], "kwargs": dict(kwargs)})
    return calls


def _check_plain(value: Any, where: str) -> None:
    """Manifest values travel to the worker as JSON: no TOML dates or times."""
    if isinstance(value, dict):
        for v in value.values():
            _check_plain(v, where)
    elif isinstance(value, list):
        for v in value:
            _check_plain(v, where)
    elif not isinstance(value, (str, int, float, bool)):
        raise ManifestError(f"{where} hold a {type(value).__name__} ({value}); use strings, numbers, booleans, "
                            "arrays or tables")


def check_manifest_ids(manifest: dict[str, dict], known_ids: typing.Iterable[str]) -> None:
    """Raise ManifestError when the manifest names a variant the spec does not have."""
    known = list(known_ids)
    for variant_id, entry in manifest.items():
        if variant_id in known:
            continue
        close = difflib.get_close_matches(variant_id, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        origin = entry.get("origin", MANIFEST_NAME) if isinstance(entry, dict) else MANIFEST_NAME
        raise ManifestError(f"{origin}: [variants.{variant_id}] is not a variant of this assignment{hint}; "
                            f"known ids: {', '.join(known)}")


def _split_factory(factory: str) -> tuple[str | None, str]:
    """"models/unet.py:UNet" -> ("models/unet.py", "UNet"); "models.unet:UNet" -> the same;
    "UNet" -> (None, "UNet"): any file."""
    text = factory.strip()
    path, sep, name = text.rpartition(":")
    if not name.isidentifier():
        raise ValueError(f'factory = {factory!r}: must look like "path/to/file.py:ClassName" '
                         "(a file of the submission, a colon, a class or function name)")
    if not sep:
        return None, name
    path = path.strip().replace("\\", "/")
    if path.endswith(".py"):
        pure = PurePosixPath(path)
        if pure.is_absolute() or ".." in pure.parts or not pure.parts:
            raise ValueError(f"factory = {factory!r}: the file must be a path inside the submission, "
                             "relative to its top folder")
        return pure.as_posix(), name
    if path and all(part.isidentifier() for part in path.split(".")):
        return path, name
    raise ValueError(f'factory = {factory!r}: must look like "path/to/file.py:ClassName" or "package.module:ClassName"')
