"""`segrade bands --backend slurm`: the reference graded once per seed as tasks of a backend
(one Slurm array task per seed), then summarised into its bands exactly as `segrade bands`
does in-process (grader.grading.bands.measure_bands).

Each run is an ordinary batch job (grader.batch.job.grade_entry) of the reference with its
seed, written to WORK/<profile>-seed<k>/ (results.json, report, done.json) where WORK is on
the filesystem the nodes share. A killed command loses nothing: a re-run keeps the runs
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
    entry: dict[str, Any]          # the backbone start's bands entry, provenance included
    profile: Any
    backbone: str
    runs: list[Path]


def measure_reference_runs(backend, assignment, options, *, seeds: list[int], reference: Path, work: Path,
                           label: str, events=None) -> ReferenceRuns:
    """Grade `reference` once per seed through `backend` (already prepared: its request
    checked, grader.batch.backends.base.Backend.prepare) into WORK/<label>-seed<k>/, and
    summarise the runs. `options`: GradeOptions with the profile and the evaluation split.
    Raises BatchError when the backend refuses, ReferenceFailed when a run fails (saying which)."""
    from grader.batch.backends.base import BatchEvents
    from grader.batch.grade import _lock, plan_batch
    from grader.batch.job import BatchEntry, batch_key_parts, scoring_key
    from grader.grading.bands import backbone_key, provenance, summarise_runs
    from grader.grading.pipeline import resolve_profile
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
    options = replace(options, profile=profile.id)
    pretrained = profile.pretrained and assignment.has_family_with_pretrained_backbone() \
        and find_vgg16_weights(options.vgg16_weights).available
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    reference = Path(reference).resolve()
    entries = [BatchEntry(f"reference-seed{s}", reference, seed=s, folder=f"{label}-seed{s}") for s in seeds]
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
    results = []
    for i, entry in enumerate(entries, 1):
        try:
            result = read_results(work / entry.target)
        except ResultsError as exc:
            raise ReferenceFailed(f"{entry.id}: {exc}") from None
        bad = [v.variant_id for v in result.variants if v.status != "passed"]
        if bad:
            raise ReferenceFailed(f"the reference failed {', '.join(bad)} with seed {entry.seed} (see "
                                  f"{work / entry.target / 'report.html'}): fix it before measuring bands")
        results.append(result)
        scores = ", ".join(f"{v.variant_id} {v.metrics['miou']:.3f}" for v in result.variants
                           if v.metrics and v.metrics.get("miou") is not None)
        events.note(f"run {i}/{len(seeds)} (seed {entry.seed}) took {float(result.duration_s or 0):.0f} s on "
                    f"{result.environment.get('device')}: {scores}")
    entry = {"measured": True, "variants": summarise_runs(results, assignment.class_names),
             "provenance": provenance(assignment, profile, results, seeds,
                                      statistics.fsum(float(r.duration_s or 0) for r in results),
                                      backend=backend.name, reference=str(reference),
                                      reference_sha256=fingerprint(reference),
                                      runs=[str(work / e.target) for e in entries])}
    return ReferenceRuns(entry, profile, backbone_key(pretrained), [work / e.target for e in entries])
