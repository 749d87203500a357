"""The self-check before and after issue 26, in one run: measured in the worker beside the
student's code (`--no-capture`) and on captured programs in the verifier (the default).

    .venv/bin/python benchmarks/bench_capture.py [--submission reference] [--no-baseline] [--no-compare] [--no-pdf]

Runs the README's self-check path (grade_submission on the validation split, smoke profile on
CPU, then the report) on a copy of SUBMISSION, twice, and prints for each the time per phase
(from the progress messages; the verifier's run apart), the total, then the ratio after/before
(target: at most 1.10), the capture time (the worker's torch.export and save, summed over the
variants) and the verifier's time. `--no-compare` runs only the default. The baseline (bare
training of every reference variant, as in bench_check.py) is printed unless --no-baseline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grader.grading.pipeline import GradeOptions, grade_submission  # noqa: E402
from grader.report.outputs import ReportOptions, write_submission_report  # noqa: E402
from grader.records.files import write_results  # noqa: E402
from grader.shared.resources import reference_dir  # noqa: E402
from grader.spec import load_spec  # noqa: E402

from common import PhaseClock, bare_training  # noqa: E402


def self_check(source: Path, spec, capture: bool, pdf: bool) -> dict:
    """One self-check of a copy of `source`: its result, phases and times."""
    with tempfile.TemporaryDirectory() as tmp:
        submission = Path(tmp) / "submission"
        shutil.copytree(source, submission, ignore=shutil.ignore_patterns("bands", "__pycache__"))
        clock = PhaseClock()
        started = time.perf_counter()
        result = grade_submission(submission, spec, GradeOptions(profile="smoke", device="cpu", capture=capture,
                                                                 evaluation_split="val"), on_progress=clock)
        graded = time.perf_counter()
        write_results(result, Path(tmp) / "out")
        write_submission_report(Path(tmp) / "out", spec, ReportOptions(pdf=pdf), workers=os.cpu_count() or 1)
        ended = time.perf_counter()
    by_phase: dict[str, float] = defaultdict(float)
    for (_, phase), seconds in clock.spent.items():
        by_phase[phase] += seconds
    # What the phases leave out is the grading process's own time; the verifier's time overlaps
    # the phases it reports (train, check...), so it is added after, to be shown apart.
    by_phase["grading process (data, checks, scoring)"] = (graded - started) - sum(by_phase.values())
    verifier = float(result.environment.get("verifier_seconds") or 0.0)
    if verifier:
        by_phase["verifier (checks, training, predictions; within the phases)"] = verifier
    captured = sum(float((v.program or {}).get("capture_seconds") or 0.0) for v in result.variants)
    return {"result": result, "phases": by_phase, "grade": graded - started, "report": ended - graded,
            "total": ended - started, "capture": captured, "verifier": verifier}


def _print(name: str, run: dict, pdf: bool) -> None:
    result = run["result"]
    print(f"{name}: {result.grade.total:g}/{result.grade.automatic_max:g} points, "
          f"{sum(v.status.value == 'passed' for v in result.variants)}/{len(result.variants)} variants pass, "
          f"measured: {result.environment.get('measured_in') or 'in the worker'}")
    for phase, seconds in sorted(run["phases"].items(), key=lambda kv: -kv[1]):
        print(f"  {phase:42s} {seconds:7.1f} s")
    if run["capture"]:
        print(f"  (capture, within the worker's build phases: {run['capture']:.1f} s)")
    print(f"grade (worker, verifier, grading process): {run['grade']:7.1f} s")
    print(f"report (HTML{'' if not pdf else ' + PDF'}):                        {run['report']:7.1f} s")
    print(f"self-check total:                          {run['total']:7.1f} s  (target <= 120 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submission", type=Path, default=reference_dir())
    parser.add_argument("--no-baseline", action="store_true", help="skip the baseline (half the time)")
    parser.add_argument("--no-compare", action="store_true", help="skip the run measured in the worker")
    parser.add_argument("--no-pdf", action="store_true")
    args = parser.parse_args()
    spec = load_spec()
    profile = spec.profile("smoke")
    runs = {}
    if not args.no_compare:
        runs["before (--no-capture: measured in the worker)"] = self_check(args.submission, spec, False, not args.no_pdf)
    runs["after (captured programs, measured in the verifier)"] = self_check(args.submission, spec, True,
                                                                             not args.no_pdf)
    for name, run in runs.items():
        _print(f"self-check of {args.submission.name}, {name}", run, not args.no_pdf)
    if len(runs) == 2:
        before, after = runs.values()
        print(f"after / before: {after['total'] / before['total']:.2f}x  (target <= 1.10); capture "
              f"{after['capture']:.1f} s, verifier {after['verifier']:.1f} s")
    if not args.no_baseline:
        baseline = bare_training(spec, profile)
        print(f"baseline (bare training of every variant): {baseline:7.1f} s; after = "
              f"{list(runs.values())[-1]['total'] / baseline:.1f}x the baseline")


if __name__ == "__main__":
    main()
