"""The grade of one submission, step by step:

    load  ->  check  ->  evaluate  ->  score  ->  (report: grader.report)

Each step is one function with typed inputs and outputs. Student code runs only
inside `run_worker` (grader.sandbox); everything else here runs in the grading
process on plain data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from grader import __version__
from grader.checks import check_variant
from grader.load import load_submission
from grader.results import Grade, SubmissionResult, VariantResult, VariantStatus
from grader.sandbox import WorkerOutcome, run_worker
from grader.spec import Assignment
from grader.weights import BackboneWeights, find_vgg16_weights

ISOLATION = ("separate worker process (python -I) on a temporary copy, scrubbed environment, "
             "wall-clock limit; no network or file-system sandbox yet")


@dataclass(frozen=True)
class GradeOptions:
    vgg16_weights: str | None = None  # a weights file; else $SEGRADE_VGG16_WEIGHTS or torchvision's cache
    device: str = "auto"              # auto: cuda, then mps, then cpu
    batch_size: int = 2
    timeout_s: float = 900.0
    seed: int = 0


def grade_submission(path: str | Path, assignment: Assignment, options: GradeOptions = GradeOptions(),
                     submission_id: str | None = None) -> SubmissionResult:
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    started = time.perf_counter()

    submission = load_submission(path, submission_id)
    weights = find_vgg16_weights(options.vgg16_weights)
    outcome = run_worker(submission, probe_request(assignment, weights, options), timeout_s=options.timeout_s,
                         **weights.worker_setup())
    response = outcome.response or {}
    modules = tuple(response.get("modules", ()))
    variants = check(assignment, outcome, options)
    evaluation = None  # standardised training and hidden evaluation are not in this version
    grade = score(assignment, variants)

    environment = {
        **response.get("environment", {}),
        "segrade": __version__,
        "pretrained_backbone": weights.available,
        "backbone_weights": weights.describe(),
        "isolation": ISOLATION,
        "worker_problem": outcome.problem,
        "worker_seconds": round(outcome.seconds, 2),
    }
    return SubmissionResult(
        submission=submission, assignment_id=assignment.id, spec_sha256=assignment.sha256,
        segrade_version=__version__, environment=environment, modules=modules, variants=variants,
        evaluation=evaluation, grade=grade, worker_log=outcome.log, started_at=started_at,
        duration_s=round(time.perf_counter() - started, 2),
    )


def probe_request(assignment: Assignment, weights: BackboneWeights, options: GradeOptions) -> dict[str, Any]:
    """What the worker is asked to build: every variant with the assignment's arguments."""
    variants = []
    for variant in assignment.variants:
        kwargs = {assignment.contract.num_classes_kwarg: assignment.num_classes, **variant.kwargs}
        if variant.family.pretrained_kwarg:
            kwargs[variant.family.pretrained_kwarg] = weights.available
        variants.append({"id": variant.id, "class_name": variant.class_name, "kwargs": kwargs,
                         "input_size": variant.family.input_size})
    return {"variants": variants, "batch_size": options.batch_size, "seed": options.seed, "device": options.device}


def check(assignment: Assignment, outcome: WorkerOutcome, options: GradeOptions) -> tuple[VariantResult, ...]:
    response = outcome.response or {}
    observed = {v["id"]: v for v in response.get("variants", ())}
    import_errors = tuple(f"{m['path']}: {m['error']}" for m in response.get("modules", ()) if not m.get("ok"))
    return tuple(
        check_variant(variant, observed.get(variant.id), assignment, batch_size=options.batch_size,
                      worker_problem=outcome.problem, import_errors=import_errors)
        for variant in assignment.variants
    )


def score(assignment: Assignment, variants: tuple[VariantResult, ...]) -> Grade:
    passed = sum(v.status is VariantStatus.PASSED for v in variants)
    return Grade(
        points=None, max_points=assignment.total_marks, passed_variants=passed, total_variants=len(variants),
        note=("No points yet: this version of segrade checks that each variant builds and returns "
              "logits of the right shape; training, evaluation against bands and points are not "
              "implemented yet."),
    )
