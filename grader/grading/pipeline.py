"""The grade of one submission, step by step:

    load  ->  (worker: build, probe, train, predict)  ->  check  ->  evaluate  ->  score
          ->  (report: grader.report)

Each step is one function with typed inputs and outputs. Student code runs only
inside `run_worker` (grader.grading.sandbox); everything else here runs in the grading
process on plain data. The worker sees training labels but never the validation or
test labels: it sends predictions, and `evaluate` scores them here.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from grader import __version__
from grader.submission.answers import find_answers
from grader.grading.bands import (BandIdentity, backbone_key, bands_command, bands_folder, compare_figures,
                                  load_bands, load_figures)
from grader.grading.reuse import CheckMemory, digest, file_digest
from grader.submission.dependencies import SourceIndex, code_digest, files_digest, index_sources
from grader.submission.candidates import mark_blocking
from grader.grading.checks import WORKER_STATUS, check_learning, check_llm_declaration, check_skip_ablation, check_variant
from grader.data.sources import secret_test_seed
from grader.shared.device import resolve_device
from grader.shared.processes import scratch_folder
from grader.grading.evaluation import Evaluator, PreparedData, describe_source, prepare_data
from grader.grading.metrics import json_float
from grader.submission.load import find_checkpoints, load_submission, read_manifest
from grader.grading.progress import ProgressState, ProgressTracker
from grader.shared.protocol import (BuildStep, Capture, Done, FamilyTraining, ModuleRequest, Observation, PhaseStarted,
                                    Predictions, TopLevelFreeze, TrainingOutcome, TrainingRequest, VariantRequest, VerifierVariant,
                                    WorkerRequest)
from grader.records.results import (
    CAPTURED_PROGRAM, STUDENT_PROCESS,
    CheckStatus, Submission, SubmissionResult, VariantResult, VariantStatus, failed_imports,
)
from grader.grading.sandbox import EarlyStart, Limits, WorkerRun, isolation_available, run_worker
from grader.grading.score import score, split_label
from grader.spec import Assignment, Profile
from grader.grading.weights import BackboneWeights, find_vgg16_weights


@dataclass(frozen=True)
class GradeOptions:
    vgg16_weights: str | None = None  # a weights file; else $SEGRADE_VGG16_WEIGHTS or torchvision's cache
    device: str = "auto"              # auto: cuda, then mps, then cpu
    batch_size: int = 2               # of the checks' forward pass
    profile: str | None = "auto"      # a training profile of the spec; auto: full on CUDA, else smoke;
                                      # None: checks only, no training
    seed: int | None = None           # training seed; None: the profile's
    weights: bool = False             # checkpoint mode: evaluate the submission's own trained weights
    bands_folder: Path | None = None  # where the bands live; None: reference/bands
    limits: Limits = Limits()
    manifest: str | None = None       # the instructor's manifest for this submission
    isolation: str | None = None      # None: bubblewrap when available; "process" to do without
    evaluation_split: str = "test"    # "test": hidden labels (grading); "val": the public split (self-check)
    threads: int | None = None        # CPU threads of the worker; None: torch's default (all cores)
    cuda_memory_fraction: float | None = None  # cap of the worker's share of the GPU (jobs sharing it)
    test_seed: int | None = None      # the synthetic test split's seed; None: secret_test_seed(). A batch
                                      # sets one for all its submissions, so they share one test split
    capture: bool = True              # measure and train captured programs in the verifier (issue 26);
                                      # False: everything in the worker, beside student code (the old path)
    trust_student_process: bool = False  # grade what could only be measured beside student code as it came
                                      # (grader.grading.score: otherwise those checks are held for review)
    programs_folder: Path | None = None  # where the captured programs are kept; None: discarded after grading
    variants: tuple[str, ...] = ()    # check only these variant ids (empty: every variant)
    keep_in: Path | None = None       # `segrade check` only: keep results in this output folder and reuse
                                      # the unchanged variants' (grader.grading.reuse); never set by grade
    fresh: bool = False               # with keep_in: ignore what was kept (still keep this run's)


MACHINE_STATUSES = frozenset({VariantStatus.TIMEOUT, VariantStatus.OOM, VariantStatus.CRASHED})


def selected_variants(assignment: Assignment, options: GradeOptions) -> list:
    """The variants to check: all, or those `options.variants` names (an unknown id is an error)."""
    known = [v.id for v in assignment.variants]
    unknown = [vid for vid in options.variants if vid not in known]
    if unknown:
        raise ValueError(f"unknown variant {', '.join(map(repr, unknown))}: this assignment's variants are "
                         f"{', '.join(known)}")
    return [v for v in assignment.variants if not options.variants or v.id in options.variants]


def resolve_profile(assignment: Assignment, options: GradeOptions) -> tuple[Profile | None, str]:
    """The training profile to use and one sentence saying why."""
    if options.profile is None:
        return None, "checks only: no training (--checks-only)"
    if options.profile != "auto":
        return assignment.profile(options.profile), f"profile {options.profile!r} as asked"
    device = resolve_device(options.device)
    name = "full" if device.type == "cuda" else "smoke"
    return assignment.profile(name), f"profile {name!r} picked automatically: the device is {device.type}"


def grade_submission(path: str | Path, assignment: Assignment, options: GradeOptions = GradeOptions(),
                     submission_id: str | None = None,
                     on_progress: Callable[[ProgressState], None] | None = None, *, sha256: str | None = None,
                     on_prepared: Callable[[Submission], None] | None = None) -> SubmissionResult:
    """`on_progress` receives where the worker has got to (grader.grading.progress) as it moves on;
    `sha256`: the submission's fingerprint when the caller has it (a batch's plan);
    `on_prepared(submission)`: called once its importable copy is prepared, before any of its
    code runs, for a caller that keeps something of it (a batch keeps its code)."""
    (result,) = _grade(path, assignment, options, submission_id, on_progress, sha256, on_prepared)
    return result


def grade_on_test_and_val(path: str | Path, assignment: Assignment, options: GradeOptions,
                          submission_id: str | None = None,
                          on_progress: Callable[[ProgressState], None] | None = None, *, sha256: str | None = None,
                          on_prepared: Callable[[Submission], None] | None = None
                          ) -> tuple[SubmissionResult, SubmissionResult]:
    """One training, its final model scored twice: on the hidden test split (what a grade
    scores) and on the public validation split as a self-check scores it (the same images and
    the same band identity). `segrade bands` on real data: both bands from one run per seed,
    in this process or as a backend's tasks (grader.batch.job.grade_entry). Synthetic scenes
    have one band for both (grader.grading.evaluation.evaluation_distribution). The other
    arguments are grade_submission's."""
    if not scores_on_test_and_val(assignment, options):
        raise ValueError("scoring one training on both splits needs real data and a training profile")
    test, val = _grade(path, assignment, replace(options, evaluation_split="test", keep_in=None), submission_id,
                       on_progress, sha256, on_prepared, also_val=True)
    return test, val


def scores_on_test_and_val(assignment: Assignment, options: GradeOptions) -> bool:
    """Whether one training can be scored on both splits (grade_on_test_and_val)."""
    return assignment.dataset.kind != "synthetic" and options.profile is not None and not options.weights


def _grade(path: str | Path, assignment: Assignment, options: GradeOptions, submission_id: str | None = None,
           on_progress: Callable[[ProgressState], None] | None = None, sha256: str | None = None,
           on_prepared: Callable[[Submission], None] | None = None,
           also_val: bool = False) -> tuple[SubmissionResult, ...]:
    """The grade, scored on options.evaluation_split; with `also_val`, a second result scored on
    the validation split from the same training (grade_on_test_and_val)."""
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    started = time.perf_counter()
    profile, profile_reason = resolve_profile(assignment, options)
    selected = selected_variants(assignment, options)
    with scratch_folder("segrade-load-") as tmp:
        submission = load_submission(path, Path(tmp), submission_id, sha256)
        if on_prepared is not None:
            on_prepared(submission)
        manifest = read_manifest(submission, options.manifest, known_ids=[v.id for v in assignment.variants])
        weights = find_vgg16_weights(options.vgg16_weights)
        # Whether FCN backbones start from ImageNet weights: the checks build them so whenever the
        # weights exist; training does only when the profile asks for it.
        # A course without such a family has no ImageNet backbone: its bands are "random_init" wherever
        # they are measured, whatever weights the machine happens to hold.
        pretrained = weights.available and assignment.has_family_with_pretrained_backbone() and (
            profile is None or (profile.pretrained and not options.weights))
        data = evaluator = None
        checkpoints: dict[str, str] = {}
        if profile is not None:
            data = prepare_evaluation_data(assignment, profile, options, Path(tmp) / "data", also_val)
            evaluator = Evaluator(data, {v.id: v.family.id for v in assignment.variants}, assignment.num_classes,
                                  profile.grid_images)
            checkpoints = find_checkpoints(submission, [v.id for v in assignment.variants], manifest) \
                if options.weights else {}
        splits = (options.evaluation_split, "val") if also_val else (options.evaluation_split,)
        bands = {split: None for split in splits}
        if profile is not None:
            for split in splits:
                identity = BandIdentity(assignment.id, profile.id, profile.training_sha256, data.fingerprint,
                                        data.val_evaluation if split == "val" and also_val else data.evaluation)
                bands[split] = load_bands(profile, backbone_key(pretrained), [v.id for v in assignment.variants],
                                          options.bands_folder, identity=identity, split=split,
                                          command=bands_command(assignment, profile.id, options.bands_folder))
        memo = None
        if options.keep_in is not None:
            memo = _open_memory(assignment, submission, profile, options, pretrained, manifest, data, checkpoints,
                                weights.path)
        memory = memo.memory if memo is not None else None
        # --fresh: nothing kept is reused (what is kept of variants not run this time stays kept). A
        # timeout, out-of-memory or crash says as much about the machine's load as about the code: run again.
        reused = {v.id: kept for v in assignment.variants if memo is not None and not options.fresh
                  and (kept := memory.variants.get(v.id)) is not None and kept.result.status not in MACHINE_STATUSES
                  and kept.key == memo.key(v.id, kept.classes)}
        to_run = [v for v in selected if v.id not in reused]
        files = files_digest(submission.root) if memory is not None else None
        if memory is not None and not to_run and memory.run.get("files") == files:
            run = WorkerRun(**memory.run["worker"])     # nothing changed at all: not even the imports re-run
        else:
            training = None
            setup = weights.worker_setup()
            if profile is not None:
                training = training_request(assignment, profile, data, options, pretrained, checkpoints)
                setup["readable"] = (*setup.get("readable", ()), data.folder)
            request = probe_request(assignment, submission, weights, manifest, options, to_run, training)
            listeners = [evaluator] if evaluator is not None else []
            tracker = None
            if on_progress is not None:
                tracker = ProgressTracker([v.id for v in request.variants], request.training is not None,
                                          on_progress, capture=options.capture)
                listeners.append(tracker)

            def on_message(message) -> None:  # the scoring of predictions, and the progress display
                for listen in listeners:
                    listen(message)


            from_worker = WorkerMessages(on_message, options.capture)
            verifier = VerifierStart(request, weights, options)

            def from_worker_and_start(message) -> None:
                if options.capture and isinstance(message, PhaseStarted) and message.phase == "build":
                    verifier.start()   # a variant is being built, so most likely captured: start-up overlaps
                from_worker(message)

            programs = Path(options.programs_folder) if options.programs_folder else Path(tmp) / "programs"
            if options.capture and programs.is_dir():   # a regrade: the programs of the previous grade go
                shutil.rmtree(programs)
            with verifier:
                run = run_worker(submission.root, request, limits=options.limits, isolation=options.isolation,
                                 on_message=from_worker_and_start, captures=programs if options.capture else None,
                                 **setup)
                if options.capture:
                    if tracker is not None:
                        tracker.verifying()
                    verify(run, request, programs, weights, options, on_message, verifier.take())
        policy = check_llm_declaration(submission.root, assignment.policy.get("llm_declaration_pattern"))
        modules = mark_blocking(submission.root, run.modules, assignment.model_class_names)
        answers = find_answers(submission.root, assignment.rubric)
    checked = check(assignment, run, modules, options, to_run)
    checked = tuple(replace(v, program=getattr(run.variants.get(v.variant_id), "program", None)) for v in checked)
    results = []
    for split in splits:
        on_split = evaluator.on_split("val" if also_val and split == "val" else "test") if evaluator else None
        evaluated = checked if profile is None else evaluate(assignment, checked, run, on_split, split, bands[split])
        if memory is not None:
            _keep(memo, evaluated, run, on_split, started_at, files)
        by_id = {r.variant_id: r for r in evaluated}
        by_id |= {vid: replace(kept.result, reused_since=kept.at) for vid, kept in reused.items()}
        variants = tuple(by_id[v.id] for v in assignment.variants if v.id in by_id)
        variants, grade = score(assignment, variants, bands[split], split, options.trust_student_process)
        scored_on_val = also_val and split == "val"
        environment = {
            **run.environment,
            "segrade": __version__,
            "profile": profile.id if profile else None,
            "profile_reason": profile_reason,
            "profile_sha256": profile.sha256 if profile else None,
            "training_seed": _seed(profile, options),
            "mode": "checks only" if profile is None else "weights" if options.weights else "train",
            "pretrained_backbone": pretrained,
            "backbone_weights": _describe_backbone(assignment, weights, profile, options),
            "dataset": assignment.dataset.kind,
            "dataset_fingerprint": data.fingerprint if data else None,
            "evaluation_distribution": (data.val_evaluation if scored_on_val else data.evaluation) if data else None,
            "test_split": (describe_source(assignment, "val") if scored_on_val else data.test_source) if data else None,
            "evaluation_split": split if data else None,
            "isolation": run.isolation,
            "worker_problem": run.problem,
            "worker_restarts": run.restarts,
            "worker_seconds": round(run.seconds, 2) if to_run else 0.0,
            "reused_variants": sorted(reused),
            # --variant: variants neither checked nor kept from an earlier self-check (absent from the results)
            "not_checked": [v.id for v in assignment.variants if v.id not in by_id],
            "verifier_seconds": run.environment.get("verifier_seconds"),
            "measured_in": _measured_in(variants),
        }
        grids = {vid: kept.grid for vid, kept in reused.items()}
        results.append(SubmissionResult(
            submission=submission, assignment_id=assignment.id, spec_sha256=assignment.sha256,
            segrade_version=__version__, environment=environment, modules=tuple(modules), variants=variants,
            evaluation=None, grade=grade, worker_log=run.log, started_at=started_at,
            duration_s=round(time.perf_counter() - started, 2), checks=(policy,) if policy else (), answers=answers,
            samples=_samples(assignment, data, on_split, grids) if data else None,
        ))
    return tuple(results)


def _keep(memo: _Memo, checked: tuple[VariantResult, ...], run: WorkerRun, evaluator: Evaluator | None,
          started_at: str, files: str | None) -> None:
    """A self-check keeps each variant's result, keyed by what decides it (grader.grading.reuse)."""
    memory = memo.memory
    for result in checked:
        observed = run.variants.get(result.variant_id)
        classes = list(observed.classes) if observed and observed.classes is not None else None
        key = memo.key(result.variant_id, classes)
        ev = evaluator.variants.get(result.variant_id) if evaluator is not None else None
        grid = ev.grid_predictions.numpy() if ev is not None and ev.grid_predictions is not None else None
        memory.keep(result.variant_id, key, started_at, classes, result, grid)
    memory.run = {"files": files, "worker": {k: v for k, v in vars(run).items() if k != "variants"}}
    memory.save()


VERIFIER_LOAD_SECONDS = 180.0
# Observation keys the verifier measures on the captured program (they replace the worker's).
# The worker's `build` (how the student's code built it) stays unless the program was refused.
VERIFIED_KEYS = ("backbone_found", "parameters", "forward", "output_statistics", "sizes", "figures",
                 "gradients", "backbone", "architecture", "structure", "check_seconds", "verifier")


def worker_trains(captures: dict[str, bool]) -> bool:
    """Whether the worker's own training (and predictions) of a variant count, from its capture
    outcomes by purpose: only when its checks' build was not captured, or its training build
    failed to capture; otherwise the verifier trains the captured program and whatever the
    worker sends for it is ignored."""
    return not captures.get("check") or captures.get("train") is False


def verifier_trains(captures: dict[str, dict[str, Any]], claimed: TrainingOutcome | None) -> bool:
    """Whether the verifier trains a captured variant: unless its training build could not be
    captured (the worker trained it, in the student's process), or the worker reports that it
    could not train it (e.g. unreadable weights: a failure only costs its sender). A success
    the worker claims for a captured variant is ignored."""
    outcomes = {"check": True, **{purpose: bool(c.get("ok")) for purpose, c in captures.items()}}
    return not worker_trains(outcomes) and not (claimed is not None and not claimed.ok)


class WorkerMessages:
    """The worker's messages as the grading process listens to them: its predictions of a
    captured variant are dropped (the verifier's count), and with capture the verifier's `done`
    ends the display, not the worker's."""

    def __init__(self, listener: Callable, capture: bool) -> None:
        self.listener, self.capture = listener, capture
        self.captured: dict[str, dict[str, bool]] = {}   # variant -> purpose -> captured

    def __call__(self, message) -> None:
        if isinstance(message, Capture):
            self.captured.setdefault(message.variant, {})[message.purpose] = message.ok
        if isinstance(message, Predictions) and not worker_trains(self.captured.get(message.variant, {})):
            return
        if not (self.capture and isinstance(message, Done)):
            self.listener(message)


def verifier_limits(limits: Limits) -> Limits:
    """The worker's limits, except that the verifier's build phase is loading programs (0.5 GB
    for an FCN, seconds): it gets at least VERIFIER_LOAD_SECONDS whatever the build deadline."""
    return replace(limits, phase_seconds={**limits.phase_seconds,
                                          "build": max(limits.deadline("build"), VERIFIER_LOAD_SECONDS)})


def verifier_readable(request: WorkerRequest, weights: BackboneWeights) -> tuple[Path, ...]:
    """What the verifier may read besides its programs: the VGG16 weights and the evaluation data."""
    return (*((weights.path,) if weights.available else ()),
            *((Path(p) for p in request.training.data.values()) if request.training else ()))


class VerifierStart:
    """The verifier of one grade, started while the worker still works (`start`, at the first
    variant's build) so that its start-up is not waited for; `take` hands it to `verify`. Used
    as a context: whatever was not taken is ended on exit (nothing was captured, an error)."""

    def __init__(self, request: WorkerRequest, weights: BackboneWeights, options: GradeOptions) -> None:
        self.request, self.weights, self.options = request, weights, options
        self.early: EarlyStart | None = None
        self.started = False

    def start(self) -> None:
        if self.started:
            return
        self.started = True
        try:
            self.early = EarlyStart(verifier_limits(self.options.limits), verifier_readable(self.request, self.weights),
                                    self.options.isolation or isolation_available())
        except OSError as exc:   # verify starts it the usual way, and fails there with its reason if it must
            print(f"[segrade] could not start the verifier early ({exc}); it starts after the worker", file=sys.stderr)

    def take(self) -> EarlyStart | None:
        early, self.early = self.early, None
        return early

    def __enter__(self) -> VerifierStart:
        return self

    def __exit__(self, *exc) -> None:
        if self.early is not None:
            self.early.close()
            self.early = None


def verify(run: WorkerRun, request: WorkerRequest, programs: Path, weights: BackboneWeights, options: GradeOptions,
           on_message: Callable | None, early: EarlyStart | None = None) -> None:
    # on_message: the evaluator (it scores the verifier's predictions) and the progress display
    """Run the verifier (grader.verifier) on the programs the worker captured and put what it
    measured in place of the worker's observations; mark every variant with where it was
    measured. The verifier runs in the same sandbox, under the same limits, with only the
    programs (linked into its job folder), the evaluation data and the VGG16 weights readable."""
    targets = []
    for vid, observed in run.variants.items():
        captured = run.captures.get(vid, {})
        check, train = captured.get("check"), captured.get("train")
        program = observed.program
        if check and check.get("ok") and not observed.worker_status:
            entry = next(v for v in request.variants if v.id == vid)
            # File names relative to the verifier's job folder, where the programs are linked.
            targets.append(VerifierVariant(entry, check["programs"],
                                           train["programs"] if train and train.get("ok") else None,
                                           (train or check).get("weights"),
                                           train=verifier_trains(captured, observed.training)))
            if targets[-1].train:   # the verifier trains it: a training the worker claims is not its
                observed = replace(observed, training=None)
            # build_seed: the seed the program was built with, which its VGG fingerprint
            # carries (grader.verifier.provenance); `segrade verify` measures it with the same.
            program = {"measured_in": CAPTURED_PROGRAM, "programs": check["programs"],
                       "capture_seconds": check.get("seconds"), "build_seed": request.seed}
            if train and train.get("ok"):
                program["training_programs"] = train["programs"]
        elif observed.build is not None and observed.build.ok:
            reason = (check or {}).get("error") or "the worker did not capture it"
            program = {"measured_in": STUDENT_PROCESS, "reason": reason}
        if train and not train.get("ok") and (program or {}).get("measured_in") == CAPTURED_PROGRAM:
            program["training_measured_in"] = STUDENT_PROCESS
            program["training_reason"] = train.get("error")
        run.variants[vid] = replace(observed, program=program)
    if not targets:
        if early is not None:
            early.close()
        return
    verifier_request = request.for_verifier(tuple(targets), str(weights.path) if weights.available else None)
    verified = run_worker(programs, verifier_request, limits=verifier_limits(options.limits), isolation=options.isolation,
                          on_message=on_message, readable=verifier_readable(request, weights), entry="grader.verifier",
                          link=True, early=early)
    run.environment["verifier_seconds"] = round(verified.seconds, 2)
    run.log += "\n[--- verifier ---]\n" + verified.log
    for target in targets:
        vid = target.id
        observed, measured = run.variants[vid], verified.variants.get(vid) or Observation(id=vid)
        if measured.worker_status:   # the verifier died or overran on it: that is its status
            message = ("measuring the captured program: " + str(measured.message)
                       .replace("the worker", "the verifier").replace(
                           "student code called sys.exit/os._exit or closed the grader's channel",
                           "it failed (the verifier's part of the worker log says why)"))
            # What the worker saw of how it was built stays; the rest is the verifier's.
            run.variants[vid] = replace(measured.taking(observed, ("mapping", "adapter", "notes")),
                                        message=message, program=observed.program)
            continue
        merged = replace(observed.taking(measured, VERIFIED_KEYS),
                         training=measured.training if measured.training is not None else observed.training)
        if not (measured.build is not None and measured.build.ok):   # refused or not loadable: that is its build
            merged = replace(merged, build=measured.build or BuildStep(ok=False, error="the verifier did not report"))
        fixed = measured.verifier.fixed if measured.verifier is not None else None
        if fixed is not None:   # what the program holds that no training changes (grader.grading.score)
            merged = replace(merged, program={**(merged.program or {}), "fixed": fixed.to_json()})
        run.variants[vid] = merged


def _measured_in(variants) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in variants:
        where = (v.program or {}).get("measured_in")
        if where:
            counts[where] = counts.get(where, 0) + 1
    return counts


@dataclass
class _Memo:
    """A self-check's memory, with what its keys are made of in this run."""

    memory: CheckMemory
    index: SourceIndex               # the submission's sources, by definition
    weights: dict[str, str]          # variant id -> digest of its checkpoint (checkpoint mode)

    def key(self, variant_id: str, classes: list[str] | None) -> str:
        return digest({"context": self.memory.context, "variant": variant_id, "classes": classes,
                       "code": code_digest(self.index, set(classes) if classes else None),
                       "weights": self.weights.get(variant_id)})


def _installed_packages() -> list[str]:
    from importlib.metadata import distributions

    return sorted(f"{d.metadata['Name']}=={d.version}" for d in distributions())


def _open_memory(assignment: Assignment, submission: Submission, profile: Profile | None, options: GradeOptions,
                 pretrained: bool, manifest: dict | None, data: PreparedData | None,
                 checkpoints: dict[str, str], weights_path: Path | None = None) -> _Memo:
    """A self-check's memory, opened under this run's context."""
    import torch

    folder = bands_folder(options.bands_folder)
    context = digest({
        "segrade": __version__, "torch": torch.__version__, "spec": assignment.sha256,
        "profile": profile.sha256 if profile else None, "seed": _seed(profile, options),
        "mode": "checks" if profile is None else "weights" if options.weights else "train",
        "pretrained": pretrained, "device": resolve_device(options.device).type,
        "data": [data.fingerprint, data.evaluation, data.test_source] if data else None,
        "split": options.evaluation_split, "manifest": manifest, "limits": repr(options.limits),
        # What the top-level code freezes builds the model too (not where it is: lines move)
        "freezes": [{k: v for k, v in f.items() if k not in ("where", "code")} for f in submission.freezes],
        "batch_size": options.batch_size, "capture": options.capture,
        "bands": file_digest(*sorted(folder.glob("*.json"))) if profile else None,
        # Installing a package the code imports (or another torchvision) changes what builds
        "packages": _installed_packages(), "python": sys.version,
        "vgg16_weights": str(weights_path) if weights_path else None})
    # A hidden test split drawn afresh each run is never the same evaluation twice.
    fresh = (data is not None and options.evaluation_split == "test" and options.test_seed is None
             and assignment.dataset.kind == "synthetic")
    return _Memo(CheckMemory.open(options.keep_in, context, fresh=fresh),
                 index_sources(submission.root, assignment.model_class_names),
                 {vid: file_digest(submission.root / path) for vid, path in checkpoints.items()})


def _describe_backbone(assignment: Assignment, weights: BackboneWeights, profile: Profile | None,
                       options: GradeOptions) -> str:
    if not assignment.has_family_with_pretrained_backbone():
        return "no ImageNet backbone in this assignment"
    if profile is not None and options.weights:
        return "checkpoint mode: the submission's own trained weights"
    if profile is not None and not profile.pretrained:
        return f"FCN backbones start from random init: the {profile.id!r} profile does not use ImageNet weights"
    return weights.describe()


def _seed(profile: Profile | None, options: GradeOptions) -> int | None:
    if profile is None:
        return None
    return profile.seed if options.seed is None else options.seed


def prepare_evaluation_data(assignment: Assignment, profile: Profile, options: GradeOptions, folder: Path,
                            also_val: bool = False) -> PreparedData:
    """The profile's splits at each family's size; in checkpoint mode, at the assignment's own
    sizes (the student trained there) and without a training split to speak of. `also_val`:
    the final model is scored on the validation split too (grade_on_test_and_val)."""
    if options.weights:
        sizes = {fid: f.input_size for fid, f in assignment.families.items()}
        counts = {"train": 1, "val": 1, "test": profile.test_images}
    else:
        sizes = dict(profile.image_size)
        counts = {"train": profile.train_images, "val": profile.val_images, "test": profile.test_images}
    test_seed = None
    if assignment.dataset.kind == "synthetic":
        test_seed = options.test_seed if options.test_seed is not None else secret_test_seed()
    if options.evaluation_split == "val":
        counts["val"] = max(counts["val"], counts["test"])  # the same images score the curves and the end
        counts["test"] = counts["val"]
        test_seed = None
    return prepare_data(assignment, sizes, counts, folder, test_seed, options.evaluation_split, also_val)


def training_request(assignment: Assignment, profile: Profile, data: PreparedData, options: GradeOptions,
                     pretrained: bool, checkpoints: dict[str, str]) -> TrainingRequest:
    """What the worker needs to train: the profile's settings per family and where the data is."""
    seed = _seed(profile, options)
    config = {fid: FamilyTraining(steps=int(profile.get("steps", fid)), batch_size=int(profile.get("batch_size", fid)),
                                  lr=float(profile.get("lr", fid)),
                                  weight_decay=float(profile.get("weight_decay", fid)),
                                  optimizer=str(profile.get("optimizer", fid)),
                                  eval_every=int(profile.get("eval_every", fid)), seed=seed)
              for fid in assignment.families}
    return TrainingRequest(mode="weights" if options.weights else "train", profile=profile.id, config=config,
                           data=data.worker_paths(), pretrained=pretrained, weights=dict(checkpoints), predict_batch=16,
                           # In a self-check the final score is on the validation images themselves (prepare_data)
                           test_is_val=data.test_is_val)


def random_init_run(options: GradeOptions, assignment: Assignment | None = None,
                    weights_available: bool = False) -> bool:
    """Whether this run starts every backbone from random init: a training profile that does
    not use ImageNet weights, outside checkpoint mode; or --checks-only when the checks build no
    backbone from ImageNet weights (none on hand, or a course with no pretrained family, such as
    a ResNet18 course whose constructors call resnet18(weights=DEFAULT)). Otherwise the quick
    loop would fail a constructor offline that the graded run builds with random-init weights.
    A course with no pretrained family never uses ImageNet weights, whatever its profile says."""
    if options.weights or assignment is None:
        return False
    if not assignment.has_family_with_pretrained_backbone():
        return True   # no family takes ImageNet weights: every build starts from random init
    if options.profile is None:
        return not (weights_available and assignment.has_family_with_pretrained_backbone())
    profile, _ = resolve_profile(assignment, options)
    return not profile.pretrained


def variant_request(assignment: Assignment, variant, pretrained_available: bool) -> VariantRequest:
    """One variant as the worker is asked to build it; `pretrained_available`: ImageNet weights are on hand."""
    family = variant.family
    return VariantRequest(id=variant.id, family=family.id, class_name=variant.class_name,
                          aliases=tuple(variant.aliases), traits=dict(variant.traits),
                          num_classes=assignment.num_classes,
                          pretrained=bool(pretrained_available) if family.pretrained_kwarg else None,
                          input_size=family.input_size, kwargs=dict(variant.kwargs),
                          pretrained_kwarg=family.pretrained_kwarg or "pretrained",
                          num_classes_kwarg=assignment.contract.num_classes_kwarg,
                          probe_size=assignment.probe_size(family.id), in_channels=assignment.dataset.channels)


def probe_request(assignment: Assignment, submission: Submission, weights: BackboneWeights,
                  manifest: dict | None, options: GradeOptions, selected: list | None = None,
                  training: TrainingRequest | None = None) -> WorkerRequest:
    """What the worker is asked to do: import these modules, build every variant (or `selected`),
    and train them when `training` is given."""
    variants = tuple(variant_request(assignment, v, weights.available)
                     for v in (assignment.variants if selected is None else selected))
    # The checks' build uses the training seed, so one build (and one captured program of
    # 0.5 GB for a VGG16 FCN) serves the checks and the training; checks only: seed 0.
    seeds = {family.seed for family in training.config.values()} if training is not None else set()
    seed = seeds.pop() if len(seeds) == 1 else 0
    return WorkerRequest(modules=tuple(ModuleRequest(**m) for m in submission.modules),
                         sys_path=tuple(submission.sys_path), manifest=manifest, variants=variants,
                         freezes=tuple(TopLevelFreeze.from_json(f) for f in submission.freezes),
                         batch_size=options.batch_size, seed=seed, device=options.device, threads=options.threads,
                         cuda_memory_fraction=options.cuda_memory_fraction, training=training,
                         random_init_weights=random_init_run(options, assignment, weights.available))


def check(assignment: Assignment, run: WorkerRun, modules: list[dict[str, Any]],
          options: GradeOptions, selected: list | None = None) -> tuple[VariantResult, ...]:
    """`modules`: the worker's import outcomes, failed ones marked `blocking` (grader.submission.candidates)."""
    failed = [m for m in modules if not m.get("ok")]
    # Files no variant depends on (an EDA script needing cv2) are no cause of a missing variant.
    causes = failed_imports(modules, blocking=True) or failed
    import_errors = tuple(f"{m['path']}: {m['error']}" for m in causes)
    imported_any = any(m.get("ok") for m in modules)
    reference = load_figures(options.bands_folder, assignment.id)
    results = []
    for variant in assignment.variants if selected is None else selected:
        observed = run.variants.get(variant.id) or Observation.unfinished(variant.id, "error",
                                                                          "the worker did not report on it")
        result = check_variant(variant, observed,
                               assignment, batch_size=options.batch_size, import_errors=import_errors,
                               imported_any=imported_any,
                               failed_modules=tuple(failed))
        compared = compare_figures(result.figures, reference.get(variant.id))
        results.append(replace(result, figures={**result.figures, "reference": compared}) if compared else result)
    return tuple(results)


def evaluate(assignment: Assignment, variants: tuple[VariantResult, ...], run: WorkerRun,
             evaluator: Evaluator, split: str = "test", bands: dict | None = None) -> tuple[VariantResult, ...]:
    """Attach what the grading process measured on labels the worker never sees (the hidden
    test split, or the validation split in a self-check), and the `learns` check."""
    label = split_label(split)
    out = []
    for result in variants:
        observed = run.variants.get(result.variant_id)
        training = observed.training if observed is not None else None
        ev = evaluator.variants.get(result.variant_id)
        test = ev.test if ev else None
        untrained = ev.untrained if ev else None
        band = (bands or {}).get(result.variant_id)
        untrained_max = band.untrained_max if band is not None and band.measured else None
        added = [check_learning(training, ev.curves.loss if ev else [], test.miou if test else None,
                                untrained.miou if untrained else None, ev.errors if ev else [], label,
                                untrained_max, band is not None and band.separates_untrained(),
                                band.lower if band is not None and band.measured else None),
                 check_skip_ablation(assignment.variant(result.variant_id), training)]
        added = [c for c in added if c is not None]
        status = result.status
        if status is VariantStatus.PASSED and any(c.status is CheckStatus.FAIL for c in added):
            # A worker that died while training says how; otherwise the model trained wrongly.
            status = WORKER_STATUS.get(training.worker_status if training else None, VariantStatus.FAILED)
        metrics = None
        if test is not None:
            metrics = test.to_json()
            metrics["per_class_iou"] = dict(zip(assignment.class_names, metrics["per_class_iou"]))
            metrics["untrained_miou"] = json_float(untrained.miou) if untrained else None
        info = None if training is None else {**training.summary(), "image_size": ev.size if ev else None}
        out.append(replace(result, status=status, checks=(*result.checks, *added), training=info, metrics=metrics,
                           curves=ev.curves.to_json() if ev else None))
    return tuple(out)


def _samples(assignment: Assignment, data: PreparedData, evaluator: Evaluator,
             kept: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fixed test images of the prediction grids, their labels and each variant's
    predictions (numpy arrays; written as samples.npz beside results.json)."""
    samples: dict[str, Any] = {}
    for family, size in data.sizes.items():
        grid = evaluator.grid(size)
        samples[f"images_{family}"] = grid["images"].numpy()
        samples[f"masks_{family}"] = grid["masks"].numpy()
    for vid, ev in evaluator.variants.items():
        if ev.grid_predictions is not None:
            samples[f"pred_{vid}"] = ev.grid_predictions.numpy()
    for vid, grid in (kept or {}).items():   # reused variants' grids, from the self-check's memory
        if grid is not None:
            samples[f"pred_{vid}"] = grid
    return samples
