"""A batch's unit of work: one submission of the folder, the key its grade depends on, and
the job that grades it and commits OUT/<id> (grader.batch.grade runs many; grader.batch.backends says
where).

Each entry of the folder (a subfolder, a .zip, a .py file or a notebook) is one
submission; its id is the entry's name. Its whole output is written to a staging folder
first:

    results.json, samples.npz, report.html, report.pdf, results_gradescope.json, code/
    (or error.json and an error report when it cannot be graded at all),
    then done.json holding the grade's keys,

and only then renamed to OUT/<id>. So an OUT/<id> with a done.json is complete, whatever ran
the job (a local process, a Slurm task) and whenever it was killed. The training key (`grade_key`:
the submission's content, its manifest, the spec without its rubric, the profile, the options
that change training, segrade's version) says whether a saved grade can be reused; the
scoring key (`scoring_key`: bands and rubric) whether it must be rescored (grader.batch.rescore).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import traceback
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from grader import __version__
from grader.shared.errors import BatchError
from grader.grading.progress import Throttled, read_progress, write_progress
from grader.records.view import first_problem_line
from grader.report.outputs import ReportOptions
from grader.spec import Assignment

DONE_FILE = "done.json"


STAGING = ".segrade-staging"
PROGRESS_DIR = "progress"  # under STAGING: one small file per running job
VAL_FOLDER = "val"         # under OUT/<target>: the validation split's results of an `also_val` entry


SUBMISSION_SUFFIXES = (".zip", ".py", ".ipynb")


@dataclass(frozen=True)
class BatchEntry:
    id: str
    path: Path
    manifest: Path | None = None  # the instructor's manifest for it (--manifests DIR/<id>.toml)
    seed: int | None = None       # a training seed of its own (the reference's runs that measure bands)
    folder: str | None = None     # where its output goes under OUT (default: its id)
    # The reference's band runs on real data: the same training also scored on the validation
    # split (grader.grading.pipeline.grade_on_test_and_val), written to OUT/<target>/val/.
    also_val: bool = False
    # Set by the batch's plan (grader.batch.grade.plan_batch), so that a job does not work them out again:
    sha256: str | None = None       # the submission's content hash (grader.submission.load.fingerprint)
    scoring_key: str | None = None  # the batch's scoring key (bands and rubric, `scoring_key`)

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
    from grader.grading.pipeline import resolve_profile
    from grader.grading.weights import find_vgg16_weights

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
    (from the folder the grade reads), the spec's rubric and --trust-student-process. A done.json with the same
    training key but another scoring key is rescored, not regraded."""
    from grader.grading.bands import bands_path
    from grader.grading.pipeline import resolve_profile

    profile, _ = resolve_profile(assignment, options)
    band_file = bands_path(profile.id, options.bands_folder) if profile else None
    parts = {"bands": hashlib.sha256(band_file.read_bytes()).hexdigest() if band_file and band_file.is_file() else None,
             "spec": assignment.sha256, "trust_student_process": options.trust_student_process}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def grade_key(entry: BatchEntry, shared: dict[str, Any]) -> str:
    """What a grade depends on, hashed: a re-run with the same key can reuse the grade.
    `shared`: batch_key_parts()."""
    from grader.submission.load import fingerprint

    parts = {**shared, "submission": entry.sha256 or fingerprint(entry.path),
             "manifest": hashlib.sha256(entry.manifest.read_bytes()).hexdigest() if entry.manifest else None}
    if entry.seed is not None:
        parts["seed"] = entry.seed
    if entry.also_val:
        parts["also_val"] = True
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def read_done(folder: Path) -> dict[str, Any] | None:
    """done.json of a committed folder: {"key", "scoring_key", "outcome", "segrade"}, or None
    when there is none or it is of another version's shape."""
    try:
        data = json.loads((folder / DONE_FILE).read_text())
        BatchOutcome(**data["outcome"])  # the fields still match this version
        return data
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_done(folder: Path, key: str, outcome: BatchOutcome, scoring: str | None) -> Path:
    """done.json: the grade's training key, its scoring key and outcome. Written last by a
    job (grader.batch.job.commit) and rewritten by a rescore (grader.batch.rescore): the one
    writer of the file."""
    from grader.records.files import write_atomic

    done = {"key": key, "scoring_key": scoring, "outcome": asdict(outcome), "segrade": __version__}
    return write_atomic(folder / DONE_FILE, json.dumps(done, indent=1) + "\n")


def grade_entry(entry: BatchEntry, key: str, out: Path, assignment: Assignment, options, report: ReportOptions,
                note: str = "") -> BatchOutcome:
    """Grade one submission and write its folder OUT/<id> (through staging). `note`: about
    where it ran, kept in its outcome (e.g. a Slurm node where bubblewrap cannot run)."""
    from grader.submission.load import SubmissionError
    from grader.grading.pipeline import grade_on_test_and_val, grade_submission
    from grader.records.files import write_results
    from grader.report.outputs import write_submission_report

    started = time.perf_counter()
    options = replace(options, manifest=str(entry.manifest) if entry.manifest else None)
    if entry.seed is not None:
        options = replace(options, seed=entry.seed)
    # The captured programs that were graded go into the submission's folder (OUT/<id>/programs)
    staging = staging_folder(out, entry)
    if options.capture:
        options = replace(options, programs_folder=staging / "programs")
    try:
        # Where it has got to, for the submitting command's display (grader.grading.progress).
        on_progress = Throttled(lambda state: write_progress(progress_file(out, entry), state))
        grade_it = grade_on_test_and_val if entry.also_val else grade_submission
        results = grade_it(entry.path, assignment, options, entry.id, on_progress, sha256=entry.sha256,
                           on_prepared=lambda submission: _keep_code(submission, staging))
        result, val = results if entry.also_val else (results, None)
    except SubmissionError as exc:  # the submission itself: the same content fails the same way
        shutil.rmtree(staging, ignore_errors=True)
        outcome = BatchOutcome(entry.id, "error", seconds=round(time.perf_counter() - started, 1), message=str(exc))
        write_error_folder(out, entry, key, str(exc), outcome, assignment, report)
        return outcome
    except Exception as exc:  # a failure on the grading side: reported, and retried by a re-run
        shutil.rmtree(staging, ignore_errors=True)
        why = f"segrade failed while grading {entry.id}: {type(exc).__name__}: {exc}"
        outcome = BatchOutcome(entry.id, "error", seconds=round(time.perf_counter() - started, 1), message=why)
        write_error_folder(out, entry, None, why, outcome, assignment, report, detail=traceback.format_exc())
        return outcome
    if note:  # where it ran weakens what the report's isolation line says: say it there too
        result.environment["isolation"] = f"{result.environment.get('isolation')} ({note})"
    grade = result.grade
    outcome = BatchOutcome(entry.id, "graded", ok=result.ok, passed_variants=grade.passed_variants,
                           total_variants=grade.total_variants, points=grade.total, automatic_max=grade.automatic_max,
                           message=first_problem_line(result), note=note)
    write_results(result, staging)
    if val is not None:
        write_results(val, staging / VAL_FOLDER)
    changes = _note_changes(out / entry.id, result, staging)
    # The worker has ended: the job's share of the cores draws the report's charts, from the
    # record in memory.
    write_submission_report(staging, assignment, report, result=result, changes=changes,
                            workers=options.threads or 1)
    outcome.seconds = round(time.perf_counter() - started, 1)
    commit(staging, out / entry.target, key, outcome, scoring=entry.scoring_key or scoring_key(assignment, options))
    return outcome


def _keep_code(submission, staging: Path) -> None:
    """OUT/<id>/code/: the code segrade extracted (notebooks converted, top-level code left
    out), copied from the prepared submission the grade runs on (prepared once), which the
    class's similarity compares. Cannot fail a grade."""
    from grader.similarity.code import CODE_DIR, cache_tokens, copy_code

    try:
        copy_code(submission.root, staging / CODE_DIR)
        cache_tokens(staging / CODE_DIR)
    except Exception:  # noqa: BLE001 (the grade stands; similarity says this code is missing)
        shutil.rmtree(staging / CODE_DIR, ignore_errors=True)


def _note_changes(previous: Path, result, staging: Path) -> dict[str, Any] | None:
    """changes.json when a previous grade is replaced (grader.batch.changes): what changed and by how
    many points. Cannot fail a grade."""
    from grader.batch.changes import note_changes

    try:
        return note_changes(previous, result, staging)
    except Exception:  # noqa: BLE001 (the grade stands without its comparison)
        return None


def progress_file(out: Path, entry: BatchEntry) -> Path:
    """Where a running job says how far it has got (read by the backends for the display)."""
    return out / STAGING / PROGRESS_DIR / f"{entry.target.replace('/', '-')}.json"


def read_entry_progress(out: Path, entry: BatchEntry):
    """The running job's last progress (grader.grading.progress.ProgressState), or None."""
    return read_progress(progress_file(out, entry))


def staging_folder(out: Path, entry: BatchEntry) -> Path:
    folder = out / STAGING / f"{entry.target.replace('/', '-')}.{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    return folder


def commit(staging: Path, final: Path, key: str | None, outcome: BatchOutcome, scoring: str | None = None) -> None:
    """done.json last (only with a key: without one, a re-run grades it again), then the
    rename: OUT/<id> is either the old complete folder, the new complete one, or (killed
    between the two renames) absent and regraded next time."""
    if key is not None:
        write_done(staging, key, outcome, scoring)
    final.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if final.exists():
        old = staging.parent / f"{final.name}.old.{uuid.uuid4().hex[:8]}"
        final.rename(old)
    staging.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_error_folder(out: Path, entry: BatchEntry, key: str | None, why: str, outcome: BatchOutcome,
                       assignment: Assignment, report: ReportOptions, *, detail: str = "",
                       extra: dict[str, Any] | None = None) -> None:
    """OUT/<id> for a submission that could not be graded: error.json, its own report and a
    Gradescope file with the message. With the grade's `key` (the same content would fail the
    same way) a re-run skips it; with None (a grading-side failure) a re-run tries again."""
    from grader.records.files import ErrorRecord, write_error
    from grader.report.outputs import write_error_report

    staging = staging_folder(out, entry)
    record = ErrorRecord(entry.id, str(entry.path.resolve()), assignment.id, __version__, why, detail,
                         **(extra or {}))
    write_error(staging, record)
    write_error_report(staging, record, assignment, report)
    commit(staging, out / entry.target, key, outcome)
