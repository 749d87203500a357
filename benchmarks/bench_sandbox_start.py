"""Sandboxed processes started as `python -m ENTRY`, forked from a zygote that only imported
torch (`cold`), or forked from one that also exported a model of its own (`forked`, the
default: grader.shared.zygote.warm_up; root and bubblewrap only).

GRADES grades of one submission's variant in one process (checks only: a worker that builds
and captures, a verifier that loads and measures), once per start and ROUNDS times,
alternating. Each forked round starts its own zygote first (its imports, paid once per
process: `segrade check`, a batch job, a test process) and counts it. Printed: each round's wall
time and the machine's busy CPU time (/proc/stat: the sandboxed processes are not this
process's children), then the ratios forked / started and cold / started of the means (the
baseline, `python -m`, measured in this run).

    .venv/bin/python benchmarks/bench_sandbox_start.py               # 4 grades, 2 rounds (~3 min on 2 cores)
    .venv/bin/python benchmarks/bench_sandbox_start.py --grades 8 --rounds 3
    .venv/bin/python benchmarks/bench_sandbox_start.py --worker-only  # no capture, no verifier
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from grader.grading import sandbox
from grader.grading.pipeline import GradeOptions, grade_submission
from grader.shared.resources import reference_dir
from grader.shared.zygote import Zygote
from grader.spec import load_spec


def busy_cpu_seconds() -> float:
    """CPU time the whole machine spent busy so far (user, nice, system, irq, softirq)."""
    fields = open("/proc/stat").readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = map(int, fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="unet", help="the reference's variant graded")
    parser.add_argument("--grades", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--worker-only", action="store_true", help="no capture and no verifier: the worker alone")
    args = parser.parse_args()
    if not sandbox.forked_start(sandbox.isolation_available()):
        sys.exit("processes are forked only under bubblewrap, as root: nothing to compare here")

    spec = load_spec()
    options = GradeOptions(profile=None, device="cpu", variants=(args.variant,),
                           **({"capture": False, "trust_student_process": True} if args.worker_only else {}))
    starts = ("started", "cold", "forked")
    walls: dict[str, list[float]] = {start: [] for start in starts}
    cpus: dict[str, list[float]] = {start: [] for start in starts}
    for round_ in range(args.rounds):
        for start in starts:
            os.environ["SEGRADE_FORKED_START"] = "0" if start == "started" else "1"
            sandbox.end_zygote()   # a forked round pays for its zygote's start
            began, cpu = time.perf_counter(), busy_cpu_seconds()
            if start == "cold":
                sandbox.use_zygote(Zygote(sandbox.zygote_env(), warm=False))
            for _ in range(args.grades):
                result = grade_submission(reference_dir(), spec, options)
                assert result.grade.passed_variants == 1, [c.message for v in result.variants for c in v.checks]
                assert ("forked from" in result.environment["isolation"]) == (start != "started")
            wall, cpu = time.perf_counter() - began, busy_cpu_seconds() - cpu
            walls[start].append(wall)
            cpus[start].append(cpu)
            print(f"round {round_ + 1}, {start:8s}: {wall:6.1f} s wall, {cpu:6.1f} CPU-s for {args.grades} grades "
                  f"({wall / args.grades:.1f} s each)", flush=True)
    for name, figures in (("wall", walls), ("CPU", cpus)):
        started, cold, forked = (statistics.mean(figures[start]) for start in starts)
        print(f"{name}: started {started:.1f} s, cold {cold:.1f} s, forked {forked:.1f} s; ratio cold / started "
              f"{cold / started:.2f}, forked / started {forked / started:.2f}")


if __name__ == "__main__":
    main()
