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
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from grader.shared.errors import BatchError
from grader.batch.backends.base import Backend, BatchEvents
from grader.batch.job import (  # noqa: F401  (BatchEntry, BatchOutcome, keys: re-exported, the batch's vocabulary)
    DONE_FILE, STAGING, BatchEntry, BatchOutcome, batch_key_parts, find_entries, grade_key, read_done,
    scoring_key, training_spec_sha256,
)
from grader.report.outputs import ReportOptions
from grader.spec import Assignment
from grader.submission.load import fingerprint

LOCK = ".segrade-lock"


SEED_FILE = ".segrade-test-seed"


@dataclass(frozen=True)
class BatchOptions:
    """How a batch runs, beside how each submission is graded (GradeOptions) and what the
    command is told as it goes (BatchEvents)."""

    jobs: int | None = None                 # at most this many jobs at once; None: the backend's default
    manifests: Path | None = None           # the instructor's manifests, DIR/<id>.toml
    report: ReportOptions = ReportOptions()  # each submission's reports: PDF or not, Gradescope visibility
    backend: Backend | None = None          # where the jobs run (grader.batch.backends); None: local processes
    measure_bands: bool = True              # measure the bands as jobs of the batch when none applies
    band_seeds: int = 3                     # reference runs for those bands
    reference: Path | None = None           # the reference solution to measure them from (another course's)
    similarity: Any = None                  # grader.similarity.SimilarityOptions: compare the code, or None
    lms: tuple[Path, str | None] | None = None  # (roster, column): the LMS import files (grader.report.lms)


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


def plan_batch(entries: list[BatchEntry], out: Path, shared: dict[str, Any], scoring: str
               ) -> tuple[list[tuple[BatchEntry, str]], list[BatchOutcome]]:
    """Which entries to grade (with their key) and which are already done with the same key.
    `shared`: batch_key_parts(), read once per batch; `scoring`: the batch's scoring key. Each
    entry to grade carries its content's hash and the scoring key, so that its job neither
    hashes the submission again nor resolves the profile a second time."""
    todo, done = [], []
    for entry in entries:
        entry = replace(entry, sha256=fingerprint(entry.path), scoring_key=scoring)
        key = grade_key(entry, shared)
        previous = read_done(out / entry.target)
        if previous and previous.get("key") == key:
            done.append(BatchOutcome(**{**previous["outcome"], "state": "resumed"}))
        else:
            todo.append((entry, key))
    return todo, done


def kept_programs_warning(out: Path, assignment: Assignment, options, pending: int) -> str | None:
    """A line when OUT's disk may not hold the captured programs the `pending` grades keep
    (OUT/<id>/programs: each variant's program, ~4 bytes a parameter, estimated from the
    reference's parameter counts in figures.json), else None. A warning, not a refusal: a
    submission's models may be smaller or larger than the reference's."""
    import shutil

    from grader.grading.bands import load_figures

    figures = load_figures(options.bands_folder, assignment.id)
    sizes = [(figures.get(v.id) or {}).get("parameters") for v in assignment.variants]
    per_submission = sum(4 * n for n in sizes if isinstance(n, int))
    if not per_submission or not pending:
        return None
    needed, free = per_submission * pending, shutil.disk_usage(out).free
    if needed <= free:
        return None
    return (f"{out} has {free / 1e9:.1f} GB free, and each grade keeps its captured programs ({out}/<id>/programs: "
            f"about {per_submission / 1e9:.1f} GB a submission for models the size of the reference's), so the "
            f"{pending} grade(s) to run may need about {needed / 1e9:.0f} GB. Free some space or grade into a larger "
            "disk (--out DIR): a grade that finds the disk full ends as an error, graded again by the next run")


def grade_batch(folder: str | Path, out: str | Path, assignment: Assignment, options,
                batch: BatchOptions = BatchOptions(), events: BatchEvents = BatchEvents()) -> BatchSummary:
    """Grade every submission of `folder` into `out` (each with GradeOptions `options`), then
    write the class outputs (summary.html, gradebook.csv, index.html; with `batch.similarity`,
    first similarity.html and similarity.csv; with `batch.lms`, the LMS import files of
    grader.report.lms). Never stops on one submission's failure.

    `batch.backend`: where the jobs run (grader.batch.backends: local processes by default, or
    Slurm). `batch.measure_bands`: when the profile's bands do not apply and no --bands folder
    was given, the reference is graded `batch.band_seeds` times as jobs of this batch and every
    submission is scored against the bands measured from them (OUT/bands/<profile>.json;
    grader.batch.bands). Grades whose training key still matches but whose scoring key (bands,
    rubric) changed are rescored from their saved results, not retrained (grader.batch.rescore)."""
    from grader.batch.backends.local import LocalBackend
    from grader.batch.bands import BANDS_DIR, finish_bands, plan_bands
    from grader.report.outputs import write_class_outputs
    from grader.batch.rescore import rescore_batch_folder

    started = time.perf_counter()
    out = Path(out)
    note = events.note
    backend = batch.backend or LocalBackend()
    report = batch.report
    entries = find_entries(folder, batch.manifests)
    if not entries:
        raise BatchError(f"{folder} holds no submission (subfolders, .zip, .py or .ipynb files)")
    backend.prepare(options, note)  # Slurm: the request checked against the partition, before anything else
    device = backend.device(options)
    options = replace(options, device=device)  # the jobs' device, also where the profile is resolved
    out.mkdir(parents=True, exist_ok=True)
    summary = BatchSummary(out)
    with _lock(out):
        backend.clear_staging(out)  # what a killed run left half-written (not what live Slurm tasks write)
        bands = plan_bands(assignment, options, out, device, measure=batch.measure_bands, seeds=batch.band_seeds,
                           reference=batch.reference)
        if bands.measured_here and any(e.id == BANDS_DIR for e in entries):
            raise BatchError(f"a submission is named {BANDS_DIR!r}, which clashes with {out / BANDS_DIR} (the bands "
                             "measured for this batch): rename it, or pass --bands DIR / --no-measure-bands")
        if bands.message:
            note(bands.message)
        options = replace(options, bands_folder=bands.folder)
        shared, scoring = batch_key_parts(assignment, options, device), scoring_key(assignment, options)
        reference_todo, _ = plan_batch(bands.entries, out, shared, scoring)
        todo, resumed = plan_batch(entries, out, shared, scoring)
        summary.outcomes += resumed
        if events.on_plan:
            events.on_plan([e for e, _ in reference_todo + todo], resumed)
        if options.capture:
            warning = kept_programs_warning(out, assignment, options, len(reference_todo) + len(todo))
            if warning:
                note(warning)
        jobs = batch.jobs or backend.default_jobs(device, len(reference_todo) + len(todo))
        options = replace(options, **backend.resources(device, jobs), test_seed=_batch_test_seed(out, assignment))
        reference_ids = {e.id for e in bands.entries}
        for outcome in backend.run(reference_todo + todo, out, assignment, options, report, jobs=jobs, device=device,
                                   events=events):
            if outcome.id not in reference_ids:
                summary.outcomes.append(outcome)
            if events.on_done:
                events.on_done(outcome)
        if bands.entries:
            message = finish_bands(bands, out, assignment, options)
            note(message)
        rescored = rescore_batch_folder(out, assignment, options, [o for o in summary.outcomes if o.state != "error"],
                                        report)
        if rescored:
            note(f"rescored {len(rescored)} grade(s) against the current bands and rubric, without retraining: "
                 + ", ".join(sorted(rescored)))
            summary.outcomes = [rescored.get(o.id, o) for o in summary.outcomes]
        backend.clear_staging(out, finished=True)
        _changes_csv(out, [o.id for o in summary.outcomes if o.state == "graded"], summary)
        if batch.similarity is not None:
            summary.similarity = _similarity(out, batch.similarity, {e.id for e in entries}, assignment, summary)
        if batch.lms is not None:
            from grader.report.lms import write_lms_files

            summary.lms = write_lms_files(out, assignment, batch.lms[0], column=batch.lms[1],
                                          only={e.id for e in entries})
        classes = write_class_outputs(out, assignment, report, reports=False, only={e.id for e in entries})
    order = {e.id: i for i, e in enumerate(entries)}
    summary.outcomes.sort(key=lambda o: order.get(o.id, len(order)))
    summary.index, summary.summary, summary.gradebook = classes.index, classes.summary, classes.gradebook
    summary.problems += classes.problems
    summary.seconds = round(time.perf_counter() - started, 1)
    return summary


def _changes_csv(out: Path, regraded: list[str], summary: BatchSummary) -> None:
    """changes.csv: what this run's regrades changed (grader.batch.changes)."""
    from grader.batch.changes import write_changes_csv

    try:
        write_changes_csv(out, regraded)
    except Exception as exc:  # noqa: BLE001 (the grades are written; say what is missing)
        summary.problems.append(f"changes.csv: {type(exc).__name__}: {exc}")


def _similarity(out: Path, options, ids: set[str], assignment: Assignment, summary: BatchSummary):
    """Code similarity across the batch (grader.similarity); a failure of it is a problem of
    the batch's outputs, never a lost grade."""
    from grader.report.similarity import write_similarity
    from grader.similarity import run_similarity

    try:
        return write_similarity(out, run_similarity(out, options, only=ids, assignment=assignment), options,
                                assignment)
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
