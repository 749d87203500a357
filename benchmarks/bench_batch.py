"""Batch scaling: `segrade grade` over the same folder with --jobs 1 and --jobs 2.

The folder holds COPIES copies of a submission (default: the reference solution), graded
in a fresh output folder per setting, so nothing is resumed. Printed: wall time per
setting, time per submission, and the ratio against --jobs 1 measured in the same run;
then the split of one submission's time between the worker (building, checking and
training: the part a GPU speeds up) and the grading process (data, evaluation, reports),
which is what the GPU model in docs/measurements.md uses.

    .venv/bin/python benchmarks/bench_batch.py                        # smoke profile, 2 copies (~12 min on 2 cores)
    .venv/bin/python benchmarks/bench_batch.py --checks-only --copies 4
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from grader.batch.grade import BatchOptions, grade_batch
from grader.report.outputs import ReportOptions
from grader.grading.pipeline import GradeOptions
from grader.shared.resources import reference_dir
from grader.spec import load_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submission", default=str(reference_dir()), help="the submission copied COPIES times")
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--jobs", default="1,2", help="comma-separated --jobs settings; the first is the baseline")
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--checks-only", action="store_true")
    parser.add_argument("--pdf", action="store_true", help="also render the PDFs (off by default)")
    args = parser.parse_args()

    assignment = load_spec()
    options = GradeOptions(profile=None if args.checks_only else args.profile, device="cpu")
    settings = [int(j) for j in args.jobs.split(",")]
    with tempfile.TemporaryDirectory(prefix="segrade-bench-batch-") as tmp:
        folder = Path(tmp) / "submissions"
        for i in range(args.copies):
            shutil.copytree(args.submission, folder / f"copy{i}")
        walls = {}
        for jobs in settings:
            out = Path(tmp) / f"out{jobs}"
            started = time.perf_counter()
            summary = grade_batch(folder, out, assignment, options,
                                  BatchOptions(jobs=jobs, report=ReportOptions(pdf=args.pdf)))
            walls[jobs] = time.perf_counter() - started
            assert not summary.errors, summary.errors
            shares = []
            for copy in out.glob("copy*/results.json"):
                data = json.loads(copy.read_text())
                shares.append((data["environment"]["worker_seconds"], data["duration_s"]))
            worker = statistics.mean(w for w, _ in shares)
            total = statistics.mean(d for _, d in shares)
            print(f"--jobs {jobs}: {walls[jobs]:.1f} s for {args.copies} submissions "
                  f"({walls[jobs] / args.copies:.1f} s each); per submission: worker {worker:.1f} s of a "
                  f"{total:.1f} s grade (+ report), grading-process share {1 - worker / total:.0%}")
        base = settings[0]
        for jobs in settings[1:]:
            print(f"ratio --jobs {jobs} / --jobs {base}: {walls[jobs] / walls[base]:.2f} (below 1: faster)")


if __name__ == "__main__":
    main()
