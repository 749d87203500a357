"""Where a student's self-check (`segrade check SUBMISSION`, with training) spends its time, and
the whole of it against a baseline measured in the same run; then the student's loop: the same
self-check again with nothing changed, and again after editing one U-Net variant.

    .venv/bin/python benchmarks/bench_check.py [--submission reference] [--no-baseline] [--no-loop]

Runs the README's self-check path (grade_submission on the validation split, smoke profile on
CPU, keeping its results beside the output as `segrade check` does, then the HTML + PDF report)
on a copy of SUBMISSION and times each phase from the worker's own progress messages
(grader.grading.progress): start-up, import, and per variant build, forward, checks, untrained
evaluation, training, final evaluation; then the report.

Baseline: the bare work the self-check cannot avoid, measured here: every reference variant
built and trained for the profile's steps in this process with a plain PyTorch loop (no
worker, no checks, no predictions). Targets (issue 28): the first self-check within 1.25x the
baseline; an unchanged re-run within max(15 s, 10% of the first run); after editing one U-Net
variant (UNetNoSkip), within 40% of the first run.
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


def self_check(submission: Path, out: Path, spec, pdf: bool) -> tuple[float, float, object, PhaseClock]:
    """One `segrade check` as the command runs it: (grade seconds, total seconds, result, clock)."""
    clock = PhaseClock()
    started = time.perf_counter()
    result = grade_submission(submission, spec, GradeOptions(profile="smoke", device="cpu", evaluation_split="val",
                                                             keep_in=out), on_progress=clock)
    graded = time.perf_counter()
    write_results(result, out)
    write_submission_report(out, spec, ReportOptions(pdf=pdf), workers=os.cpu_count() or 1)
    return graded - started, time.perf_counter() - started, result, clock


def edit_one_unet(submission: Path) -> str:
    """A real change to UNetNoSkip alone (its class body), as a student fixing one variant makes."""
    path = submission / "unet.py"
    text = path.read_text()
    anchor = "class UNetNoSkip(_UNetBase):\n"
    if anchor not in text:
        raise SystemExit(f"{path} has no {anchor.strip()!r}: pass --no-loop for this submission")
    path.write_text(text.replace(anchor, anchor + "    edited_by_the_benchmark = True\n", 1))
    return "UNetNoSkip"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submission", type=Path, default=reference_dir())
    parser.add_argument("--no-baseline", action="store_true", help="skip the baseline")
    parser.add_argument("--no-loop", action="store_true", help="skip the re-runs (unchanged, one U-Net edited)")
    parser.add_argument("--no-pdf", action="store_true")
    args = parser.parse_args()
    spec = load_spec()
    profile = spec.profile("smoke")
    with tempfile.TemporaryDirectory() as tmp:
        submission = Path(tmp) / "submission"
        out = Path(tmp) / "out"
        shutil.copytree(args.submission, submission, ignore=shutil.ignore_patterns("bands", "__pycache__"))
        graded, total, result, clock = self_check(submission, out, spec, not args.no_pdf)
        by_phase: dict[str, float] = defaultdict(float)
        for (_, phase), seconds in clock.spent.items():
            by_phase[phase] += seconds
        by_phase["grading process (data, checks, scoring)"] = graded - sum(clock.spent.values())
        print(f"self-check of {args.submission.name}: {result.grade.total:g}/{result.grade.automatic_max:g} points, "
              f"{sum(v.status.value == 'passed' for v in result.variants)}/{len(result.variants)} variants pass")
        for phase, seconds in sorted(by_phase.items(), key=lambda kv: -kv[1]):
            print(f"  {phase:42s} {seconds:7.1f} s")
        print(f"grade (worker and grading process):        {graded:7.1f} s")
        print(f"report (HTML{'' if args.no_pdf else ' + PDF'}):                        {total - graded:7.1f} s")
        line = f"first self-check total:                    {total:7.1f} s"
        if not args.no_baseline:
            baseline = bare_training(spec, profile)
            print(f"baseline (bare training of every variant): {baseline:7.1f} s")
            line += f"; {total / baseline:.2f}x the baseline (target <= 1.25x)"
        print(line)
        if args.no_loop:
            return
        _, again, result, _ = self_check(submission, out, spec, not args.no_pdf)
        reused = result.environment["reused_variants"]
        target = max(15.0, 0.1 * total)
        print(f"unchanged re-run:                          {again:7.1f} s  ({len(reused)} variants reused; "
              f"target <= {target:.1f} s: {'met' if again <= target else 'NOT met'})")
        edited = edit_one_unet(submission)
        _, after_edit, result, _ = self_check(submission, out, spec, not args.no_pdf)
        rerun = sorted({v.id for v in spec.variants} - set(result.environment["reused_variants"]))
        print(f"after editing {edited}:                  {after_edit:7.1f} s  (re-ran {', '.join(rerun)}; "
              f"{after_edit / total:.0%} of the first run, target <= 40%: "
              f"{'met' if after_edit <= 0.4 * total else 'NOT met'})")


if __name__ == "__main__":
    main()
