"""The grade of one submission, step by step:

    load  ->  check  ->  evaluate  ->  score  ->  (report: grader.report)

Each step is one function with typed inputs and outputs. Student code runs only
inside `run_worker` (grader.sandbox); everything else here runs in the grading
process on plain data.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from grader import __version__
from grader.checks import check_llm_declaration, check_variant
from grader.load import load_submission, read_manifest
from grader.results import Grade, Submission, SubmissionResult, VariantResult, VariantStatus
from grader.sandbox import Limits, WorkerRun, run_worker
from grader.spec import Assignment
from grader.weights import BackboneWeights, find_vgg16_weights


@dataclass(frozen=True)
class GradeOptions:
    vgg16_weights: str | None = None  # a weights file; else $SEGRADE_VGG16_WEIGHTS or torchvision's cache
    device: str = "auto"              # auto: cuda, then mps, then cpu
    batch_size: int = 2
    seed: int = 0
    limits: Limits = Limits()
    manifest: str | None = None       # the instructor's manifest for this submission
    isolation: str | None = None      # None: bubblewrap when available; "process" to do without


def grade_submission(path: str | Path, assignment: Assignment, options: GradeOptions = GradeOptions(),
                     submission_id: str | None = None) -> SubmissionResult:
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="segrade-load-") as tmp:
        submission = load_submission(path, Path(tmp), submission_id)
        manifest = read_manifest(submission, options.manifest, known_ids=[v.id for v in assignment.variants])
        weights = find_vgg16_weights(options.vgg16_weights)
        run = run_worker(submission.root, probe_request(assignment, submission, weights, manifest, options),
                         limits=options.limits, isolation=options.isolation, **weights.worker_setup())
        policy = check_llm_declaration(submission.root, assignment.policy.get("llm_declaration_pattern"))
    variants = check(assignment, run, options)
    evaluation = None  # standardised training and hidden evaluation are not in this version
    grade = score(assignment, variants)

    environment = {
        **run.environment,
        "segrade": __version__,
        "pretrained_backbone": weights.available,
        "backbone_weights": weights.describe(),
        "isolation": run.isolation,
        "worker_problem": run.problem,
        "worker_restarts": run.restarts,
        "worker_seconds": round(run.seconds, 2),
    }
    return SubmissionResult(
        submission=submission, assignment_id=assignment.id, spec_sha256=assignment.sha256,
        segrade_version=__version__, environment=environment, modules=tuple(run.modules), variants=variants,
        evaluation=evaluation, grade=grade, worker_log=run.log, started_at=started_at,
        duration_s=round(time.perf_counter() - started, 2), checks=(policy,) if policy else (),
    )


def probe_request(assignment: Assignment, submission: Submission, weights: BackboneWeights,
                  manifest: dict | None, options: GradeOptions) -> dict[str, Any]:
    """What the worker is asked to do: import these modules, build every variant."""
    variants = []
    for variant in assignment.variants:
        pretrained = weights.available if variant.family.pretrained_kwarg else None
        variants.append({"id": variant.id, "family": variant.family.id, "class_name": variant.class_name,
                         "aliases": list(variant.aliases), "traits": variant.traits,
                         "num_classes": assignment.num_classes, "pretrained": pretrained,
                         "input_size": variant.family.input_size})
    return {"modules": list(submission.modules), "sys_path": list(submission.sys_path), "manifest": manifest,
            "variants": variants, "batch_size": options.batch_size, "seed": options.seed, "device": options.device}


def check(assignment: Assignment, run: WorkerRun, options: GradeOptions) -> tuple[VariantResult, ...]:
    import_errors = tuple(f"{m['path']}: {m['error']}" for m in run.modules if not m.get("ok"))
    return tuple(
        check_variant(variant, run.variants.get(variant.id, {"id": variant.id, "worker_status": "error",
                                                             "message": "the worker did not report on it"}),
                      assignment, batch_size=options.batch_size, import_errors=import_errors)
        for variant in assignment.variants
    )


def score(assignment: Assignment, variants: tuple[VariantResult, ...]) -> Grade:
    passed = sum(v.status is VariantStatus.PASSED for v in variants)
    return Grade(
        points=None, max_points=assignment.total_marks, passed_variants=passed, total_variants=len(variants),
        note=("No points yet: this version of segrade checks how each variant is built and behaves "
              "(shapes, gradients, the frozen backbone); training, evaluation against bands and points "
              "are not implemented yet."),
    )
