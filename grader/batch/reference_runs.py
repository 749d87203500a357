"""`segrade bands --backend slurm`: the reference graded once per seed as tasks of a backend
(one Slurm array task per seed), then summarised into its bands exactly as `segrade bands`
does in-process (grader.grading.bands.measure_bands).

Each run is an ordinary batch job (grader.batch.job.grade_entry) of the reference with its
seed, written to WORK/<label>-seed<k>/ (results.json, report, done.json) where WORK is on
the filesystem the nodes share. On real data, where the test and the validation bands are
both asked for, each run trains once and is scored on both splits, as in-process (its
validation results in WORK/<label>-seed<k>/val/). A killed command loses nothing: a re-run keeps the runs
already done (same key) and waits for those still queued or running. The request is
checked against the partition first (grader.batch.backends.slurm_partition); the `full`
profile asks for a GPU per task unless --slurm-gpus says otherwise.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from grader.shared.errors import BatchError


class ReferenceFailed(RuntimeError):
    """A run of the reference failed or did not pass: its bands would mean nothing."""


@dataclass
class ReferenceRuns:
    entries: dict[str, dict[str, Any]]   # split -> the backbone start's bands entry, provenance included
    profile: Any
    backbone: str
    runs: list[Path]


def measure_reference_runs(backend, assignment, options, *, seeds: list[int], reference: Path, work: Path,
                           label: str, splits: tuple[str, ...] = ("test",), events=None) -> ReferenceRuns:
    """Grade `reference` once per seed through `backend` (already prepared: its request
    checked, grader.batch.backends.base.Backend.prepare) into WORK/<label>-seed<k>/, and
    summarise the runs into one bands entry per split of `splits`: one split (the
    evaluation split), or ("test", "val") scored from the same training of each seed.
    `options`: GradeOptions with the profile.
    Raises BatchError when the backend refuses, ReferenceFailed when a run fails (saying which)."""
    from grader.batch.backends.base import BatchEvents
    from grader.batch.grade import _lock, plan_batch
    from grader.batch.job import VAL_FOLDER, BatchEntry, batch_key_parts, scoring_key
    from grader.grading.bands import backbone_key, provenance, run_scores, summarise_runs
    from grader.grading.pipeline import resolve_profile, scores_on_test_and_val
    from grader.grading.weights import find_vgg16_weights
    from grader.records.files import ResultsError, read_results
    from grader.report.outputs import ReportOptions
    from grader.submission.load import fingerprint

    events = events or BatchEvents()
    device = backend.device(options)
    options = replace(options, device=device)
    profile, _ = resolve_profile(assignment, options)
    if profile is None:
        raise BatchError("bands need a training profile (not --checks-only)")
    both = tuple(splits) == ("test", "val")
    if not both and len(splits) != 1:
        raise ValueError(f"splits {splits!r}: one split, or ('test', 'val')")
    options = replace(options, profile=profile.id, evaluation_split="test" if both else splits[0])
    if both and not scores_on_test_and_val(assignment, options):
        raise BatchError("the test and validation bands from one training need real data (synthetic scenes have "
                         "one band for both)")
    pretrained = profile.pretrained and assignment.has_family_with_pretrained_backbone() \
        and find_vgg16_weights(options.vgg16_weights).available
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    reference = Path(reference).resolve()
    entries = [BatchEntry(f"reference-seed{s}", reference, seed=s, folder=f"{label}-seed{s}", also_val=both)
               for s in seeds]
    with _lock(work):
        backend.clear_staging(work)
        todo, done = plan_batch(entries, work, batch_key_parts(assignment, options, device),
                                scoring_key(assignment, options))
        if done:
            events.note(f"{len(done)} run(s) already done with the same key: kept ({', '.join(o.id for o in done)})")
        jobs = backend.default_jobs(device, max(1, len(todo)))
        options = replace(options, **backend.resources(device, jobs))
        failed = []
        for outcome in backend.run(todo, work, assignment, options, ReportOptions(pdf=False, visibility="hidden"),
                                   jobs=jobs, device=device, events=events):
            if outcome.state == "error":
                failed.append(f"{outcome.id}: {outcome.message}")
            if events.on_done:
                events.on_done(outcome)
        backend.clear_staging(work, finished=True)
    if failed:
        raise ReferenceFailed("the reference could not be graded: " + "; ".join(failed) + ". Fix it and run again "
                              "(the runs that finished are kept)")

    def folder(entry: BatchEntry, split: str) -> Path:
        return work / entry.target / VAL_FOLDER if split == "val" and both else work / entry.target

    results: dict[str, list] = {split: [] for split in splits}
    for i, entry in enumerate(entries, 1):
        for split in splits:
            try:
                result = read_results(folder(entry, split))
            except ResultsError as exc:
                raise ReferenceFailed(f"{entry.id}: {exc}") from None
            bad = [v.variant_id for v in result.variants if v.status != "passed"]
            if bad:
                raise ReferenceFailed(f"the reference failed {', '.join(bad)} with seed {entry.seed} (see "
                                      f"{work / entry.target / 'report.html'}): fix it before measuring bands")
            results[split].append(result)
        first = results[splits[0]][-1]
        events.note(f"run {i}/{len(seeds)} (seed {entry.seed}) took {float(first.duration_s or 0):.0f} s on "
                    f"{first.environment.get('device')}: "
                    + run_scores({split: runs[-1] for split, runs in results.items()}))
    seconds = statistics.fsum(float(r.duration_s or 0) for r in results[splits[0]])
    reference_sha256 = fingerprint(reference)
    bands = {}
    for split, runs in results.items():
        bands[split] = {"measured": True, "variants": summarise_runs(runs, assignment.class_names),
                        "provenance": provenance(assignment, profile, runs, seeds, seconds, backend=backend.name,
                                                 reference=str(reference), reference_sha256=reference_sha256,
                                                 runs=[str(folder(e, split)) for e in entries])}
    return ReferenceRuns(bands, profile, backbone_key(pretrained), [work / e.target for e in entries])
