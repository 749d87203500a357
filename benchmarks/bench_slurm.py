"""Slurm overhead: `segrade grade` over the same folder with the local backend and with
`--backend slurm`, in one run; the ratio is the Slurm backend's overhead (target <= 1.10).

The folder holds COPIES copies of a submission (default: the tiny one-conv model of
tests/tiny_submission.py, so that the grade itself is short and the overhead shows), graded
into a fresh output folder per backend, so nothing is resumed. Both backends run JOBS
submissions at once with the same threads each (local: --jobs JOBS on the machine's cores;
Slurm: array parallelism JOBS, cores/JOBS CPUs per task), on a real single-node Slurm
started in a temporary folder (tests/slurm_cluster.py: needs root, slurm-wlm and munge).
On a real cluster, pass --no-cluster to use the one SLURM_CONF / sbatch points at.

    .venv/bin/python benchmarks/bench_slurm.py                          # checks only, 4 copies
    .venv/bin/python benchmarks/bench_slurm.py --profile smoke --copies 4
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from grader.batch.backends.slurm import SlurmBackend, SlurmConfig  # noqa: E402
from grader.batch.grade import BatchOptions, grade_batch  # noqa: E402
from grader.report.outputs import ReportOptions  # noqa: E402
from grader.grading.pipeline import GradeOptions  # noqa: E402
from grader.spec import load_spec  # noqa: E402
from tiny_submission import contract_classes, spec_without_architecture, write_submission  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submission", help="a submission folder copied COPIES times (default: the tiny model)")
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2, help="submissions at once, both backends (default 2)")
    parser.add_argument("--profile", default=None, help="a training profile (default: checks only)")
    parser.add_argument("--poll", type=float, default=2.0, help="the Slurm backend's polling interval, s")
    parser.add_argument("--no-cluster", action="store_true", help="use the Slurm already configured here")
    parser.add_argument("--no-abba", dest="abba", action="store_false",
                        help="one run per backend instead of local, slurm, slurm, local")
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    threads = max(1, cores // args.jobs)
    with tempfile.TemporaryDirectory(prefix="segrade-bench-slurm-") as tmp:
        tmp = Path(tmp)
        folder = tmp / "submissions"
        for i in range(args.copies):
            if args.submission:
                import shutil

                shutil.copytree(args.submission, folder / f"copy{i}")
            else:
                write_submission(folder / f"copy{i}", {"models.py": contract_classes()})
        spec = None if args.submission else spec_without_architecture(tmp / "spec.toml")
        assignment = load_spec(spec)
        options = GradeOptions(profile=args.profile, device="cpu")
        os.environ.setdefault("SEGRADE_TEST_SEED", "7")
        cluster = None
        if not args.no_cluster:
            from slurm_cluster import SlurmCluster

            why = SlurmCluster.unavailable()
            if why:
                sys.exit(f"cannot start a Slurm here: {why}")
            cluster = SlurmCluster(tmp / "cluster", cpus=cores, memory_mb=8000).start()
        try:
            walls: dict[str, list[float]] = {"local": [], "slurm": []}
            # ABBA order (local, slurm, slurm, local): a drift in the machine's load (shared
            # machines) or a cold cache in the first run falls on both backends alike.
            order = ["local", "slurm", "slurm", "local"] if args.abba else ["local", "slurm"]
            for i, name in enumerate(order):
                backend = None
                if name == "slurm":
                    backend = SlurmBackend(SlurmConfig(cpus=threads, mem_gb=3, time_min=30, parallel=args.jobs,
                                                       poll_s=args.poll, grace_s=10))
                started = time.perf_counter()
                summary = grade_batch(folder, tmp / f"out{i}-{name}", assignment, options,
                                      BatchOptions(jobs=args.jobs, report=ReportOptions(pdf=False), backend=backend))
                walls[name].append(time.perf_counter() - started)
                assert not summary.errors, summary.errors
                print(f"  run {i + 1}: {name:5s} {walls[name][-1]:6.1f} s", flush=True)
        finally:
            if cluster is not None:
                cluster.stop()
        what = f"{args.profile} profile" if args.profile else "checks only"
        print(f"{args.copies} submissions, {what}, {args.jobs} at once, {threads} thread(s) each, {cores} cores")
        for name, runs in walls.items():
            mean = sum(runs) / len(runs)
            print(f"  {name:5s}: {mean:6.1f} s mean of {len(runs)} ({mean / args.copies:.1f} s per submission; "
                  f"runs {', '.join(f'{w:.1f}' for w in runs)})")
        ratio = (sum(walls["slurm"]) / len(walls["slurm"])) / (sum(walls["local"]) / len(walls["local"]))
        print(f"ratio slurm / local: {ratio:.2f} (target <= 1.10)")

if __name__ == "__main__":
    main()
