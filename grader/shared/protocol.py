"""What crosses the trust boundary between the worker and the grading process, defined once.

Both sides import this module: the worker (grader.worker, beside student code) writes one
JSON object per line on its event channel with `line`; the grading process (grader.grading.sandbox)
reads every line through `Reader`, which turns it into a typed message or raises
`ProtocolError`. Student code runs in the worker and can write to the channel too, so the
reader trusts nothing: wrong types, unknown or missing keys, out-of-range or oversize values,
non-JSON and truncated lines, and impossible sequences (a second `done`, a result for a
variant that was not asked for or not being built, predictions before the variant's result,
a `mode` other than the one asked for) are all rejected with a message that says what was
wrong. The grading process then records the variant (or, outside any variant, the whole
submission) as `error`: "the worker sent a malformed message: ...".

What the grading process knows itself never comes from a message: the mode it asked for,
the isolation it set up, why the worker ended, statuses such as timeout or oom. A message
cannot carry `worker_status`; environment keys are a fixed, validated set.

Messages (worker -> grading process), in order:
    environment          once, first: device, torch, python (checked against the parent's own)
    phase import         once; then `module` per requested file (each at most once), then
                         `packages` at most once (missing packages stubbed or stood in)
    phase build id=V     starts variant V (one of those asked for, not reported yet)
    phase forward|check id=V, then `result` for V (once)
    phase evaluate|train id=V, `predictions` for V, then `training` for V (once, only if training
                         was asked for). Predictions: test_untrained, val..., test (train mode);
                         test only (weights mode). During the train phase, `step` messages
                         (step s of S, never going back) feed the progress display only.
    done                 once, after a result for every variant; nothing may follow
The request (grading process -> worker, or verifier), written to a file before either starts:
    WorkerRequest        the files to import, the variants to build (VariantRequest each), how
                         to run, the training (TrainingRequest) or none
    VerifierRequest      the same settings, the captured variants (VerifierVariant each)
Requests and messages are `Record`s: one declaration of each (its fields, each with its schema)
gives the dataclass, its schema and its JSON form; requests are read with `from_json`, messages
with `parse`, each checked against its schema first. So is the observation a `result` carries
(`Observation`, with a record per part): the grading side reads its fields, never a dict.
This module imports nothing from the rest of segrade (and not torch at import time).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from typing import Any, ClassVar, Union

MAX_LINE_BYTES = 768 * 1024**2        # one message line (predictions are the largest, compressed)
MAX_PREDICTION_BYTES = 512 * 1024**2  # the base64 text of one predictions message
MAX_TEXT = 100_000                    # an error message, a traceback tail, a manifest template
MAX_NAME = 1_000                      # a path, a parameter name, a class name
MAX_ITEMS = 100_000                   # entries of one list (parameter names of a large model)
MAX_INT = 2**53                       # counts (parameters, FLOPs) stay exact in JSON
MAX_SECONDS = 1e7
MAX_DEPTH = 16                        # nesting of one message

PHASES = ("import", "build", "forward", "check", "train", "evaluate", "capture")
VARIANT_PHASES = ("build", "forward", "check")     # before the variant's result
TRAINING_PHASES = ("evaluate", "train")            # after it
SPLITS = ("test_untrained", "val", "test")
MODES = ("train", "weights")                       # what the grading process may ask for
CAPTURE_PURPOSES = ("check", "train")              # the checks' build; the training build where it differs
MAX_PROGRAM_BYTES = 2**40                          # a size the capture message may state (limits: verifier)


class ProtocolError(ValueError):
    """A message the grading process cannot accept; str() says what was wrong."""


# --------------------------------------------------------------------------- the worker side

def line(event: str, **data: Any) -> str:
    """One message as the worker writes it (a JSON object and a newline)."""
    return json.dumps({"event": event, **data}, default=str) + "\n"


def encode_predictions(pred) -> dict[str, Any]:
    """The worker side of a predictions message: uint8 N x H x W class ids, compressed."""
    import base64
    import zlib

    import torch

    array = pred.to(torch.uint8).contiguous().numpy()
    return {"shape": list(array.shape), "data": base64.b64encode(zlib.compress(array.tobytes(), 1)).decode("ascii")}


# --------------------------------------------------------------------------- value schemas

class _Schema:
    what = "a value"

    def check(self, value: Any, where: str, depth: int) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


def _fail(where: str, expected: str, value: Any) -> ProtocolError:
    seen = type(value).__name__ if not isinstance(value, (int, float, str)) or isinstance(value, bool) else repr(value)
    if len(seen) > 60:
        seen = f"{type(value).__name__} of length {len(value)}" if isinstance(value, str) else seen[:57] + "..."
    return ProtocolError(f"{where}: expected {expected}, got {seen}")


class Str(_Schema):
    def __init__(self, max_len: int = MAX_NAME, choices: tuple[str, ...] = (), pattern: str | None = None) -> None:
        self.max_len, self.choices = max_len, choices
        self.pattern = re.compile(pattern) if pattern else None
        self.what = f"one of {', '.join(choices)}" if choices else f"a string of at most {max_len} characters"

    def check(self, value, where, depth):
        if not isinstance(value, str) or len(value) > self.max_len or (self.choices and value not in self.choices):
            raise _fail(where, self.what, value)
        if self.pattern and not self.pattern.fullmatch(value):
            raise _fail(where, f"a string of the form {self.pattern.pattern}", value)
        return value


class Int(_Schema):
    def __init__(self, lo: int = 0, hi: int = MAX_INT) -> None:
        self.lo, self.hi = lo, hi
        self.what = f"an integer in {lo}..{hi}"

    def check(self, value, where, depth):
        if isinstance(value, bool) or not isinstance(value, int) or not self.lo <= value <= self.hi:
            raise _fail(where, self.what, value)
        return value


class Num(_Schema):
    """A number; `nonfinite`: NaN and infinities are allowed (measurements of broken models)."""

    def __init__(self, lo: float = -1e300, hi: float = 1e300, nonfinite: bool = False) -> None:
        self.lo, self.hi, self.nonfinite = lo, hi, nonfinite
        self.what = f"a number in {lo:g}..{hi:g}" + (" (or NaN/inf)" if nonfinite else "")

    def check(self, value, where, depth):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(where, self.what, value)
        try:
            number = float(value)
        except OverflowError:
            raise _fail(where, self.what, value) from None
        if not math.isfinite(number):
            if self.nonfinite:
                return number
            raise _fail(where, self.what, value)
        if not self.lo <= number <= self.hi:
            raise _fail(where, self.what, value)
        return number


class Bool(_Schema):
    what = "true or false"

    def check(self, value, where, depth):
        if not isinstance(value, bool):
            raise _fail(where, self.what, value)
        return value


class Opt(_Schema):
    """The schema's value or null."""

    def __init__(self, inner: _Schema) -> None:
        self.inner = inner
        self.what = f"{inner.what} or null"

    def check(self, value, where, depth):
        return None if value is None else self.inner.check(value, where, depth)


class List(_Schema):
    def __init__(self, item: _Schema, max_items: int = MAX_ITEMS, min_items: int = 0) -> None:
        self.item, self.max_items, self.min_items = item, max_items, min_items
        self.what = f"a list of {min_items}..{max_items} items"

    def check(self, value, where, depth):
        if not isinstance(value, list) or not self.min_items <= len(value) <= self.max_items:
            raise _fail(where, self.what, value)
        _deep(where, depth)
        return [self.item.check(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]


class Obj(_Schema):
    """A JSON object with known keys: `required` must be there, `optional` may be; no others."""

    def __init__(self, required: dict[str, _Schema] | None = None, optional: dict[str, _Schema] | None = None) -> None:
        self.required, self.optional = required or {}, optional or {}
        self.what = "an object with " + (f"keys {', '.join(self.required)}" if self.required else "known keys")

    def check(self, value, where, depth):
        if not isinstance(value, dict):
            raise _fail(where, self.what, value)
        _deep(where, depth)
        missing = [k for k in self.required if k not in value]
        if missing:
            raise ProtocolError(f"{where or 'the message'}: missing key {', '.join(map(repr, missing))}")
        unknown = [k for k in value if k not in self.required and k not in self.optional]
        if unknown:
            shown = ", ".join(repr(k[:40]) for k in unknown[:3])
            raise ProtocolError(f"{where or 'the message'}: unknown key {shown}")
        schemas = self.required | self.optional
        return {k: schemas[k].check(v, _at(where, k), depth + 1) for k, v in value.items()}


class Map(_Schema):
    """An object with free keys (names) and one value schema."""

    def __init__(self, value: _Schema, max_items: int = 64) -> None:
        self.value, self.max_items = value, max_items
        self.what = f"an object of at most {max_items} entries"

    def check(self, value, where, depth):
        if not isinstance(value, dict) or len(value) > self.max_items \
                or any(len(k) > MAX_NAME for k in value):
            raise _fail(where, self.what, value)
        _deep(where, depth)
        return {k: self.value.check(v, _at(where, k[:40]), depth + 1) for k, v in value.items()}


class AnyOf(_Schema):
    """The first schema that accepts the value (objects: told apart by their keys)."""

    def __init__(self, *options: _Schema) -> None:
        self.options = options
        self.what = " or ".join(o.what for o in options)

    def check(self, value, where, depth):
        errors = []
        for option in self.options:
            try:
                return option.check(value, where, depth)
            except ProtocolError as exc:
                errors.append(str(exc))
        raise ProtocolError(min(errors, key=len) if errors else f"{where}: no schema")


class Measured(_Schema):
    """A measurement: its normal form, or RAISED when it raised (an object with `error`)."""

    def __init__(self, normal: _Schema, raised: _Schema | None = None) -> None:
        self.normal, self.raised = normal, raised or RAISED
        self.what = f"{normal.what} or {self.raised.what}"

    def check(self, value, where, depth):
        schema = self.raised if isinstance(value, dict) and "error" in value else self.normal
        return schema.check(value, where, depth)


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _deep(where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ProtocolError(f"{where}: nested deeper than {MAX_DEPTH} levels")


# --------------------------------------------------------------------------- records

def _field(schema: _Schema, default: Any = MISSING, *, key: str | None = None,
           load: Callable[[Any], Any] | None = None) -> Any:
    """A record field and its JSON form in one declaration: `schema` checks it, `key` names it
    in JSON where the name differs, `load` turns the checked JSON into the field's value (a
    list becomes a tuple without it). A field with a default is an optional key."""
    metadata = {"schema": schema, "key": key or None, "load": load}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def _plain(value: Any) -> Any:
    """A field's value as JSON: records as objects, tuples as lists."""
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _records(cls: type[Record]) -> Callable[[Any], Any]:
    """`load` for a list of records: a tuple of them."""
    return lambda items: tuple(cls.from_checked(item) for item in items)


def _record_map(cls: type[Record]) -> Callable[[Any], Any]:
    """`load` for an object of records under free keys."""
    return lambda items: {key: cls.from_checked(item) for key, item in items.items()}


class Record:
    """A frozen dataclass whose fields declare their JSON form (`_field`): its schema, its
    reader `from_json` (checked against that schema: never raw data) and `to_json` all come
    from that one declaration."""

    @classmethod
    def _json_fields(cls) -> list[Field]:
        return [f for f in fields(cls) if "schema" in f.metadata]

    @classmethod
    def schema(cls) -> Obj:
        if "_schema" not in cls.__dict__:
            required: dict[str, _Schema] = {}
            optional: dict[str, _Schema] = {}
            for f in cls._json_fields():
                given = f.default is not MISSING or f.default_factory is not MISSING
                (optional if given else required)[f.metadata["key"] or f.name] = f.metadata["schema"]
            cls._schema = Obj(required, optional)
        return cls._schema

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> Any:
        return cls.from_checked(cls.schema().check(data, where, 0))

    @classmethod
    def from_checked(cls, data: dict[str, Any]) -> Any:
        """From JSON already checked against `schema()` (a part of a larger checked record)."""
        return cls(**cls._values(data))

    @classmethod
    def _values(cls, data: dict[str, Any]) -> dict[str, Any]:
        values = {}
        for f in cls._json_fields():
            key = f.metadata["key"] or f.name
            if key in data:
                value, load = data[key], f.metadata["load"]
                if value is not None:
                    value = load(value) if load else tuple(value) if isinstance(value, list) else value
                values[f.name] = value
        return values

    def to_json(self) -> dict[str, Any]:
        return {f.metadata["key"] or f.name: _plain(getattr(self, f.name)) for f in self._json_fields()}


# --------------------------------------------------------------------------- observation schemas

TEXT, NAME, SECONDS = Str(MAX_TEXT), Str(MAX_NAME), Num(0.0, MAX_SECONDS)
NAMES = List(NAME)
SHAPE = List(Int(0, 2**40), max_items=16)
SCALE = Num(1e-12, 1e12)  # powers of two; never 0 (the checks take logarithms)
# The architecture fingerprint of one forward pass (grader.measure.graph measures it,
# grader.grading.architecture judges it).
@dataclass(frozen=True)
class Fingerprint(Record):
    method: str = _field(Str(choices=("export", "dispatch")))   # how the graph was built
    bypass_scale: float = _field(SCALE)
    downsampling_levels: int = _field(Int(0, 64))
    long_skips: tuple[float, ...] = _field(List(SCALE, 1024))         # sorted descending
    residual_adds: int = _field(Int(0, 10**6))
    gated_multiplies: tuple[float, ...] = _field(List(SCALE, 10**5))  # sorted descending, one per gated multiply
    ungated_attention: int = _field(Int(0, 10**6))
    # Extra (not in the original sketch): long-skip scales whose encoder operand is gated.
    gated_long_skips: tuple[float, ...] = _field(List(SCALE, 1024), ())
    # How each long-skip join happens: "cat" or "add", aligned with long_skips.
    long_skip_ops: tuple[str, ...] = _field(List(Str(16), 1024), ())
    # Where each long-skip join happens in the recording: (scale, op index, argument positions
    # of the encoder operand), for skip ablation. Not part of the JSON.
    skip_joins: tuple[tuple[float, int, tuple[int, ...]], ...] = ()
    # Why torch.export was not used ("" when method == "export").
    export_error: str = _field(TEXT, "")

    def same_architecture(self, other: Fingerprint) -> bool:
        """Equal in everything measured, whichever way each graph was built (skip_joins are
        op indices of one recording)."""
        how = dict(method="", skip_joins=(), export_error="")
        return replace(self, **how) == replace(other, **how)

    @classmethod
    def from_json(cls, data: Any, where: str = "architecture") -> Fingerprint:
        """From a fingerprint as sent (checked against its schema first: never raw data)."""
        return super().from_json(data, where)


FINGERPRINT = Fingerprint.schema()

# --------------------------------------------------------------------------- the observation, typed

def _required(f: Field) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def _default(f: Field) -> Any:
    return f.default if f.default is not MISSING else f.default_factory()


@dataclass(frozen=True)
class _Observed(Record):
    """A part of an observation, as it was sent. An optional key may be absent (its field then
    holds the default) or, where the schema allows it, null; `given` remembers which keys came,
    so `to_json` writes back the object that was read (check details keep parts as sent)."""
    given: frozenset[str] = field(default=frozenset(), compare=False, repr=False, kw_only=True)

    @classmethod
    def from_checked(cls, data: dict[str, Any]) -> Any:
        return cls(**cls._values(data), given=frozenset(data))

    def to_json(self) -> dict[str, Any]:
        out = {}
        for f in self._json_fields():
            key, value = f.metadata["key"] or f.name, getattr(self, f.name)
            if key in self.given or _required(f) or value != _default(f):   # else: not sent
                out[key] = _plain(value)
        return out

    def taking(self, other: _Observed, names: Iterable[str]) -> Any:
        """This part with the fields `names` as `other` has them (sent or not there alike)."""
        names = tuple(names)
        return replace(self, **{n: getattr(other, n) for n in names},
                       given=(self.given - set(names)) | (other.given & set(names)))


@dataclass(frozen=True, kw_only=True)
class Raised(_Observed):
    """A measurement that raised: what the worker saw of the exception (the other form of a
    `Measured` field: readers ask isinstance(part, Raised))."""
    error: str = _field(TEXT)
    traceback: str | None = _field(Opt(TEXT), None)
    oom: bool = _field(Bool(), False)


RAISED = Raised.schema()


def _measured(load: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`load` for a Measured field: a Raised where it raised (Measured.check's rule), else `load`'s."""
    return lambda value: Raised.from_checked(value) if isinstance(value, dict) and "error" in value else load(value)


@dataclass(frozen=True, kw_only=True)
class BuildStep(_Observed):
    """Building the model (the worker), or loading its captured program (the verifier)."""
    ok: bool = _field(Bool())
    seconds: float | None = _field(SECONDS, None)
    error: str | None = _field(TEXT, None)
    traceback: str | None = _field(Opt(TEXT), None)
    oom: bool = _field(Bool(), False)
    downloads: tuple[str, ...] = _field(List(Str(2000), 64), ())       # weights URLs a failed build fetched
    random_init_for: tuple[str, ...] = _field(List(NAME, 64), ())      # pretrained weights asked for, not given


@dataclass(frozen=True, kw_only=True)
class ForwardStep(_Observed):
    """The checks' forward pass (every key optional: what got that far)."""
    input_shape: tuple[int, ...] | None = _field(SHAPE, None)
    ok: bool = _field(Bool(), False)
    seconds: float | None = _field(SECONDS, None)
    output_type: str | None = _field(NAME, None)
    output_error: str | None = _field(TEXT, None)        # the output is no tensor of logits: why
    output_shape: tuple[int, ...] | None = _field(SHAPE, None)
    dtype: str | None = _field(Str(40), None)
    finite: bool | None = _field(Opt(Bool()), None)      # null: not floating point
    error: str | None = _field(TEXT, None)
    traceback: str | None = _field(Opt(TEXT), None)
    oom: bool = _field(Bool(), False)


@dataclass(frozen=True, kw_only=True)
class Parameters(_Observed):
    total: int = _field(Int())
    trainable: int = _field(Int())


@dataclass(frozen=True, kw_only=True)
class OutputStatistics(_Observed):
    """Enough to tell logits from probabilities (grader.measure.probes.output_statistics)."""
    min: float = _field(Num(nonfinite=True))
    max: float = _field(Num(nonfinite=True))
    sum_to_one: float = _field(Num(nonfinite=True))
    eval_change: float | None = _field(Num(), None)   # between two eval-mode calls on one input (probes.eval_change)
    # The sigmoid or softmax the output comes from ("" none; None not measured: probes.output_normaliser)
    normaliser: str | None = _field(Opt(Str(choices=("", "sigmoid", "softmax"))), None)


@dataclass(frozen=True, kw_only=True)
class SizeProbe(_Observed):
    """A forward pass at another input size: its output's shape, or the error it raised."""
    input_shape: tuple[int, int, int, int] = _field(List(Int(0, 2**40), 4, 4))
    output_shape: tuple[int, ...] | None = _field(SHAPE, None)
    finite: bool | None = _field(Bool(), None)
    error: str | None = _field(TEXT, None)


@dataclass(frozen=True, kw_only=True)
class Figures(_Observed):
    flops: int = _field(Int())
    latency_ms: float = _field(Num(0.0, MAX_SECONDS * 1000))


@dataclass(frozen=True, kw_only=True)
class Gradients(_Observed):
    """One cross-entropy backward: the trainable parameters that got no, a zero or a non-finite
    gradient, and the head (the last parameterised layer to run) with its parameters."""
    none: tuple[str, ...] = _field(NAMES)
    zero: tuple[str, ...] = _field(NAMES)
    nonfinite: tuple[str, ...] = _field(NAMES)
    head: str | None = _field(Opt(NAME))
    head_params: tuple[str, ...] = _field(NAMES)


@dataclass(frozen=True, kw_only=True)
class BackboneFound(_Observed):
    """Which backbone a model really uses, identified by provenance
    (grader.measure.probes.identify_backbone, grader.verifier.provenance.identify)."""
    kind: str | None = _field(Opt(NAME), None)
    how: str | None = _field(Opt(NAME), None)
    built: tuple[str, ...] = _field(List(NAME, 64), ())     # VGGs the constructor built
    fc_from_vgg: bool = _field(Bool(), False)


BACKBONE = BackboneFound.schema()


@dataclass(frozen=True, kw_only=True)
class BackboneSteps(_Observed):
    """A few real training steps (grader.measure.probes.backbone_training): which of the
    backbone's tensors and which others changed."""
    backbone_tensors: int = _field(Int())
    steps: int = _field(Int(0, 10**6))
    backbone: BackboneFound | None = _field(Opt(BACKBONE), None, load=BackboneFound.from_checked)
    vgg_shaped: int | None = _field(Int(), None)     # VGG16-shaped tensors where no backbone was found
    changed_parts: dict[str, str] | None = _field(Map(NAME, MAX_ITEMS), None)   # tensor -> its VGG layer
    backbone_changed: tuple[str, ...] = _field(NAMES)
    head_changed: tuple[str, ...] = _field(NAMES)
    seconds: float | None = _field(SECONDS, None)
    backbone_names: tuple[str, ...] = _field(NAMES, ())   # every backbone tensor (older records: none)


@dataclass(frozen=True, kw_only=True)
class Structure(_Observed):
    layers: tuple[str, ...] = _field(List(Str(400), 2000))   # grader.shared.structure.layers


@dataclass(frozen=True, kw_only=True)
class FixedValues(_Observed):
    """The values a captured program computes with that the standardised training cannot
    change, outside its backbone and BatchNorm statistics (grader.verifier.fixed)."""
    values: int = _field(Int(0, 2**50))
    largest: tuple[str, ...] = _field(List(TEXT, 8), ())


@dataclass(frozen=True, kw_only=True)
class VerifierAccount(_Observed):
    """The verifier's account of the captured program it measured (grader.verifier)."""
    refused: str | None = _field(Str(choices=("oversize", "hash", "corrupt", "payload", "op", "unloadable",
                                              "mismatch")), None)
    message: str | None = _field(TEXT, None)
    ops: tuple[str, ...] = _field(List(Str(120), 5000), ())
    load_seconds: float | None = _field(SECONDS, None)
    backbone_how: str | None = _field(Opt(NAME), None)
    fixed: FixedValues | None = _field(FixedValues.schema(), None, load=FixedValues.from_checked)


def _part(cls: type[Record]) -> Any:
    """An optional part that is one record."""
    return _field(cls.schema(), None, load=cls.from_checked)


def _measured_part(cls: type[Record]) -> Any:
    """An optional part that is one record, or a Raised where its measurement raised."""
    return _field(Measured(cls.schema()), None, load=_measured(cls.from_checked))


@dataclass(frozen=True, kw_only=True)
class Observation(_Observed):
    """What the worker (or the verifier, on the captured program) observed of one variant: how
    it was found and built, then each measurement (grader.measure.observe), a part each. Sent as
    the `result` message, checked against this schema on arrival, then read through these fields
    only (grader.grading.checks judges it). Absent parts are None; a measurement that raised is
    a Raised. A variant the worker could not find has `unresolved` and `message`, nothing else."""
    id: str = _field(NAME)
    unresolved: str | None = _field(Str(choices=("missing", "ambiguous")), None)
    message: str | None = _field(TEXT, None)
    looked_for: tuple[str, ...] = _field(List(TEXT, 1000), ())
    candidates: tuple[str, ...] = _field(List(TEXT, 1000), ())
    mapping: str | None = _field(Opt(TEXT), None)          # how it was built, in words
    adapter: str | None = _field(Opt(NAME), None)
    notes: tuple[str, ...] = _field(List(TEXT, 100), ())
    classes: tuple[str, ...] | None = _field(List(NAME, 2000), None)   # what the model is made of
    build: BuildStep | None = _part(BuildStep)
    backbone_found: BackboneFound | Raised | None = _measured_part(BackboneFound)
    parameters: Parameters | None = _part(Parameters)
    forward: ForwardStep | None = _part(ForwardStep)
    output_statistics: OutputStatistics | None = _part(OutputStatistics)
    sizes: tuple[SizeProbe, ...] | Raised | None = _field(Measured(List(SizeProbe.schema(), 16)), None,
                                                          load=_measured(_records(SizeProbe)))
    figures: Figures | Raised | None = _measured_part(Figures)
    gradients: Gradients | Raised | None = _measured_part(Gradients)
    backbone: BackboneSteps | Raised | None = _measured_part(BackboneSteps)
    architecture: Fingerprint | Raised | None = _measured_part(Fingerprint)
    structure: Structure | Raised | None = _measured_part(Structure)
    check_seconds: dict[str, float] | None = _field(Map(SECONDS), None)
    verifier: VerifierAccount | None = _part(VerifierAccount)
    # Set by the grading process, never sent: not in the schema, so a worker cannot claim them.
    worker_status: str | None = None        # why the worker (or verifier) did not finish it (grader.grading.sandbox)
    phase: str | None = None                # the phase it was in then
    training: TrainingOutcome | None = None  # its training report (with the mode asked for), or how it ended
    program: dict[str, Any] | None = None   # where it was measured (grader.grading.pipeline.verify)

    @classmethod
    def unfinished(cls, vid: str, status: str, message: str, phase: str | None = None) -> Observation:
        """A variant the worker (or the verifier) did not finish, as the grading process records it."""
        return cls(id=vid, message=message, worker_status=status, phase=phase)


OBSERVATION = Observation.schema()

@dataclass(frozen=True, kw_only=True)
class SkipProbe(_Observed):
    """One long skip of the trained model with its encoder operand zeroed
    (grader.measure.graph.skip_ablation): how much the output changed."""
    scale: float = _field(SCALE)
    op: str = _field(NAME)
    relative_change: float = _field(Num(nonfinite=True))


@dataclass(frozen=True, kw_only=True)
class TrainingOutcome(_Observed):
    """The standardised training of one variant as reported (the `training` message), or how it
    ended: `ok`, else the `stage` that failed and why. The grading process sets `mode` to the
    one it asked for, and `worker_status` (never sent) when the worker or verifier died in it."""
    ok: bool = _field(Bool())
    stage: str | None = _field(Str(choices=("setup", "train")), None)
    error: str | None = _field(TEXT, None)
    traceback: str | None = _field(Opt(TEXT), None)
    oom: bool = _field(Bool(), False)
    mode: str | None = _field(Str(choices=MODES), None)
    weights: str | None = _field(Opt(NAME), None)      # checkpoint mode: the file the weights came from
    seconds: float | None = _field(SECONDS, None)
    steps: int | None = _field(Int(0, 10**9), None)
    train_seconds: float | None = _field(SECONDS, None)
    peak_gpu_memory_mb: float | None = _field(Opt(Num(0.0, 1e9)), None)
    skip_ablation: tuple[SkipProbe, ...] | Raised | None = _field(
        Measured(List(SkipProbe.schema(), 1024), Obj({"error": TEXT})), None, load=_measured(_records(SkipProbe)))
    # The model's tensors whose values differ between the start of the training and the end of
    # its test predictions (grader.measure.observe): a frozen backbone must be among none of them.
    changed: tuple[str, ...] | None = _field(Opt(NAMES), None)
    worker_status: str | None = None   # set by the grading process (grader.grading.sandbox), never sent

    @classmethod
    def ended(cls, status: str, stage: str, error: str) -> TrainingOutcome:
        """A training the worker (or the verifier) did not finish, as the grading process records it."""
        return cls(ok=False, stage=stage, error=error, worker_status=status, given=frozenset({"ok", "stage", "error"}))

    def as_asked(self, mode: str | None) -> TrainingOutcome:
        """With the mode the grading process asked for (the reader refused any other)."""
        return replace(self, mode=mode, given=self.given | {"mode"})

    def summary(self) -> dict[str, Any]:
        """What results.json keeps of it: all but the traceback, the ablation and the changed tensors
        (checks of their own)."""
        out = {k: v for k, v in self.to_json().items() if k not in ("traceback", "skip_ablation", "changed")}
        return out | ({"worker_status": self.worker_status} if self.worker_status else {})


TRAINING = TrainingOutcome.schema()

PACKAGE = Str(100, pattern=r"[A-Za-z_][A-Za-z0-9_]{0,99}")  # a top-level package name

# One captured program: a plain file name in the job's capture folder, its sha256, its size.
PROGRAM = Obj({"file": Str(200, pattern=r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,190}\.pt2"),
               "sha256": Str(64, pattern=r"[0-9a-f]{64}"), "bytes": Int(1, MAX_PROGRAM_BYTES)})
PROGRAMS = Obj({"train": PROGRAM, "eval": PROGRAM})   # a build's training-mode and eval-mode programs


class Plain(_Schema):
    """Any JSON value, kept as it is (keyword arguments of a spec or a manifest): sizes and
    nesting bounded like every other value."""

    what = "a JSON value"

    def check(self, value, where, depth):
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, str):
            return TEXT.check(value, where, depth)
        if isinstance(value, list):
            return List(self).check(value, where, depth)
        if isinstance(value, dict):
            return Map(self, MAX_ITEMS).check(value, where, depth)
        raise _fail(where, self.what, value)


PLAIN = Plain()
PATH = Str(4096)                  # a file or folder of the grading machine
SEED = Int(-2**63, 2**64 - 1)

# The manifest as grader.shared.manifest.parse_manifest gives it: variant id -> how to build it.
MANIFEST = Map(Obj({"factory": NAME, "kwargs": Map(PLAIN, 256),
                    "after": List(Obj({"method": NAME, "kwargs": Map(PLAIN, 256)}), 256), "origin": PATH},
                   {"weights": Opt(NAME), "freeze": List(NAME, 256)}), 1000)


# --------------------------------------------------------------------------- the request (grading process -> worker)

@dataclass(frozen=True)
class ModuleRequest(Record):
    """One submission file for the worker to import: its path, its dotted name (empty:
    imported by path under a private name), the subproject root it belongs to."""
    path: str = _field(NAME)
    name: str = _field(NAME, "")
    root: str = _field(NAME, ".")


@dataclass(frozen=True)
class TopLevelFreeze(Record):
    """A statement of the submission's top-level code (a notebook cell, a script's main) that
    sets `requires_grad` on part of a model it built (grader.submission.freezing finds them, the
    worker's adapters apply them to a class with no freeze option of its own). The parameters of
    `instance` (a `class_name` object) it selects get `requires_grad`: "module", the submodule or
    parameter at `path` ("" the whole model); "prefix", names starting with `path`; "contains",
    names containing it."""
    class_name: str = _field(NAME)
    instance: str = _field(NAME)                            # the variable: "fcn32", "model (assignment 2)"
    select: str = _field(Str(choices=("module", "prefix", "contains")))
    path: str = _field(NAME)
    requires_grad: bool = _field(Bool())
    where: str = _field(NAME)                               # "train.ipynb line 40 (cell 7)"
    code: str = _field(Str(200))                            # the statement's first line


@dataclass(frozen=True)
class VariantRequest(Record):
    """One variant to build (grader.grading.pipeline.variant_request makes it from the spec): what
    the adapters match against student code (grader.worker.adapters) and what the
    measurements need (its input and probe sizes)."""
    id: str = _field(NAME)                                  # "unet_noskip"
    family: str = _field(NAME)                              # "fcn" | "unet"
    class_name: str = _field(NAME)                          # contract name, "UNetNoSkip"
    aliases: tuple[str, ...] = _field(List(NAME, 256))
    traits: dict[str, Any] = _field(Map(PLAIN, 256))        # fcn: {"stride": 8, "frozen": True}; unet: {"skip": False}
    num_classes: int = _field(Int(1, 10**6))
    pretrained: bool | None = _field(Opt(Bool()))           # None for families without a pretrained switch (unet)
    input_size: int = _field(Int(1, 2**16))                 # the family's input size (the checks' forward pass)
    # The spec's contract kwargs (e.g. {"freeze_backbone": True}); when empty they are
    # derived from the traits. Passed as they are to contract classes that take **kwargs.
    kwargs: dict[str, Any] = _field(Map(PLAIN, 256), {})
    pretrained_kwarg: str = _field(NAME, "pretrained")
    num_classes_kwarg: str = _field(NAME, "num_classes")
    probe_size: int | None = _field(Opt(Int(1, 2**16)), None)   # of the training probes; None: the measure's default
    in_channels: int = _field(Int(1, 3), 3)                # the images' channels ([dataset] channels): 3 RGB, 1 grayscale

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


@dataclass(frozen=True)
class FamilyTraining(Record):
    """The training profile's settings for one family (grader.measure.train.TrainConfig)."""
    steps: int = _field(Int(0, 10**9))
    batch_size: int = _field(Int(1, 10**6))
    lr: float = _field(Num())
    weight_decay: float = _field(Num())
    optimizer: str = _field(Str(40))
    eval_every: int = _field(Int(0, 10**9))
    seed: int = _field(SEED)


@dataclass(frozen=True)
class TrainingRequest(Record):
    """The standardised training: how (`mode`: train, or evaluate the submission's weights),
    each family's settings and prepared data (train images and labels; val and test images only)."""
    mode: str = _field(Str(choices=MODES))
    profile: str = _field(NAME)
    config: dict[str, FamilyTraining] = _field(Map(FamilyTraining.schema(), 1000), load=_record_map(FamilyTraining))
    data: dict[str, str] = _field(Map(PATH, 1000))          # family -> folder of its prepared splits
    pretrained: bool = _field(Bool())                       # FCN backbones start from ImageNet weights
    weights: dict[str, str] = _field(Map(NAME, 1000), {})   # variant id -> its checkpoint (checkpoint mode)
    predict_batch: int = _field(Int(1, 10**6), 16)
    test_is_val: bool = _field(Bool(), False)               # a self-check: the final score is on the val images


@dataclass(frozen=True, kw_only=True)
class RunRequest(Record):
    """What the worker and the verifier are both told: how to run, and the training (None:
    checks only). `drop_to` is set by the sandbox (the uid to become when started as root)."""
    batch_size: int = _field(Int(1, 4096), 2)               # of the checks' forward pass
    seed: int = _field(SEED, 0)
    device: str = _field(Str(100), "auto")
    threads: int | None = _field(Opt(Int(0, 4096)), None)  # CPU threads; None: torch's default
    cuda_memory_fraction: float | None = _field(Opt(Num(0.0, 1.0)), None)
    training: TrainingRequest | None = _field(Opt(TrainingRequest.schema()), None, load=TrainingRequest.from_checked)
    drop_to: int | None = _field(Opt(Int(0, 2**32)), None)


@dataclass(frozen=True, kw_only=True)
class WorkerRequest(RunRequest):
    """What the grading process asks of the worker (built by grader.grading.pipeline.probe_request):
    import these files, build and probe these variants, and train them when `training` says so.
    `capture_folder` (set by the sandbox): where captured programs go; none: measured here."""
    modules: tuple[ModuleRequest, ...] = _field(List(ModuleRequest.schema(), 10_000), load=_records(ModuleRequest))
    sys_path: tuple[str, ...] = _field(List(PATH, 1000), (".",))
    manifest: dict[str, dict[str, Any]] | None = _field(Opt(MANIFEST), None)
    freezes: tuple[TopLevelFreeze, ...] = _field(List(TopLevelFreeze.schema(), 1000), (),
                                                 load=_records(TopLevelFreeze))
    variants: tuple[VariantRequest, ...] = _field(List(VariantRequest.schema(), 1000), load=_records(VariantRequest))
    # Backbones start from random init in this run: a constructor's own request for pretrained
    # weights gets random-init ones instead of a download (grader.worker.downloads).
    random_init_weights: bool = _field(Bool(), False)
    plan_only: bool = _field(Bool(), False)                 # how each variant would be built, nothing built
    capture_folder: str | None = _field(Opt(PATH), None)

    def for_verifier(self, variants: tuple[VerifierVariant, ...], vgg16_weights: str | None) -> VerifierRequest:
        """The verifier's request: this run's settings, the captured variants."""
        shared = {f.name: getattr(self, f.name) for f in fields(RunRequest)}
        return VerifierRequest(**shared, variants=variants, vgg16_weights=vgg16_weights)


@dataclass(frozen=True)
class VerifierVariant(Record):
    """One variant for the verifier: its request, the programs the worker captured of the
    checks' build and (where it differs) of the training build, the weights that build
    loaded, and whether the verifier trains it (grader.grading.pipeline.verifier_trains)."""
    variant: VariantRequest = _field(VariantRequest.schema(), load=VariantRequest.from_checked)
    programs: dict[str, dict[str, Any]] = _field(PROGRAMS)   # file names relative to the verifier's job folder
    train_programs: dict[str, dict[str, Any]] | None = _field(Opt(PROGRAMS), None)
    weights: str | None = _field(Opt(NAME), None)
    train: bool = _field(Bool(), True)

    @property
    def id(self) -> str:
        return self.variant.id


@dataclass(frozen=True, kw_only=True)
class VerifierRequest(RunRequest):
    """What the grading process asks of the verifier (WorkerRequest.for_verifier)."""
    variants: tuple[VerifierVariant, ...] = _field(List(VerifierVariant.schema(), 1000), load=_records(VerifierVariant))
    vgg16_weights: str | None = _field(Opt(PATH), None)     # ImageNet's VGG16, to identify copied backbones


# --------------------------------------------------------------------------- typed messages

class _Message(Record):
    """A message, declared once: its fields with their schemas (a field's `key` is its name in
    the message where the two differ); `EVENT` names it; `WRAP`: the key its fields sit under
    ({"event": "environment", "environment": {...}}), else they sit beside "event"."""

    EVENT: ClassVar[str] = ""
    WRAP: ClassVar[str] = ""

    @classmethod
    def message_schema(cls) -> Obj:
        schema = cls.schema()
        if cls.WRAP:
            return Obj({"event": Str(), cls.WRAP: schema})
        return Obj({"event": Str(), **schema.required}, schema.optional)

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> Message:
        """From a message checked against `message_schema()`."""
        return cls.from_checked(data[cls.WRAP] if cls.WRAP else data)


@dataclass(frozen=True)
class Environment(_Message):
    """The only environment keys a worker may report, each a short line of a known form.
    (No markup characters: the device line is printed on the terminal and in reports.)"""
    EVENT = WRAP = "environment"
    device: str = _field(Str(200, pattern=r"(cpu \(\d{1,5} threads\)|cuda \([\w .+/-]{1,150}\)|[a-z]{2,10})"))
    torch: str = _field(Str(64, pattern=r"[0-9A-Za-z.+_-]{1,64}"))
    python: str = _field(Str(32, pattern=r"[0-9A-Za-z.+_-]{1,32}"))


@dataclass(frozen=True)
class ModuleReport(_Message):
    EVENT = "module"
    path: str = _field(NAME)
    ok: bool = _field(Bool())
    error: str | None = _field(Opt(TEXT), None)
    traceback: str | None = _field(Opt(TEXT), None)
    seconds: float | None = _field(Opt(SECONDS), None)


@dataclass(frozen=True)
class PhaseStarted(_Message):
    EVENT = "phase"
    phase: str = _field(Str(choices=PHASES))
    variant: str | None = _field(Opt(NAME), None, key="id")


@dataclass(frozen=True)
class VariantReport(_Message):
    """What the worker observed building and probing one variant (validated, then typed)."""
    EVENT = "result"
    variant: str                                           # the observation's id
    observation: Observation = _field(OBSERVATION, key="result", load=Observation.from_checked)

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> VariantReport:
        return cls(data["result"]["id"], Observation.from_checked(data["result"]))


@dataclass(frozen=True)
class TrainingReport(_Message):
    EVENT = "training"
    variant: str = _field(NAME, key="id")
    training: TrainingOutcome = _field(TRAINING, load=TrainingOutcome.from_checked)


def _finite_or_none(losses: list[float]) -> tuple[float | None, ...]:
    return tuple(x if x is not None and math.isfinite(x) else None for x in losses)


@dataclass(frozen=True)
class Predictions(_Message):
    EVENT = "predictions"
    variant: str = _field(NAME, key="id")
    split: str = _field(Str(choices=SPLITS))
    shape: tuple[int, int, int] = _field(List(Int(1, 10**6), 3, 3))
    data: str = _field(Str(MAX_PREDICTION_BYTES))
    step: int | None = _field(Int(0, 10**9), None)
    seconds: float | None = _field(SECONDS, None)
    # training losses since the previous message; None: not finite
    losses: tuple[float | None, ...] = _field(List(Opt(Num(nonfinite=True)), 10**6), (), load=_finite_or_none)
    train_seconds: float | None = _field(SECONDS, None)


@dataclass(frozen=True)
class Step(_Message):
    """Training reached `step` of `steps` (for the progress display; changes no figure)."""
    EVENT = "step"
    variant: str = _field(NAME, key="id")
    step: int = _field(Int(0, 10**9))
    steps: int = _field(Int(1, 10**9))


@dataclass(frozen=True)
class Done(_Message):
    EVENT = "done"


@dataclass(frozen=True)
class Capture(_Message):
    """A variant's build captured as programs (grader.worker.capture): for `purpose` "check"
    the checks' build, "train" the training build where it differs (another pretrained
    switch, the submission's weights). `programs` maps "train"/"eval" to {"file", "sha256",
    "bytes"}; `ok` False with `error`: the model could not be captured, it is measured in the
    worker. A claim: the grading side hashes the files itself and the verifier checks them."""
    EVENT = "capture"
    variant: str = _field(NAME, key="id")
    purpose: str = _field(Str(choices=CAPTURE_PURPOSES))
    ok: bool = _field(Bool())
    programs: dict[str, dict[str, Any]] = _field(PROGRAMS, {})
    seconds: float | None = _field(SECONDS, None)
    error: str | None = _field(TEXT, None)
    weights: str | None = _field(Opt(NAME), None)

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> Capture:
        if data["ok"] != ("programs" in data) or (not data["ok"] and "error" not in data):
            raise ProtocolError("capture message: programs when ok, an error when not")
        return super().from_message(data)


@dataclass(frozen=True)
class Packages(_Message):
    """Missing third-party packages the worker replaced while importing: `stubbed` (logging,
    no-ops) and `stood_in` (package -> the submission's files that import it; they fail where
    used). Informational: what the student's code needed that segrade does not offer."""
    EVENT = "packages"
    stubbed: tuple[str, ...] = _field(List(PACKAGE, 256))
    stood_in: dict[str, tuple[str, ...]] = _field(Map(List(NAME, 256), 256),
                                                  load=lambda d: {k: tuple(v) for k, v in d.items()})

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> Packages:
        for name in data["stood_in"]:
            PACKAGE.check(name, "packages.stood_in", 1)
        return super().from_message(data)


Message = Union[Environment, ModuleReport, PhaseStarted, VariantReport, TrainingReport, Predictions, Step, Packages,
                Capture, Done]
_MESSAGES: dict[str, type[_Message]] = {m.EVENT: m for m in (Environment, ModuleReport, PhaseStarted, VariantReport,
                                                             TrainingReport, Predictions, Step, Packages, Capture,
                                                             Done)}
_SCHEMAS: dict[str, Obj] = {event: m.message_schema() for event, m in _MESSAGES.items()}


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        raise ProtocolError("an object repeats a key")
    return data


def parse(raw: bytes | str) -> Message:
    """One line -> one typed message, checked for form only (not for sequence)."""
    if isinstance(raw, bytes):
        if len(raw) > MAX_LINE_BYTES:
            raise ProtocolError(f"a line of {len(raw)} bytes (limit {MAX_LINE_BYTES})")
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("a line that is not UTF-8 text") from None
    if not raw.strip():
        raise ProtocolError("an empty line")
    try:
        data = json.loads(raw, object_pairs_hook=_reject_duplicates)
    except ProtocolError:
        raise
    except (ValueError, RecursionError) as exc:
        text = raw.strip()
        raise ProtocolError(f"not JSON ({type(exc).__name__}: {str(exc)[:80]}): {text[:60]!r}"
                            + ("..." if len(text) > 60 else "")) from None
    if not isinstance(data, dict):
        raise ProtocolError(f"a JSON {type(data).__name__}, not an object")
    kind = data.get("event")
    if not isinstance(kind, str) or kind not in _MESSAGES:
        raise ProtocolError(f"unknown event {str(kind)[:40]!r}" if kind is not None else "no 'event' key")
    try:
        data = _SCHEMAS[kind].check(data, "", 0)
    except ProtocolError as exc:
        raise ProtocolError(f"{kind} message: {exc}") from None
    return _MESSAGES[kind].from_message(data)


# --------------------------------------------------------------------------- the grading side

@dataclass
class _VariantState:
    phase: str = "build"
    reported: bool = False
    trained: bool = False
    splits: list[str] = field(default_factory=list)
    step: int = 0
    captured: set[str] = field(default_factory=set)   # capture purposes reported since the last build


class Reader:
    """Reads one worker process's messages in order and rejects the impossible ones.

    `variants`: the ids this worker was asked for; `modules`: the files it was asked to
    import; `mode`: the training asked for ("train", "weights", or None: checks only);
    `expected`: environment values the grading process knows itself (torch, python, and the
    device type it asked for), which the worker's report must agree with."""

    def __init__(self, variants: Iterable[str], modules: Iterable[str], mode: str | None,
                 expected: dict[str, str] | None = None) -> None:
        if mode not in (None, *MODES):
            raise ValueError(f"mode must be one of {MODES} or None")
        self.variants = {v: _VariantState() for v in variants}
        self.modules = set(modules)
        self.mode = mode
        self.expected = expected or {}
        self.phase = "start"
        self.current: str | None = None   # the variant in progress, as far as valid messages say
        self.imported: set[str] = set()
        self.packages = False
        self.done = False

    @property
    def in_progress(self) -> str | None:
        """The variant the worker is working on (building, probing, training), if any."""
        if self.current is None:
            return None
        state = self.variants[self.current]
        if not state.reported or (state.phase in (*TRAINING_PHASES, "capture") and not state.trained):
            return self.current
        return None

    def read(self, raw: bytes | str) -> Message:
        if self.done:
            raise ProtocolError("a message after 'done'")
        message = parse(raw)
        self._accept(message)
        return message

    # -- the sequence rules

    def _variant(self, vid: str | None, what: str) -> _VariantState:
        if vid is None or vid not in self.variants:
            raise ProtocolError(f"{what} for variant {str(vid)[:40]!r}, which was not asked for")
        return self.variants[vid]

    def _accept(self, m: Message) -> None:
        if isinstance(m, Environment):
            if self.phase != "start":
                raise ProtocolError("an environment message after the worker had started")
            for key in ("torch", "python"):
                if key in self.expected and getattr(m, key) != self.expected[key]:
                    raise ProtocolError(f"environment.{key}: {getattr(m, key)!r} is not the grading process's "
                                        f"{self.expected[key]!r} (the worker runs the same interpreter)")
            device_type = self.expected.get("device_type")
            if device_type and m.device.split(" ")[0].split(":")[0] != device_type:
                raise ProtocolError(f"environment.device: {m.device!r} is not the {device_type} device asked for")
            self.phase = "environment"
        elif isinstance(m, PhaseStarted):
            self._phase(m)
        elif isinstance(m, ModuleReport):
            if self.phase != "import":
                raise ProtocolError(f"a module message outside the import phase (in {self.phase})")
            if m.path not in self.modules:
                raise ProtocolError(f"a module message for {m.path[:80]!r}, which was not asked for")
            if m.path in self.imported:
                raise ProtocolError(f"a second module message for {m.path[:80]!r}")
            self.imported.add(m.path)
        elif isinstance(m, VariantReport):
            state = self._variant(m.variant, "a result")
            if state.reported:
                raise ProtocolError(f"a second result for variant {m.variant!r}")
            if m.variant != self.current or state.phase not in VARIANT_PHASES:
                raise ProtocolError(f"a result for variant {m.variant!r}, which was not being built")
            state.reported = True
        elif isinstance(m, Predictions):
            self._predictions(m)
        elif isinstance(m, Step):
            state = self._variant(m.variant, "a training step")
            if m.variant != self.current or state.phase != "train" or state.trained:
                raise ProtocolError(f"a training step for variant {m.variant!r} outside its train phase")
            if m.step > m.steps or m.step < state.step:
                raise ProtocolError(f"training step {m.step} of {m.steps} for {m.variant!r} (after step {state.step})")
            state.step = m.step
        elif isinstance(m, TrainingReport):
            state = self._variant(m.variant, "a training report")
            if self.mode is None:
                raise ProtocolError("a training report although no training was asked for")
            if state.trained:
                raise ProtocolError(f"a second training report for variant {m.variant!r}")
            if not state.reported or m.variant != self.current:
                raise ProtocolError(f"a training report for variant {m.variant!r} before its result")
            if (m.training.mode or self.mode) != self.mode:
                raise ProtocolError(f"training.mode {m.training.mode!r}, but {self.mode!r} was asked for")
            state.trained = True
            self.current = None
        elif isinstance(m, Capture):
            state = self._variant(m.variant, "a capture")
            if m.variant != self.current or m.purpose in state.captured or state.trained:
                raise ProtocolError(f"a {m.purpose} capture for variant {m.variant!r} out of order or repeated")
            if m.purpose == "check" and (state.reported or state.phase not in VARIANT_PHASES):
                raise ProtocolError(f"a check capture for variant {m.variant!r} after its result")
            if m.purpose == "train" and (not state.reported or state.phase != "capture"):
                raise ProtocolError(f"a train capture for variant {m.variant!r} outside its capture phase")
            state.captured.add(m.purpose)
        elif isinstance(m, Packages):
            if self.phase != "import" or self.packages:
                raise ProtocolError("a packages message outside the import phase, or a second one")
            self.packages = True
        elif isinstance(m, Done):
            missing = [v for v, s in self.variants.items() if not s.reported]
            if missing:
                raise ProtocolError(f"'done' before a result for {', '.join(missing[:5])}")
            self.done = True
            self.current = None

    def _phase(self, m: PhaseStarted) -> None:
        if m.phase == "import":
            if self.phase not in ("start", "environment") or m.variant is not None:
                raise ProtocolError(f"an import phase in the wrong place (after {self.phase})")
            self.phase = "import"
            return
        state = self._variant(m.variant, f"a {m.phase} phase")
        if self.phase in ("start", "environment"):
            raise ProtocolError(f"a {m.phase} phase before the import phase")
        if m.phase == "build":
            if state.reported:
                raise ProtocolError(f"a build phase for variant {m.variant!r}, which was reported already")
            # The same variant built again is the worker trying its next candidate (the first
            # one's forward raised NotImplementedError): allowed before its result.
            state.captured.clear()
            if self.current is not None and self.current != m.variant and not self.variants[self.current].reported:
                raise ProtocolError(f"a build phase for {m.variant!r} while {self.current!r} was unfinished")
            self.current = m.variant
        elif m.phase in VARIANT_PHASES:
            if m.variant != self.current or state.reported \
                    or VARIANT_PHASES.index(m.phase) < VARIANT_PHASES.index(state.phase):
                raise ProtocolError(f"a {m.phase} phase for variant {m.variant!r} out of order")
        elif m.phase == "capture":   # the training build, captured after the variant's result
            if self.mode is None or m.variant != self.current or not state.reported or state.trained \
                    or state.phase not in VARIANT_PHASES:
                raise ProtocolError(f"a capture phase for variant {m.variant!r} out of order")
        else:  # evaluate, train
            if self.mode is None:
                raise ProtocolError(f"a {m.phase} phase although no training was asked for")
            if m.variant != self.current or not state.reported or state.trained:
                raise ProtocolError(f"a {m.phase} phase for variant {m.variant!r} out of order")
        state.phase = m.phase
        self.phase = m.phase

    def _predictions(self, m: Predictions) -> None:
        state = self._variant(m.variant, "predictions")
        if self.mode is None:
            raise ProtocolError("predictions although no training was asked for")
        if m.variant != self.current or not state.reported or state.trained or state.phase not in TRAINING_PHASES:
            raise ProtocolError(f"predictions for variant {m.variant!r} out of order")
        if "test" in state.splits:
            raise ProtocolError(f"{m.split} predictions for {m.variant!r} after its test predictions")
        if self.mode == "weights" and m.split != "test":
            raise ProtocolError(f"{m.split} predictions in checkpoint mode (only test was asked for)")
        if self.mode == "train" and not state.splits and m.split != "test_untrained":
            raise ProtocolError(f"{m.split} predictions for {m.variant!r} before its untrained baseline")
        if m.split == "test_untrained" and state.splits:
            raise ProtocolError(f"a second untrained baseline for {m.variant!r}")
        state.splits.append(m.split)
