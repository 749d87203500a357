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
from collections.abc import Callable
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
                           note: Callable[[str], None] = print, on_wait: Callable | None = None,
                           on_done: Callable | None = None, check: Callable | None = None) -> ReferenceRuns:
    """Grade `reference` once per seed through `backend` into `work`, and summarise the runs.
    `check(profile)`: before any run (e.g. that the bands file may be written). Raises
    BatchError when the backend refuses, ReferenceFailed when a run fails (saying which)."""
    from grader.batch.bands import _as_result
    from grader.batch.grade import _lock, plan_batch
    from grader.batch.job import BatchEntry
    from grader.grading.bands import backbone_key, measure_bands
    from grader.grading.pipeline import resolve_profile
    from grader.grading.weights import find_vgg16_weights
    from grader.records.files import ResultsError, read_results
    from grader.submission.load import fingerprint

    backend.prepare(options, note)
    device = backend.device(options)
    options = replace(options, device=device)
    profile, reason = resolve_profile(assignment, options)
    if profile is None:
        raise BatchError("bands need a training profile (not --checks-only)")
    options = replace(options, profile=profile.id)
    if check:
        check(profile)
    backbone = backbone_key(profile.pretrained and find_vgg16_weights(options.vgg16_weights).available)
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    entries = [BatchEntry(f"reference-seed{s}", Path(reference).resolve(), seed=s, folder=f"{profile.id}-seed{s}")
               for s in seeds]
    note(f"{reason}; backbone start: {backbone}; grading {reference} once per seed {seeds} as {backend.name} "
         f"task(s), runs in {work}")
    with _lock(work):
        backend.clear_staging(work)
        todo, done = plan_batch(entries, work, assignment, options, device)
        if done:
            note(f"{len(done)} run(s) already done with the same key: kept ({', '.join(o.id for o in done)})")
        jobs = backend.default_jobs(device, max(1, len(todo)))
        options = replace(options, **backend.resources(device, jobs))
        failed = []
        for outcome in backend.run(todo, work, assignment, options, jobs=jobs, device=device, pdf=False,
                                   visibility="hidden", on_note=note, on_wait=on_wait):
            if outcome.state == "error":
                failed.append(f"{outcome.id}: {outcome.message}")
            if on_done:
                on_done(outcome)
        backend.clear_staging(work, finished=True)
    if failed:
        raise ReferenceFailed("the reference could not be graded: " + "; ".join(failed) + ". Fix it and run again (the "
                         "runs that finished are kept)")
    results: dict[int, dict[str, Any]] = {}
    for entry in entries:
        try:
            results[entry.seed] = read_results(work / entry.target)
        except ResultsError as exc:
            raise ReferenceFailed(f"{entry.id}: {exc}") from None
        bad = [v["variant_id"] for v in results[entry.seed]["variants"] if v.get("status") != "passed"]
        if bad:
            raise ReferenceFailed(f"the reference failed {', '.join(bad)} with seed {entry.seed} (see "
                             f"{work / entry.target / 'report.html'}): fix it before measuring bands")
    for i, seed in enumerate(seeds, 1):
        data = results[seed]
        scores = ", ".join(f"{v['variant_id']} {v['metrics']['miou']:.3f}" for v in data["variants"]
                           if (v.get("metrics") or {}).get("miou") is not None)
        note(f"run {i}/{len(seeds)} (seed {seed}) took {float(data.get('duration_s') or 0):.0f} s on "
             f"{data.get('environment', {}).get('device')}: {scores}")
    # measure_bands times the runs it makes; these were made by the tasks (their times are above)
    entry = measure_bands(assignment, profile, seeds, lambda seed: _as_result(results[seed]), progress=lambda _: None)
    entry["provenance"] |= {
        "reference": str(Path(reference).resolve()), "reference_sha256": fingerprint(Path(reference)),
        "backend": backend.name, "runs": [str(work / e.target) for e in entries],
        # the runs' own time (measure_bands only timed the summary)
        "duration_s": round(statistics.fsum(float(r.get("duration_s") or 0) for r in results.values()), 1),
    }
    return ReferenceRuns(entry, profile, backbone, [work / e.target for e in entries])
