"""A local batch's job processes: spawned (each imports torch and segrade's grading side) or
forked from a server that imported them once (`forkserver`, the default since 2026-12-06).

The same folder of COPIES copies of a submission, checked (no training, or trained in
--profile) on one variant with --jobs 1, once per start method and ROUNDS times, alternating, each into a fresh output
folder. Printed: each batch's wall time and the grading process's CPU time with its jobs',
then the ratio forkserver / spawn of the means (the baseline is spawn, measured in this
run). The first forkserver batch includes the server's own start (its imports, once per
`segrade grade`).

    .venv/bin/python benchmarks/bench_job_start.py                  # 4 copies, 2 rounds (~5 min on 2 cores)
    .venv/bin/python benchmarks/bench_job_start.py --copies 8 --rounds 3
    .venv/bin/python benchmarks/bench_job_start.py --profile smoke --copies 2   # trained: the job's own work too
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from grader.batch.backends.local import LocalBackend
from grader.batch.grade import BatchOptions, grade_batch
from grader.grading.pipeline import GradeOptions
from grader.report.outputs import ReportOptions
from grader.shared.resources import reference_dir
from grader.spec import load_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submission", default=str(reference_dir()), help="the submission copied COPIES times")
    parser.add_argument("--variant", default="unet", help="the one variant checked")
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", default=None, help="train in this profile (default: checks only)")
    args = parser.parse_args()

    assignment = load_spec()
    options = GradeOptions(profile=args.profile, device="cpu", variants=(args.variant,))
    walls: dict[str, list[float]] = {"spawn": [], "forkserver": []}
    with tempfile.TemporaryDirectory(prefix="segrade-bench-start-") as tmp:
        folder = Path(tmp) / "submissions"
        for i in range(args.copies):
            shutil.copytree(args.submission, folder / f"copy{i}", ignore=shutil.ignore_patterns("bands"))
        for round_ in range(args.rounds):
            for start in ("spawn", "forkserver"):
                out = Path(tmp) / f"out-{start}-{round_}"
                began = time.perf_counter()
                summary = grade_batch(folder, out, assignment, options,
                                      BatchOptions(jobs=1, report=ReportOptions(pdf=False),
                                                   backend=LocalBackend(start=start)))
                wall = time.perf_counter() - began
                assert not summary.errors, summary.errors
                walls[start].append(wall)
                print(f"round {round_ + 1}, {start:10s}: {wall:6.1f} s wall for {args.copies} submissions "
                      f"({wall / args.copies:.1f} s each)", flush=True)
    spawn, fork = statistics.mean(walls["spawn"]), statistics.mean(walls["forkserver"])
    print(f"mean wall: spawn {spawn:.1f} s, forkserver {fork:.1f} s; ratio forkserver / spawn {fork / spawn:.2f} "
          f"(below 1: faster); {(spawn - fork) / args.copies:.1f} s less per submission")


if __name__ == "__main__":
    main()
