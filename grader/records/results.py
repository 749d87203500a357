"""The data that flows through a grade, defined once.

load -> `Submission`; check -> `CheckResult`s inside a `VariantResult`;
score -> `Grade`; all of it -> `SubmissionResult`, which the report step writes as
`results.json` (schema below, documented in docs/results.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

RESULTS_SCHEMA = "segrade.results/3"
# What this segrade reads: 2 lacks `answers` and the band's `per_class_iou` (read as empty).
READABLE_SCHEMAS = ("segrade.results/2", RESULTS_SCHEMA)


class RecordError(ValueError):
    """A saved record (results.json) of the wrong shape; the message names the field."""


class CheckStatus(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"  # could not run because an earlier check failed
    HELD = "held"  # passed where submitted code could forge it (the student's process): for a person to review

    @property
    def passes(self) -> bool:
        """The scoring rule: a passed or warned check earns its marks; `warn` never fails."""
        return self in (CheckStatus.PASS, CheckStatus.WARN)


class VariantStatus(StrEnum):
    PASSED = "passed"        # every required check passed
    HELD = "held"            # none failed, but a check that makes it this variant was measured in the
                             # student's process (its model could not be captured): held for review
    FAILED = "failed"        # built and ran, but a required check failed
    MISSING = "missing"      # nothing in the submission builds this variant
    AMBIGUOUS = "ambiguous"  # several candidates; a manifest must pin one
    ERROR = "error"          # student code raised, or ended the worker (sys.exit, os._exit)
    TIMEOUT = "timeout"      # a phase overran its deadline or the CPU-time limit
    OOM = "oom"              # out of memory
    CRASHED = "crashed"      # the worker died from a signal (e.g. a segfault)


# The statuses, defined once for every report (terminal, HTML, summary, gradebook, Gradescope):
# the order reports list variants in (worst first); the ones where the code could not be judged
# (it did not run to the end, or was not found); why checks were not run, per status.
STATUS_ORDER = tuple(VariantStatus(s) for s in ("error", "crashed", "timeout", "oom", "failed", "ambiguous",
                                                "missing", "held", "passed"))
PROBLEM_STATUSES = frozenset(VariantStatus(s) for s in ("error", "crashed", "timeout", "oom", "missing", "ambiguous"))
NOT_RUN_BECAUSE = {
    VariantStatus.PASSED: "the grader did not run it",
    VariantStatus.HELD: "the grader did not run it",
    VariantStatus.FAILED: "an earlier required check failed",
    VariantStatus.MISSING: "nothing in the submission builds this variant",
    VariantStatus.AMBIGUOUS: "several classes could be this variant",
    VariantStatus.ERROR: "the submission's code raised an error",
    VariantStatus.TIMEOUT: "a phase ran past its time limit",
    VariantStatus.OOM: "it ran out of memory",
    VariantStatus.CRASHED: "the worker crashed",
}


def variants_passing(passed: int, total: int) -> str:
    """The one-line verdict on a submission, as every report words it."""
    return f"{passed}/{total} variants pass every required check"


@dataclass(frozen=True)
class Submission:
    """A submission as the grading process sees it: files, never imported here."""

    id: str
    source: Path                   # what was handed in: a folder, .zip, .py or .ipynb
    sha256: str                    # over the source's file names and contents
    root: Path | None              # the prepared, importable copy (grader.submission.formats);
                                   # None for a record read back from results.json (it is gone)
    modules: tuple[dict[str, str], ...]  # {"path", "name"} for the worker to import, in order
    sys_path: tuple[str, ...]      # folders of `root` put first on the worker's sys.path
    skipped: dict[str, list[str]]  # per file: top-level statements left out (training code...)
    notes: tuple[str, ...]         # what loading did (extracted, converted, skipped files)
    # Top-level statements setting requires_grad on a model the code built (a notebook's
    # freezing), as grader.shared.protocol.TopLevelFreeze's JSON (grader.submission.freezing).
    freezes: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_json(cls, data: Any, where: str = "submission") -> Submission:
        data = _object(data, where)
        return cls(id=_take(data, "id", str, where), source=Path(_take(data, "source", str, where, "")),
                   sha256=_take(data, "sha256", str, where, ""), root=None,
                   modules=tuple(_objects(data, "modules", where)),
                   sys_path=tuple(_take(data, "sys_path", list, where, [])),
                   skipped=_take(data, "skipped", dict, where, {}), notes=tuple(_take(data, "notes", list, where, [])),
                   freezes=tuple(_take(data, "freezes", list, where, [])))


# Where a variant was measured (VariantResult.program["measured_in"]): on the program the worker
# captured, in the verifier, or beside student code when it could not be captured (issue 26).
CAPTURED_PROGRAM = "captured program"
STUDENT_PROCESS = "student process"


@dataclass(frozen=True)
class CheckResult:
    id: str
    status: CheckStatus
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def headline(self) -> str:
        """The message's first paragraph: what the terminal shows (the report shows all of
        it, e.g. a manifest template after a blank line). A paragraph that introduces what
        follows (it ends with a colon) says where that is instead of ending on nothing."""
        first, _, rest = self.message.partition("\n\n")
        if rest and first.endswith(":"):
            return first[:-1] + " (the lines to write are in the report)"
        return first

    @classmethod
    def from_json(cls, data: Any, where: str = "check") -> CheckResult:
        data = _object(data, where)
        return cls(_take(data, "id", str, where), _enum(CheckStatus, data, "status", where),
                   _take(data, "message", str, where, ""), _take(data, "details", dict, where, {}))


@dataclass(frozen=True)
class VariantResult:
    variant_id: str
    title: str
    status: VariantStatus
    mapping: str | None            # how the variant was built, one sentence (grader.adapters)
    checks: tuple[CheckResult, ...]
    figures: dict[str, Any] = field(default_factory=dict)  # parameters, timings
    adapter: str | None = None     # contract, manifest, alias, flags, variant argument...
    notes: tuple[str, ...] = ()    # what the adapter had to assume
    # From training and hidden evaluation (None with --checks-only):
    training: dict[str, Any] | None = None   # profile, mode, backbone start, seconds, error
    metrics: dict[str, Any] | None = None    # test miou, pixel_accuracy, per_class_iou by class name...
    curves: dict[str, Any] | None = None     # loss per step; val mIoU and pixel accuracy per interval
    band: Band | None = None                 # the reference's band for this variant, or None
    # From scoring:
    points: float | None = None
    max_points: float = 0.0
    points_detail: dict[str, Any] = field(default_factory=dict)  # checks and performance parts, flags
    reused_since: str | None = None          # `segrade check` only: reused, unchanged since this grade's
                                             # start (ISO time); None: checked in this run
    # What was measured and graded (issue 26): {"measured_in": "captured program" | "student process",
    # "programs": {mode: {file, sha256, bytes}}, "capture_seconds", "build_seed" (the seed it was
    # built with), "reason" (why not captured)}
    program: dict[str, Any] | None = None

    def check(self, check_id: str) -> CheckResult | None:
        return next((c for c in self.checks if c.id == check_id), None)

    def first_check(self, status: CheckStatus) -> CheckResult | None:
        """The first check that ended with `status` (e.g. the first failure: what to fix)."""
        return next((c for c in self.checks if c.status is status), None)

    @property
    def first_problem(self) -> CheckResult | None:
        """The first failing check, else the first held one: what to look at first in this variant."""
        return self.first_check(CheckStatus.FAIL) or self.first_check(CheckStatus.HELD)

    @property
    def miou(self) -> float | None:
        return (self.metrics or {}).get("miou")

    def to_json(self) -> dict[str, Any]:
        """As results.json holds it (`variants[]`); `reused_since` only when it was reused."""
        data = _plain(asdict(self))
        if data.get("reused_since") is None:
            del data["reused_since"]
        return data

    @classmethod
    def from_json(cls, data: Any, where: str = "variant") -> VariantResult:
        """A saved variant (results.json `variants[]`) as the typed record it was written from."""
        data = _object(data, where)
        vid = _take(data, "variant_id", str, where)
        where = f"{where} {vid!r}"
        band = _take(data, "band", (dict, type(None)), where, None)
        return cls(
            variant_id=vid, title=_take(data, "title", str, where, vid), status=_enum(VariantStatus, data, "status", where),
            mapping=_take(data, "mapping", (str, type(None)), where, None),
            checks=tuple(CheckResult.from_json(c, f"{where}, checks[{i}]")
                         for i, c in enumerate(_take(data, "checks", list, where, []))),
            figures=_take(data, "figures", dict, where, {}), adapter=_take(data, "adapter", (str, type(None)), where, None),
            notes=tuple(_take(data, "notes", list, where, [])),
            training=_take(data, "training", (dict, type(None)), where, None),
            metrics=_take(data, "metrics", (dict, type(None)), where, None),
            curves=_take(data, "curves", (dict, type(None)), where, None),
            band=None if band is None else Band.from_json(band, f"{where}, band"),
            points=_take(data, "points", (int, float, type(None)), where, None),
            max_points=_take(data, "max_points", (int, float), where, 0.0),
            points_detail=_take(data, "points_detail", dict, where, {}),
            program=_take(data, "program", (dict, type(None)), where, None),
            reused_since=_take(data, "reused_since", (str, type(None)), where, None))


@dataclass(frozen=True)
class Band:
    """The reference solution's test mIoU for one variant under one profile and backbone
    start, over several seeds (grader.grading.bands). `measured` False: no band applies (`refusal`
    says why when one was measured for something else)."""

    measured: bool
    profile: str
    backbone: str                   # "imagenet" or "random_init"
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    lower: float | None = None      # full performance marks at or above
    upper: float | None = None      # above: flagged for a human look
    untrained: float | None = None  # zero performance marks at or below
    untrained_max: float | None = None  # the highest untrained mIoU over the reference's initialisation
                                        # seeds: what `learns` must beat (None: not recorded)
    runs: int = 0
    source: str = ""                # the bands file and its provenance, one line
    refusal: str | None = None      # measured, but not for this grade: why, and what to run
    per_class_iou: dict[str, float] | None = None  # the reference's mean IoU per class name

    @classmethod
    def from_json(cls, data: Any, where: str = "band") -> Band:
        data = _object(data, where)
        _take(data, "measured", bool, where)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    # A band of fewer runs cannot show a profile separating trained from untrained (its std
    # is a guess): `segrade bands` measures 5 by default.
    SEPARATION_RUNS = 5

    def separates_untrained(self) -> bool:
        """Whether the reference's runs show this profile separating a trained model from an
        untrained one: at least SEPARATION_RUNS runs, and the band's lower edge above the
        highest untrained figure over their seeds. `learns` then fails below that figure."""
        return (self.measured and self.untrained_max is not None and self.lower is not None
                and self.runs >= self.SEPARATION_RUNS and self.lower > self.untrained_max)

    def range_text(self, sep: str = "..") -> str:
        """'0.512..0.640': the band's edges, as every report shows them."""
        return f"{self.lower:.3f}{sep}{self.upper:.3f}"


def band_text(band: Band | None, sep: str = "–", absent: str = "–") -> str:
    """The band column of a report: its edges when measured, else whether one was measured
    for something else ("does not apply") or none at all; `absent` when the variant has none."""
    if band is None:
        return absent
    if band.measured:
        return band.range_text(sep)
    return "does not apply" if band.refusal else "not measured"


@dataclass(frozen=True)
class ManualItem:
    """Marks segrade leaves to a human grader (a discussion, a visualisation)."""

    id: str
    title: str
    max_points: float
    prompts: tuple[str, ...] = ()
    points: float | None = None

    @classmethod
    def from_json(cls, data: Any, where: str = "manual item") -> ManualItem:
        data = _object(data, where)
        return cls(_take(data, "id", str, where), _take(data, "title", str, where, ""),
                   _take(data, "max_points", (int, float), where), tuple(_take(data, "prompts", list, where, [])),
                   _take(data, "points", (int, float, type(None)), where, None))


@dataclass(frozen=True)
class Grade:
    total: float | None            # automatic points; None with --checks-only
    max_total: float               # every mark of the rubric, manual items included
    automatic_max: float           # the part segrade scores
    passed_variants: int
    total_variants: int
    manual: tuple[ManualItem, ...]
    note: str

    @classmethod
    def from_json(cls, data: Any, where: str = "grade") -> Grade:
        data = _object(data, where)
        number = (int, float)
        return cls(total=_take(data, "total", (*number, type(None)), where),
                   max_total=_take(data, "max_total", number, where),
                   automatic_max=_take(data, "automatic_max", number, where),
                   passed_variants=_take(data, "passed_variants", int, where),
                   total_variants=_take(data, "total_variants", int, where),
                   manual=tuple(ManualItem.from_json(m, f"{where}, manual[{i}]")
                                for i, m in enumerate(_take(data, "manual", list, where, []))),
                   note=_take(data, "note", str, where, ""))


@dataclass(frozen=True)
class SubmissionResult:
    submission: Submission
    assignment_id: str
    spec_sha256: str
    segrade_version: str
    environment: dict[str, Any]
    modules: tuple[dict[str, Any], ...]  # per imported file: path, ok, error
    variants: tuple[VariantResult, ...]
    evaluation: dict[str, Any] | None
    grade: Grade
    worker_log: str
    started_at: str
    duration_s: float
    checks: tuple[CheckResult, ...] = ()  # about the submission as a whole (course policy)
    # The student's answers to the manual items' prompts, found in the submission's Markdown
    # or notebook cells (grader.submission.answers): item id -> {"source", "markdown"}.
    answers: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(v.status is VariantStatus.PASSED for v in self.variants)

    samples: dict[str, Any] | None = field(default=None, compare=False)  # grid arrays: samples.npz, not JSON
    # The schema of the file it was read from (a record written now: the current one). Written
    # back, a record is always the current schema: reading an older one fills what it lacked.
    schema: str = field(default=RESULTS_SCHEMA, compare=False)

    @property
    def id(self) -> str:
        return self.submission.id

    @property
    def total(self) -> float | None:
        return self.grade.total

    def variant(self, variant_id: str) -> VariantResult | None:
        return next((v for v in self.variants if v.variant_id == variant_id), None)

    def failed_imports(self, blocking: bool) -> list[dict[str, Any]]:
        """The files that did not import: the blocking ones (a variant depends on them: what to
        fix) or the informational ones (no model depends on them)."""
        return failed_imports(self.modules, blocking)

    @property
    def first_problem(self) -> tuple[VariantResult, CheckResult] | None:
        """The first variant (in spec order) with a failing check, and that check."""
        return next(((v, c) for v in self.variants if (c := v.first_problem) is not None), None)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["submission"]["root"]  # a temporary folder, gone after grading
        del data["samples"], data["schema"]
        data["variants"] = [v.to_json() for v in self.variants]
        return {"schema": RESULTS_SCHEMA, "total": self.grade.total, "max_total": self.grade.max_total,
                **_plain(data)}

    @classmethod
    def from_json(cls, data: Any) -> SubmissionResult:
        """A saved results.json (any of READABLE_SCHEMAS) as the typed record it was written
        from. Checked: raises RecordError naming the first field of the wrong shape."""
        if not isinstance(data, dict):
            raise RecordError(f"not a JSON object but {type(data).__name__}")
        schema = data.get("schema")
        if schema not in READABLE_SCHEMAS:
            raise RecordError(f"schema {schema!r}; this segrade reads {', '.join(READABLE_SCHEMAS)}")
        where = "results"
        evaluation = _take(data, "evaluation", (dict, type(None)), where, None)
        return cls(
            submission=Submission.from_json(_take(data, "submission", dict, where)),
            assignment_id=_take(data, "assignment_id", str, where), spec_sha256=_take(data, "spec_sha256", str, where, ""),
            segrade_version=_take(data, "segrade_version", str, where, ""),
            environment=_take(data, "environment", dict, where, {}), modules=tuple(_objects(data, "modules", where)),
            variants=tuple(VariantResult.from_json(v, f"variants[{i}]")
                           for i, v in enumerate(_take(data, "variants", list, where))),
            evaluation=evaluation, grade=Grade.from_json(_take(data, "grade", dict, where)),
            worker_log=_take(data, "worker_log", str, where, ""), started_at=_take(data, "started_at", str, where, ""),
            duration_s=_take(data, "duration_s", (int, float), where, 0.0),
            checks=tuple(CheckResult.from_json(c, f"checks[{i}]") for i, c in enumerate(_take(data, "checks", list,
                                                                                                where, []))),
            answers=_take(data, "answers", dict, where, {}), schema=schema)


def failed_imports(modules: tuple[dict[str, Any], ...] | list[dict[str, Any]], blocking: bool) -> list[dict[str, Any]]:
    """The import outcomes that failed, blocking (a variant depends on the file; unmarked
    outcomes count as blocking) or informational (grader.submission.candidates.mark_blocking)."""
    return [m for m in modules if not m.get("ok") and is_blocking(m) is blocking]


def is_blocking(module: dict[str, Any]) -> bool:
    """Whether a failed import outcome blocks a variant (outcomes recorded before segrade
    marked them count as blocking)."""
    return bool(module.get("blocking", True))


_REQUIRED = object()


def _object(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise RecordError(f"{where} is {type(data).__name__}, not an object")
    return data


def _take(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = _REQUIRED) -> Any:
    """data[key], checked to be of `kind` (a missing key: `default`, or an error when required)."""
    if key not in data:
        if default is _REQUIRED:
            raise RecordError(f"{where}: {key!r} is missing")
        return default
    value = data[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
        raise RecordError(f"{where}: {key!r} is {type(value).__name__}, not {names}")
    return value


def _objects(data: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    items = _take(data, key, list, where, [])
    for i, item in enumerate(items):
        _object(item, f"{where}, {key}[{i}]")
    return items


def _enum(enum: type[StrEnum], data: dict[str, Any], key: str, where: str) -> Any:
    value = _take(data, key, str, where)
    try:
        return enum(value)
    except ValueError:
        raise RecordError(f"{where}: {key!r} is {value!r}, not one of {', '.join(e.value for e in enum)}") from None


def _plain(value: Any) -> Any:
    """Enums to their values, tuples to lists: what json.dumps expects."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value
