"""Rescoring without retraining: points recomputed from saved results (`segrade rescore OUT`).

A grade's points depend on its saved measurements (checks, test mIoU) and on two things
that can change afterwards without any retraining: the reference bands and the rubric's
marks. `rescore_results` rebuilds the saved variants, scores them again with
`grader.grading.score.score` against the bands that apply now, and returns the updated results;
`rescore_folder` rewrites results.json, the reports, the Gradescope file and done.json's
scoring key. `segrade grade` calls `rescore_batch_folder` after its jobs, so a band or
rubric change rescores instead of regrading (done.json holds a training key and a scoring
key: grader.batch.grade).

What cannot be rescored (and needs `segrade grade` again): results graded under another
version of the profile, or for other variants than the spec's now.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from grader.records.files import ResultsError, read_results, results_folders, write_results
from grader.records.results import SubmissionResult
from grader.report.outputs import ReportOptions
from grader.spec import Assignment


class RescoreError(ValueError):
    """These saved results cannot be rescored; the message says why and what to do."""


def bands_note(bands_folder: Path | None, profile_id: str | None) -> str:
    """One sentence when the bands were measured for this batch (OUT/bands), else ''."""
    from grader.grading.bands import bands_path, read_bands_file

    if bands_folder is None or profile_id is None:
        return ""
    path = bands_path(profile_id, bands_folder)
    data = read_bands_file(path)
    for entry in (data.get("backbones") or {}).values():
        prov = (entry or {}).get("provenance") or {}
        if entry.get("measured") and prov.get("measured_for"):
            return (f"the reference bands were measured for this batch, on the grader's own hardware "
                    f"({prov.get('device')}, torch {prov.get('torch')}, seeds {prov.get('seeds')}, "
                    f"{str(prov.get('date'))[:10]}; {path.name})")
    return ""


def rescore_results(result: SubmissionResult, assignment: Assignment, bands_folder: Path | None,
                    trust: bool = False) -> SubmissionResult:
    """The saved grade `result` scored again against the bands in `bands_folder` (None:
    reference/bands) and the assignment's rubric now; `trust`: --trust-student-process."""
    from grader.grading.bands import BandIdentity, backbone_key, load_bands
    from grader.grading.score import score

    env = result.environment
    if result.assignment_id != assignment.id:
        raise RescoreError(f"graded for assignment {result.assignment_id!r}, not {assignment.id!r}: "
                           "pass that assignment's spec with --spec")
    saved_ids = [v.variant_id for v in result.variants]
    if sorted(saved_ids) != sorted(v.id for v in assignment.variants):
        raise RescoreError("graded for other variants than the spec's now: grade again (segrade grade)")
    profile = None
    if env.get("profile"):
        profile = assignment.profiles.get(env["profile"])
        if profile is None or (env.get("profile_sha256") and profile.sha256 != env["profile_sha256"]):
            raise RescoreError(f"trained under another version of the {env['profile']!r} profile: grade again "
                               "(segrade grade); rescoring only changes points, never training")
    bands = None
    if profile is not None:
        identity = BandIdentity.of_grade(assignment, profile, env)
        bands = load_bands(profile, backbone_key(bool(env.get("pretrained_backbone"))), saved_ids, bands_folder,
                           identity=identity)
    scored, grade = score(assignment, result.variants, bands, env.get("evaluation_split") or "test", trust)
    note = bands_note(bands_folder, profile.id if profile else None)
    if note:
        grade = replace(grade, note="; ".join(x for x in (grade.note, note) if x))
    environment = {**env, "bands_folder": str(bands_folder) if bands_folder else None, "bands_note": note or None,
                   "rescored_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return replace(result, variants=scored, grade=grade, spec_sha256=assignment.sha256, environment=environment)


def rescore_folder(folder: Path, assignment: Assignment, bands_folder: Path | None, report: ReportOptions, *,
                   scoring: str | None = None, trust: bool = False) -> SubmissionResult:
    """Rescore one submission's folder: results.json, reports, Gradescope file, done.json."""
    from grader.batch.job import BatchOutcome, read_done, write_done
    from grader.report.outputs import write_submission_report

    result = rescore_results(read_results(folder), assignment, bands_folder, trust)
    write_results(result, folder)
    write_submission_report(folder, assignment, report, result=result)
    done = read_done(folder)
    if done is not None:
        outcome = BatchOutcome(**{**done["outcome"], "points": result.grade.total,
                                  "automatic_max": result.grade.automatic_max})
        write_done(folder, done["key"], outcome, scoring if scoring is not None else done.get("scoring_key"))
    return result


def rescore_batch_folder(out: Path, assignment: Assignment, options, outcomes: list, report: ReportOptions
                         ) -> dict[str, Any]:
    """After a batch: rescore every graded submission whose done.json has another scoring key
    than the batch's now (bands or rubric changed, or bands measured in this batch).
    Returns the updated outcomes by id."""
    from grader.batch.job import read_done, scoring_key

    current = scoring_key(assignment, options)
    updated = {}
    for outcome in outcomes:
        folder = Path(out) / outcome.id
        done = read_done(folder)
        if done is None or done.get("scoring_key") == current or not (folder / "results.json").is_file():
            continue
        try:
            data = rescore_folder(folder, assignment, options.bands_folder, report, scoring=current,
                                  trust=options.trust_student_process)
        except (RescoreError, ResultsError, OSError, ValueError, KeyError, TypeError) as exc:
            updated[outcome.id] = replace(outcome, message=f"could not be rescored: {exc}")
            continue
        updated[outcome.id] = replace(outcome, points=data.grade.total, automatic_max=data.grade.automatic_max)
    return updated


def rescore_out(out: Path, assignment: Assignment, bands_folder: Path | None, report: ReportOptions,
                trust: bool = False) -> tuple[list[str], list[str], Path | None]:
    """`segrade rescore OUT`: every submission folder of OUT, then the class outputs. Returns
    (rescored ids, problems, the bands folder used). Without --bands, a batch's own
    OUT/bands (bands measured for it) is used when it exists, else reference/bands."""
    from grader.batch.job import read_done
    from grader.batch.bands import BANDS_DIR
    from grader.report.outputs import write_class_outputs

    out = Path(out)
    if bands_folder is None and any((out / BANDS_DIR).glob("*.json")):
        bands_folder = (out / BANDS_DIR).resolve()
    rescored, problems = [], []
    folders = results_folders(out)
    for folder in folders:
        try:
            profile = read_results(folder).environment.get("profile")
            scoring = _scoring_for(assignment, profile, bands_folder, trust) if read_done(folder) else None
            rescore_folder(folder, assignment, bands_folder, report, scoring=scoring, trust=trust)
            rescored.append(folder.name)
        except (RescoreError, ResultsError, OSError, ValueError, KeyError, TypeError) as exc:
            problems.append(f"{folder.name}: {exc}")
    if not (out / "results.json").is_file():
        outputs = write_class_outputs(out, assignment, report, reports=False)
        problems += outputs.problems
    return rescored, problems, bands_folder


def _scoring_for(assignment: Assignment, profile: str | None, bands_folder: Path | None, trust: bool) -> str:
    from grader.batch.job import scoring_key
    from grader.grading.pipeline import GradeOptions

    return scoring_key(assignment, GradeOptions(profile=profile, device="cpu", bands_folder=bands_folder,
                                                trust_student_process=trust))
