"""The data that flows through a grade, defined once.

load -> `Submission`; check -> `CheckResult`s inside a `VariantResult`;
score -> `Grade`; all of it -> `SubmissionResult`, which the report step writes as
`results.json` (schema below, documented in docs/results.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

RESULTS_SCHEMA = "segrade.results/3"


class CheckStatus(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"  # could not run because an earlier check failed


class VariantStatus(StrEnum):
    PASSED = "passed"        # every required check passed
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
                                                "missing", "passed"))
PROBLEM_STATUSES = frozenset(VariantStatus(s) for s in ("error", "crashed", "timeout", "oom", "missing", "ambiguous"))
NOT_RUN_BECAUSE = {
    VariantStatus.PASSED: "the grader did not run it",
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
    root: Path                     # the prepared, importable copy (grader.submission.formats)
    modules: tuple[dict[str, str], ...]  # {"path", "name"} for the worker to import, in order
    sys_path: tuple[str, ...]      # folders of `root` put first on the worker's sys.path
    skipped: dict[str, list[str]]  # per file: top-level statements left out (training code...)
    notes: tuple[str, ...]         # what loading did (extracted, converted, skipped files)


@dataclass(frozen=True)
class CheckResult:
    id: str
    status: CheckStatus
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def headline(self) -> str:
        """The message's first paragraph: what the terminal shows (the report shows all of
        it, e.g. a manifest template after a blank line)."""
        return self.message.split("\n\n", 1)[0]


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

    def check(self, check_id: str) -> CheckResult | None:
        return next((c for c in self.checks if c.id == check_id), None)

    def first_check(self, status: CheckStatus) -> CheckResult | None:
        """The first check that ended with `status` (e.g. the first failure: what to fix)."""
        return next((c for c in self.checks if c.status is status), None)


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


@dataclass(frozen=True)
class ManualItem:
    """Marks segrade leaves to a human grader (a discussion, a visualisation)."""

    id: str
    title: str
    max_points: float
    prompts: tuple[str, ...] = ()
    points: float | None = None


@dataclass(frozen=True)
class Grade:
    total: float | None            # automatic points; None with --checks-only
    max_total: float               # every mark of the rubric, manual items included
    automatic_max: float           # the part segrade scores
    passed_variants: int
    total_variants: int
    manual: tuple[ManualItem, ...]
    note: str


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

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["submission"]["root"]  # a temporary folder, gone after grading
        del data["samples"]
        return {"schema": RESULTS_SCHEMA, "total": self.grade.total, "max_total": self.grade.max_total,
                **_plain(data)}


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
