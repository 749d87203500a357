"""The local backend (`--backend local`, the default): one job process per submission on
this machine, at most `jobs` at a time, each grading with grader.batch.job.grade_entry."""

from __future__ import annotations

import multiprocessing
import os
import time
from dataclasses import replace
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from grader.batch.backends.base import Backend, BatchEvents
from grader.batch.job import BatchEntry, BatchOutcome, grade_entry, read_entry_progress, write_error_folder
from grader.report.outputs import ReportOptions
from grader.spec import Assignment

GB = 1024**3


def default_jobs(device: str) -> int:
    """As many jobs as the machine affords. On a CPU, jobs split the cores: torch already
    uses every core for one model, so two jobs on two cores are no faster (benchmarks/
    bench_batch.py), and each job needs its worker's memory. On CUDA, two jobs per GPU
    share it, each capped to its part of the GPU's memory."""
    from grader.grading.sandbox import Limits

    cores = os.cpu_count() or 1
    by_memory = max(1, int(_total_memory_gb() // (Limits().memory_gb / 2 + 2)))
    if device.startswith("cuda"):
        import torch

        return max(1, min(2 * torch.cuda.device_count(), cores, by_memory))
    return max(1, min(cores // 4, by_memory))


def _total_memory_gb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB
    except (ValueError, OSError):
        return 8.0


def _job_resources(device: str, jobs: int) -> dict[str, Any]:
    """Each job's share: CPU threads, and on CUDA its part of the GPU's memory."""
    share: dict[str, Any] = {"threads": max(1, (os.cpu_count() or 1) // jobs)}
    if device.startswith("cuda"):
        import torch

        per_gpu = -(-jobs // max(1, torch.cuda.device_count()))
        share["cuda_memory_fraction"] = round(0.95 / per_gpu, 3)
    return share


def _run_jobs(todo, out: Path, assignment: Assignment, options, report: ReportOptions, jobs: int, device: str,
              events: BatchEvents):
    """One process per submission, at most `jobs` at a time; yields outcomes as they end.
    A job that dies without reporting (a crash of the grading side itself) becomes an
    error outcome: the batch goes on."""
    context = multiprocessing.get_context("spawn")
    gpus = []
    if device.startswith("cuda"):
        import torch

        gpus = [f"cuda:{i}" for i in range(max(1, torch.cuda.device_count()))]
    pending = list(todo)
    running: dict[Any, tuple[Any, Any, BatchEntry, float, str | None]] = {}
    while pending or running:
        while pending and len(running) < jobs:
            entry, key = pending.pop(0)
            busy = [job[4] for job in running.values()]
            gpu = min(gpus, key=busy.count) if gpus else None
            receive, send = context.Pipe(duplex=False)
            job_options = replace(options, device=gpu) if gpu else options
            process = context.Process(target=_job, name=f"segrade-{entry.id}",
                                      args=(send, entry, key, out, assignment, job_options, report))
            process.start()
            send.close()
            running[process.sentinel] = (process, receive, entry, time.perf_counter(), gpu)
            if events.on_start:
                events.on_start(entry)
        ended = wait(list(running), timeout=1.0 if events.on_progress else None)
        if events.on_progress:  # what each running job wrote of its progress (grader.batch.job.progress_file)
            for sentinel, (_, _, entry, _, _) in running.items():
                if sentinel not in ended and (progress := read_entry_progress(out, entry)) is not None:
                    events.on_progress(entry, progress)
        for sentinel in ended:
            process, receive, entry, began, _ = running.pop(sentinel)
            process.join()
            try:
                outcome = receive.recv() if receive.poll() else None
            except (EOFError, OSError):
                outcome = None
            receive.close()
            if outcome is None:
                why = f"the grading job for {entry.id} died (exit code {process.exitcode}) before reporting"
                outcome = BatchOutcome(entry.id, "error", seconds=round(time.perf_counter() - began, 1), message=why)
                try:
                    write_error_folder(out, entry, None, why, outcome, assignment, report)
                except Exception as exc:  # noqa: BLE001 (the batch goes on; the summary still lists it)
                    outcome.message += f" (and its error report could not be written: {exc})"
            yield outcome


def _job(connection, entry: BatchEntry, key: str, out: Path, assignment: Assignment, options,
         report: ReportOptions) -> None:
    """In the job process: grade one submission into staging, then move it into place."""
    from grader.grading.sandbox import die_with_parent

    die_with_parent()
    if options.threads:
        import torch

        torch.set_num_threads(options.threads)
    connection.send(grade_entry(entry, key, out, assignment, options, report))
    connection.close()


class LocalBackend(Backend):
    """Job processes on this machine."""

    name = "local"

    def device(self, options) -> str:
        from grader.shared.device import resolve_device

        return str(resolve_device(options.device))

    def default_jobs(self, device: str, tasks: int) -> int:
        return default_jobs(device)

    def resources(self, device: str, jobs: int) -> dict[str, Any]:
        return _job_resources(device, jobs)

    def run(self, todo, out, assignment, options, report, *, jobs, device, events):
        return _run_jobs(todo, out, assignment, options, report, jobs, device, events)
