"""A folder of submissions, graded in parallel and resumably (`segrade grade`).

Each entry of the folder (a subfolder, a .zip, a .py file or a notebook) is one
submission; its id is the entry's name. Each submission is graded by its own job
process (which starts its own sandboxed worker), at most `jobs` at a time, and its
whole output is written to a staging folder first:

    results.json, samples.npz, report.html, report.pdf, results_gradescope.json
    (or error.json and an error report when it cannot be graded at all),
    then done.json holding the grade's key,

and only then renamed to OUT/<id>. So an OUT/<id> with a done.json is complete, and a
batch killed at any moment (even with SIGKILL: jobs and workers die with their parent)
leaves nothing half-written behind. A re-run skips every submission whose done.json
holds the key it would grade with now: a hash of the submission's content, its
manifest, the assignment spec, the profile, the bands, the options that change a grade
and segrade's version. Changing a submission or the spec regrades exactly what changed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import multiprocessing
import os
import shutil
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from grader import __version__
from grader.results import CheckStatus
from grader.spec import Assignment

SUBMISSION_SUFFIXES = (".zip", ".py", ".ipynb")
DONE_FILE = "done.json"
STAGING = ".segrade-staging"
LOCK = ".segrade-lock"
SEED_FILE = ".segrade-test-seed"
GB = 1024**3


class BatchError(Exception):
    """The batch cannot start (no submissions, output folder in use...); the message says what to do."""


@dataclass(frozen=True)
class BatchEntry:
    id: str
    path: Path
    manifest: Path | None = None  # the instructor's manifest for it (--manifests DIR/<id>.toml)
    seed: int | None = None       # a training seed of its own (the reference's runs that measure bands)
    folder: str | None = None     # where its output goes under OUT (default: its id)

    @property
    def target(self) -> str:
        return self.folder or self.id


@dataclass
class BatchOutcome:
    """How one submission of the batch ended, for the progress display and the summary table."""

    id: str
    state: str                       # "graded", "resumed" (done before with the same key) or "error"
    ok: bool = False                 # every variant passed
    passed_variants: int | None = None
    total_variants: int | None = None
    points: float | None = None
    automatic_max: float | None = None
    seconds: float = 0.0
    message: str = ""                # why it could not be graded, or the first problem
    status: str = ""                 # for a grade that ended early: timeout, oom, crashed or error
    note: str = ""                   # about where it ran (e.g. a Slurm node without bubblewrap)


@dataclass
class BatchSummary:
    out: Path
    outcomes: list[BatchOutcome] = field(default_factory=list)
    index: Path | None = None
    summary: Path | None = None
    gradebook: Path | None = None
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    similarity: Any = None           # grader.similarity.SimilarityResult, when it ran
    lms: Any = None                  # grader.report.lms.LmsFiles, with a roster

    @property
    def errors(self) -> list[BatchOutcome]:
        return [o for o in self.outcomes if o.state == "error"]


def find_entries(folder: str | Path, manifests: str | Path | None = None) -> list[BatchEntry]:
    """The submissions in `folder`, sorted by id. Hidden entries, `_`-prefixed ones and
    plain files that are not .zip/.py/.ipynb (a README, a class list) are not submissions."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BatchError(f"{folder} is not a folder: segrade grade takes a folder holding one entry per submission")
    manifest_dir = Path(manifests) if manifests else None
    if manifest_dir is not None and not manifest_dir.is_dir():
        raise BatchError(f"--manifests {manifest_dir} is not a folder")
    entries = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith((".", "_")) or (path.is_file() and path.suffix.lower() not in SUBMISSION_SUFFIXES):
            continue
        sid = path.name if path.is_dir() else path.stem
        manifest = None
        if manifest_dir is not None:
            for candidate in (manifest_dir / f"{sid}.toml", manifest_dir / sid / "segrade.toml"):
                if candidate.is_file():
                    manifest = candidate
                    break
        entries.append(BatchEntry(sid, path, manifest))
    ids = [e.id for e in entries]
    clashes = sorted({i for i in ids if ids.count(i) > 1})
    if clashes:
        raise BatchError(f"two entries would share the id {clashes[0]!r} (e.g. {clashes[0]}/ and {clashes[0]}.zip): "
                         "rename one of them")
    return entries


def batch_key_parts(assignment: Assignment, options, device: str) -> dict[str, Any]:
    """What every grade of the batch depends on, whatever the submission (read once): what
    needs training again when it changes. The bands and the rubric's marks are not in it:
    they only change the points (`scoring_key`), and a rescore recomputes those."""
    from grader.pipeline import resolve_profile
    from grader.weights import find_vgg16_weights

    profile, _ = resolve_profile(assignment, options)
    return {
        "segrade": __version__,
        "spec": training_spec_sha256(assignment),
        "profile": profile.sha256 if profile else None,
        "device": device,
        "imagenet_weights": find_vgg16_weights(options.vgg16_weights).available,
        "options": {k: getattr(options, k) for k in ("seed", "weights", "evaluation_split", "batch_size")},
    }


def training_spec_sha256(assignment: Assignment) -> str:
    """The spec's fingerprint without its rubric (marks, shares, prompts): what a grade's
    training and checks depend on. Falls back to the whole file's sha256."""
    import tomllib

    try:
        data = tomllib.loads(assignment.path.read_text())
    except (OSError, ValueError):
        return assignment.sha256
    data.pop("rubric", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def scoring_key(assignment: Assignment, options) -> str:
    """What the points depend on beyond the saved results: the bands file of the profile
    (from the folder the grade reads) and the spec's rubric. A done.json with the same
    training key but another scoring key is rescored, not regraded."""
    from grader.bands import bands_path
    from grader.pipeline import resolve_profile

    profile, _ = resolve_profile(assignment, options)
    band_file = bands_path(profile.id, options.bands_folder) if profile else None
    parts = {"bands": hashlib.sha256(band_file.read_bytes()).hexdigest() if band_file and band_file.is_file() else None,
             "spec": assignment.sha256}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def grade_key(entry: BatchEntry, shared: dict[str, Any]) -> str:
    """What a grade depends on, hashed: a re-run with the same key can reuse the grade.
    `shared`: batch_key_parts()."""
    from grader.load import fingerprint

    parts = {**shared, "submission": fingerprint(entry.path),
             "manifest": hashlib.sha256(entry.manifest.read_bytes()).hexdigest() if entry.manifest else None}
    if entry.seed is not None:
        parts["seed"] = entry.seed
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def default_jobs(device: str) -> int:
    """As many jobs as the machine affords. On a CPU, jobs split the cores: torch already
    uses every core for one model, so two jobs on two cores are no faster (benchmarks/
    bench_batch.py), and each job needs its worker's memory. On CUDA, two jobs per GPU
    share it, each capped to its part of the GPU's memory."""
    from grader.sandbox import Limits

    cores = os.cpu_count() or 1
    by_memory = max(1, int(_total_memory_gb() // (Limits().memory_gb / 2 + 2)))
    if device.startswith("cuda"):
        import torch

        return max(1, min(2 * torch.cuda.device_count(), cores, by_memory))
    return max(1, min(cores // 4, by_memory))


def _total_memory_gb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB
    except (ValueError, OSError):
        return 8.0


def plan_batch(entries: list[BatchEntry], out: Path, assignment: Assignment, options, device: str
               ) -> tuple[list[tuple[BatchEntry, str]], list[BatchOutcome]]:
    """Which entries to grade (with their key) and which are already done with the same key."""
    todo, done = [], []
    shared = batch_key_parts(assignment, options, device)
    for entry in entries:
        key = grade_key(entry, shared)
        previous = read_done(out / entry.target)
        if previous and previous.get("key") == key:
            done.append(BatchOutcome(**{**previous["outcome"], "state": "resumed"}))
        else:
            todo.append((entry, key))
    return todo, done


def read_done(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / DONE_FILE).read_text())
        BatchOutcome(**data["outcome"])  # the fields still match this version
        return data
    except (OSError, ValueError, KeyError, TypeError):
        return None


def grade_batch(folder: str | Path, out: str | Path, assignment: Assignment, options, *, jobs: int | None = None,
                manifests: str | Path | None = None, pdf: bool = True, visibility: str = "after_published",
                backend=None, measure_bands: bool = True, band_seeds: int = 3, reference: str | Path | None = None,
                on_plan: Callable[[list[BatchEntry], list[BatchOutcome]], None] | None = None,
                on_start: Callable[[BatchEntry], None] | None = None,
                on_done: Callable[[BatchOutcome], None] | None = None,
                on_note: Callable[[str], None] | None = None, similarity=None,
                lms: tuple[Path, str | None] | None = None) -> BatchSummary:
    """Grade every submission of `folder` into `out`, then write the class outputs
    (summary.html, gradebook.csv, index.html; with `similarity`, a
    grader.similarity.SimilarityOptions, first similarity.html and similarity.csv; with `lms`,
    (roster, column), the LMS import files of grader.report.lms). Never stops on one
    submission's failure.

    `backend`: where the jobs run (grader.backends: local processes by default, or Slurm).
    `measure_bands`: when the profile's bands do not apply and no --bands folder was given,
    the reference is graded K times as jobs of this batch and every submission is scored
    against the bands measured from them (OUT/bands/<profile>.json; grader.batch_bands).
    Grades whose training key still matches but whose scoring key (bands, rubric) changed
    are rescored from their saved results, not retrained (grader.rescore)."""
    from grader.backends import LocalBackend
    from grader.batch_bands import BANDS_DIR, finish_bands, plan_bands
    from grader.report.outputs import write_class_outputs
    from grader.rescore import rescore_batch_folder

    started = time.perf_counter()
    out = Path(out)
    note = on_note or (lambda message: None)
    backend = backend or LocalBackend()
    entries = find_entries(folder, manifests)
    if not entries:
        raise BatchError(f"{folder} holds no submission (subfolders, .zip, .py or .ipynb files)")
    device = backend.device(options)
    options = replace(options, device=device)  # the jobs' device, also where the profile is resolved
    out.mkdir(parents=True, exist_ok=True)
    summary = BatchSummary(out)
    with _lock(out):
        backend.clear_staging(out)  # what a killed run left half-written (not what live Slurm tasks write)
        bands = plan_bands(assignment, options, out, device, measure=measure_bands, seeds=band_seeds,
                           reference=reference)
        if bands.measured_here and any(e.id == BANDS_DIR for e in entries):
            raise BatchError(f"a submission is named {BANDS_DIR!r}, which clashes with {out / BANDS_DIR} (the bands "
                             "measured for this batch): rename it, or pass --bands DIR / --no-measure-bands")
        if bands.message:
            note(bands.message)
        options = replace(options, bands_folder=bands.folder)
        reference_todo, _ = plan_batch(bands.entries, out, assignment, options, device)
        todo, resumed = plan_batch(entries, out, assignment, options, device)
        summary.outcomes += resumed
        if on_plan:
            on_plan([e for e, _ in reference_todo + todo], resumed)
        jobs = jobs or backend.default_jobs(device, len(reference_todo) + len(todo))
        options = replace(options, **backend.resources(device, jobs), test_seed=_batch_test_seed(out, assignment))
        reference_ids = {e.id for e in bands.entries}
        for outcome in backend.run(reference_todo + todo, out, assignment, options, jobs=jobs, device=device, pdf=pdf,
                                   visibility=visibility, on_start=on_start, on_note=note):
            if outcome.id not in reference_ids:
                summary.outcomes.append(outcome)
            if on_done:
                on_done(outcome)
        if bands.entries:
            message = finish_bands(bands, out, assignment, options)
            note(message)
        rescored = rescore_batch_folder(out, assignment, options, [o for o in summary.outcomes if o.state != "error"],
                                        pdf=pdf, visibility=visibility, batch_bands=bands.measured_here)
        if rescored:
            note(f"rescored {len(rescored)} grade(s) against the current bands and rubric, without retraining: "
                 + ", ".join(sorted(rescored)))
            summary.outcomes = [rescored.get(o.id, o) for o in summary.outcomes]
        backend.clear_staging(out, finished=True)
        _changes_csv(out, [o.id for o in summary.outcomes if o.state == "graded"], summary)
        if similarity is not None:
            summary.similarity = _similarity(out, similarity, {e.id for e in entries}, assignment, summary)
        if lms is not None:
            from grader.report.lms import write_lms_files

            summary.lms = write_lms_files(out, assignment, lms[0], column=lms[1], only={e.id for e in entries})
        classes = write_class_outputs(out, assignment, pdf=pdf, visibility=visibility, reports=False,
                                      only={e.id for e in entries})
    order = {e.id: i for i, e in enumerate(entries)}
    summary.outcomes.sort(key=lambda o: order.get(o.id, len(order)))
    summary.index, summary.summary, summary.gradebook = classes.index, classes.summary, classes.gradebook
    summary.problems += classes.problems
    summary.seconds = round(time.perf_counter() - started, 1)
    return summary


def _changes_csv(out: Path, regraded: list[str], summary: BatchSummary) -> None:
    """changes.csv: what this run's regrades changed (grader.changes)."""
    from grader.changes import write_changes_csv

    try:
        write_changes_csv(out, regraded)
    except Exception as exc:  # noqa: BLE001 (the grades are written; say what is missing)
        summary.problems.append(f"changes.csv: {type(exc).__name__}: {exc}")


def _similarity(out: Path, options, ids: set[str], assignment: Assignment, summary: BatchSummary):
    """Code similarity across the batch (grader.similarity); a failure of it is a problem of
    the batch's outputs, never a lost grade."""
    from grader.similarity import run_similarity

    try:
        return run_similarity(out, options, only=ids, assignment=assignment)
    except Exception as exc:  # noqa: BLE001 (the grades are written; say what is missing)
        summary.problems.append(f"similarity: {type(exc).__name__}: {exc}")
        return None


def _batch_test_seed(out: Path, assignment: Assignment) -> int | None:
    """One synthetic test split for every submission of the batch, also across re-runs:
    SEGRADE_TEST_SEED if set, else a secret seed drawn once and kept in DIR/.segrade-test-seed
    (readable by its owner only; never shown to a worker)."""
    from grader.data.sources import TEST_SEED_ENV, secret_test_seed

    if assignment.dataset.kind != "synthetic" or TEST_SEED_ENV in os.environ:
        return None  # real data has its own test split; the variable is read by each job
    path = out / SEED_FILE
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        seed = secret_test_seed()
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as f:
            f.write(f"{seed}\n")
        return seed


def _job_resources(device: str, jobs: int) -> dict[str, Any]:
    """Each job's share: CPU threads, and on CUDA its part of the GPU's memory."""
    share: dict[str, Any] = {"threads": max(1, (os.cpu_count() or 1) // jobs)}
    if device.startswith("cuda"):
        import torch

        per_gpu = -(-jobs // max(1, torch.cuda.device_count()))
        share["cuda_memory_fraction"] = round(0.95 / per_gpu, 3)
    return share


def _run_jobs(todo, out: Path, assignment: Assignment, options, jobs: int, device: str, pdf: bool,
              visibility: str, on_start):
    """One process per submission, at most `jobs` at a time; yields outcomes as they end.
    A job that dies without reporting (a crash of the grading side itself) becomes an
    error outcome: the batch goes on."""
    context = multiprocessing.get_context("spawn")
    gpus = []
    if device.startswith("cuda"):
        import torch

        gpus = [f"cuda:{i}" for i in range(max(1, torch.cuda.device_count()))]
    pending = list(todo)
    running: dict[Any, tuple[Any, Any, BatchEntry, float, str | None]] = {}
    while pending or running:
        while pending and len(running) < jobs:
            entry, key = pending.pop(0)
            busy = [job[4] for job in running.values()]
            gpu = min(gpus, key=busy.count) if gpus else None
            receive, send = context.Pipe(duplex=False)
            job_options = replace(options, device=gpu) if gpu else options
            process = context.Process(target=_job, name=f"segrade-{entry.id}",
                                      args=(send, entry, key, out, assignment, job_options, pdf, visibility))
            process.start()
            send.close()
            running[process.sentinel] = (process, receive, entry, time.perf_counter(), gpu)
            if on_start:
                on_start(entry)
        for sentinel in wait(list(running)):
            process, receive, entry, began, _ = running.pop(sentinel)
            process.join()
            try:
                outcome = receive.recv() if receive.poll() else None
            except (EOFError, OSError):
                outcome = None
            receive.close()
            if outcome is None:
                why = f"the grading job for {entry.id} died (exit code {process.exitcode}) before reporting"
                outcome = BatchOutcome(entry.id, "error", seconds=round(time.perf_counter() - began, 1), message=why)
                try:
                    _write_error_folder(out, entry, None, why, outcome, assignment, pdf, visibility)
                except Exception as exc:  # noqa: BLE001 (the batch goes on; the summary still lists it)
                    outcome.message += f" (and its error report could not be written: {exc})"
            yield outcome


def run_local_jobs(todo, out: Path, assignment: Assignment, options, *, jobs: int, device: str, pdf: bool,
                   visibility: str, on_start=None, on_note=None):
    """The local backend (grader.backends.LocalBackend): job processes on this machine."""
    return _run_jobs(todo, out, assignment, options, jobs, device, pdf, visibility, on_start)


def _job(connection, entry: BatchEntry, key: str, out: Path, assignment: Assignment, options, pdf: bool,
         visibility: str) -> None:
    """In the job process: grade one submission into staging, then move it into place."""
    from grader.sandbox import die_with_parent

    die_with_parent()
    if options.threads:
        import torch

        torch.set_num_threads(options.threads)
    connection.send(grade_entry(entry, key, out, assignment, options, pdf, visibility))
    connection.close()


def grade_entry(entry: BatchEntry, key: str, out: Path, assignment: Assignment, options, pdf: bool = True,
                visibility: str = "after_published", note: str = "") -> BatchOutcome:
    """Grade one submission and write its folder OUT/<id> (through staging). `note`: about
    where it ran, kept in its outcome (e.g. a Slurm node where bubblewrap cannot run)."""
    from grader.load import SubmissionError
    from grader.pipeline import grade_submission
    from grader.records import write_results
    from grader.report.outputs import write_submission_report

    started = time.perf_counter()
    options = replace(options, manifest=str(entry.manifest) if entry.manifest else None)
    if entry.seed is not None:
        options = replace(options, seed=entry.seed)
    try:
        result = grade_submission(entry.path, assignment, options, submission_id=entry.id)
    except SubmissionError as exc:  # the submission itself: the same content fails the same way
        outcome = BatchOutcome(entry.id, "error", seconds=round(time.perf_counter() - started, 1), message=str(exc))
        _write_error_folder(out, entry, key, str(exc), outcome, assignment, pdf, visibility)
        return outcome
    except Exception as exc:  # a failure on the grading side: reported, and retried by a re-run
        why = f"segrade failed while grading {entry.id}: {type(exc).__name__}: {exc}"
        outcome = BatchOutcome(entry.id, "error", seconds=round(time.perf_counter() - started, 1), message=why)
        _write_error_folder(out, entry, None, why, outcome, assignment, pdf, visibility,
                            detail=traceback.format_exc())
        return outcome
    if note:  # where it ran weakens what the report's isolation line says: say it there too
        result.environment["isolation"] = f"{result.environment.get('isolation')} ({note})"
    grade = result.grade
    first_problem = next((f"{v.variant_id}: {failed.headline}" for v in result.variants
                          if (failed := v.first_check(CheckStatus.FAIL))), "")
    outcome = BatchOutcome(entry.id, "graded", ok=result.ok, passed_variants=grade.passed_variants,
                           total_variants=grade.total_variants, points=grade.total, automatic_max=grade.automatic_max,
                           message=first_problem, note=note)
    staging = _staging(out, entry)
    write_results(result, staging)
    _keep_code(entry, staging)
    _note_changes(out / entry.id, staging)
    write_submission_report(staging, assignment, pdf=pdf, visibility=visibility)
    outcome.seconds = round(time.perf_counter() - started, 1)
    _commit(staging, out / entry.target, key, outcome, scoring=scoring_key(assignment, options))
    return outcome


def _keep_code(entry: BatchEntry, staging: Path) -> None:
    """OUT/<id>/code/: the code segrade extracted (notebooks converted, top-level code left
    out), which the class's similarity compares. Cannot fail a grade."""
    from grader.similarity.code import CODE_DIR, cache_tokens, extract_code

    try:
        extract_code(entry.path, staging / CODE_DIR)
        cache_tokens(staging / CODE_DIR)
    except Exception:  # noqa: BLE001 (the grade stands; similarity says this code is missing)
        shutil.rmtree(staging / CODE_DIR, ignore_errors=True)


def _note_changes(previous: Path, staging: Path) -> None:
    """changes.json when a previous grade is replaced (grader.changes): what changed and by how
    many points. Cannot fail a grade."""
    from grader.changes import note_changes

    try:
        note_changes(previous, staging)
    except Exception:  # noqa: BLE001 (the grade stands without its comparison)
        pass


def _staging(out: Path, entry: BatchEntry) -> Path:
    folder = out / STAGING / f"{entry.target.replace('/', '-')}.{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    return folder


def _commit(staging: Path, final: Path, key: str | None, outcome: BatchOutcome, scoring: str | None = None) -> None:
    """done.json last (only with a key: without one, a re-run grades it again), then the
    rename: OUT/<id> is either the old complete folder, the new complete one, or (killed
    between the two renames) absent and regraded next time."""
    if key is not None:
        done = {"key": key, "scoring_key": scoring, "outcome": asdict(outcome), "segrade": __version__}
        (staging / DONE_FILE).write_text(json.dumps(done, indent=1) + "\n")
    final.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if final.exists():
        old = staging.parent / f"{final.name}.old.{uuid.uuid4().hex[:8]}"
        final.rename(old)
    staging.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_error_folder(out: Path, entry: BatchEntry, key: str | None, why: str, outcome: BatchOutcome,
                        assignment: Assignment, pdf: bool, visibility: str, *, detail: str = "",
                        extra: dict[str, Any] | None = None) -> None:
    """OUT/<id> for a submission that could not be graded: error.json, its own report and a
    Gradescope file with the message. With the grade's `key` (the same content would fail the
    same way) a re-run skips it; with None (a grading-side failure) a re-run tries again."""
    from grader.records import ErrorRecord, write_error
    from grader.report.outputs import write_error_report

    staging = _staging(out, entry)
    record = ErrorRecord(entry.id, str(entry.path.resolve()), assignment.id, __version__, why, detail,
                         **(extra or {}))
    write_error(staging, record)
    write_error_report(staging, record, assignment, pdf=pdf, visibility=visibility)
    _commit(staging, out / entry.target, key, outcome)


class _lock:
    """One batch at a time per output folder (released by the kernel if the process dies)."""

    def __init__(self, out: Path) -> None:
        self.path = out / LOCK

    def __enter__(self):
        self.file = open(self.path, "w")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.close()
            raise BatchError(f"another segrade grade is writing to {self.path.parent}: wait for it to finish, "
                             "or use another --out folder") from None
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()
