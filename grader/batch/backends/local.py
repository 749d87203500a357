"""The local backend (`--backend local`, the default): one job process per submission on
this machine, at most `jobs` at a time, each grading with grader.batch.job.grade_entry.

The jobs are forked from a server that has imported the grading side once
(grader.batch.backends.job_imports, multiprocessing's `forkserver`; `spawn` where there is
none): a job starts in a fraction of a second instead of importing torch and segrade again.
A forked job is not the batch's child, so it watches the batch itself (`_end_with_batch`):
when the batch dies, even by SIGKILL, the job ends, and its worker with it.

Where sandboxed processes are forked (root and bubblewrap: grader.grading.sandbox.forked_start),
the batch starts one zygote (grader.shared.zygote) and gives each job a connection to it: the
jobs' workers and verifiers are forked from it instead of each job starting its own."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from dataclasses import replace
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, NamedTuple

from grader.batch.backends.base import Backend, BatchEvents
from grader.batch.job import BatchEntry, BatchOutcome, grade_entry, read_entry_progress, write_error_folder
from grader.grading.sandbox import isolation_available, use_zygote, zygote
from grader.report.outputs import ReportOptions
from grader.shared.processes import cpu_cores, thread_limit
from grader.shared.zygote import Connection, ZygoteError
from grader.spec import Assignment

GB = 1024**3


def default_jobs(device: str) -> int:
    """As many jobs as the machine affords. On a CPU, jobs split the cores: torch already
    uses every core for one model, so two jobs on two cores are no faster (benchmarks/
    bench_batch.py), and each job needs its worker's memory. On CUDA, two jobs per GPU
    share it, each capped to its part of the GPU's memory."""
    from grader.grading.sandbox import Limits

    cores = cpu_cores()
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
    """Each job's share: CPU threads, and on CUDA its part of the GPU's memory. A job never
    takes more threads than OMP_NUM_THREADS allows: threads beyond the cores left free spin
    against whatever else runs there (one training ran 19x slower that way, tests/conftest.py)."""
    threads = max(1, cpu_cores() // jobs)
    if (limit := thread_limit()) is not None:
        threads = min(threads, limit)
    share: dict[str, Any] = {"threads": threads}
    if device.startswith("cuda"):
        import torch

        per_gpu = -(-jobs // max(1, torch.cuda.device_count()))
        share["cuda_memory_fraction"] = round(0.95 / per_gpu, 3)
    return share


START_METHODS = ("forkserver", "spawn")


def job_context(start: str | None = None):
    """The multiprocessing context jobs start in: `forkserver` (jobs forked from a server that
    imported grader.batch.backends.job_imports) where the platform has it and the server
    starts, else `spawn`."""
    asked = start
    if start is None:
        start = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(start)
    if start == "forkserver":
        from multiprocessing import forkserver

        context.set_forkserver_preload(["grader.batch.backends.job_imports"])
        try:
            forkserver.ensure_running()
        except OSError:   # no socket for it here (a read-only temporary folder): jobs import for themselves
            if asked is None:
                return multiprocessing.get_context("spawn")
            raise
    return context


class _Running(NamedTuple):
    """A job the batch is waiting on."""

    process: Any
    receive: Any        # its outcome comes here
    alive: Any          # the sending end of its watch pipe, held until it ends
    entry: BatchEntry
    began: float
    gpu: str | None


def _run_jobs(todo, out: Path, assignment: Assignment, options, report: ReportOptions, jobs: int, device: str,
              events: BatchEvents, start: str | None = None):
    """One process per submission, at most `jobs` at a time; yields outcomes as they end.
    A job that dies without reporting (a crash of the grading side itself) becomes an
    error outcome: the batch goes on."""
    context = job_context(start)
    gpus = []
    if device.startswith("cuda"):
        import torch

        gpus = [f"cuda:{i}" for i in range(max(1, torch.cuda.device_count()))]
    pending = list(todo)
    running: dict[Any, _Running] = {}
    forker = None   # the batch's zygote: its jobs' sandboxed processes are forked from it
    while pending or running:
        while pending and len(running) < jobs:
            entry, key = pending.pop(0)
            if forker is None:
                forker = zygote(options.isolation or isolation_available()) or False
            busy = [job.gpu for job in running.values()]
            gpu = min(gpus, key=busy.count) if gpus else None
            receive, send = context.Pipe(duplex=False)
            # Only this process holds `alive`'s sending end: the job reads end of file when it is gone.
            watch, alive = context.Pipe(duplex=False)
            job_options = replace(options, device=gpu) if gpu else options
            # The batch's environment as it is now (a forked job would otherwise have the server's).
            link = _connect(forker)
            process = context.Process(target=_job, name=f"segrade-{entry.id}",
                                      args=(send, watch, dict(os.environ), entry, key, out, assignment, job_options,
                                            report, link))
            process.start()
            send.close()
            watch.close()
            if link is not None:
                link.close()
            running[process.sentinel] = _Running(process, receive, alive, entry, time.perf_counter(), gpu)
            if events.on_start:
                events.on_start(entry)
        ended = wait(list(running), timeout=1.0 if events.on_progress else None)
        if events.on_progress:  # what each running job wrote of its progress (grader.batch.job.progress_file)
            for sentinel, job in running.items():
                if sentinel not in ended and (progress := read_entry_progress(out, job.entry)) is not None:
                    events.on_progress(job.entry, progress)
        for sentinel in ended:
            process, receive, alive, entry, began, _ = running.pop(sentinel)
            process.join()
            alive.close()
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


def _connect(forker) -> Connection | None:
    """A job's own connection to the batch's zygote; None without one (the job starts its
    sandboxed processes itself, or its own zygote)."""
    if not forker:
        return None
    try:
        return forker.connect()
    except (ZygoteError, OSError):
        return None


def _job(connection, watch, environment: dict[str, str], entry: BatchEntry, key: str, out: Path,
         assignment: Assignment, options, report: ReportOptions, zygote_link: Connection | None = None) -> None:
    """In the job process: grade one submission into staging, then move it into place."""
    become_job(watch, environment)
    if zygote_link is not None:
        use_zygote(zygote_link)
    if options.threads:
        import torch

        torch.set_num_threads(options.threads)
    connection.send(grade_entry(entry, key, out, assignment, options, report))
    connection.close()


def become_job(watch, environment: dict[str, str]) -> None:
    """The start of a job process: it ends with the batch, and has the batch's environment."""
    from grader.shared.processes import die_with_parent

    die_with_parent()   # the parent: the batch (spawn) or the fork server, which may outlive it
    threading.Thread(target=_end_with_batch, args=(watch,), name="segrade-watch", daemon=True).start()
    os.environ.clear()
    os.environ.update(environment)


def _end_with_batch(watch) -> None:
    """In the job: end at once when the batch is gone (its end of `watch` closed without a
    word), as a spawned job's parent-death signal would. The worker, whose parent is this
    job, then gets its own."""
    try:
        watch.recv()
    except (EOFError, OSError):
        pass
    os._exit(1)


class LocalBackend(Backend):
    """Job processes on this machine. `start`: how they start ("forkserver" or "spawn"; None:
    forkserver where the platform has it), for benchmarks that compare the two."""

    name = "local"

    def __init__(self, start: str | None = None) -> None:
        if start is not None and start not in START_METHODS:
            raise ValueError(f"start must be one of {START_METHODS}, got {start!r}")
        self.start = start

    def device(self, options) -> str:
        from grader.shared.device import resolve_device

        return str(resolve_device(options.device))

    def default_jobs(self, device: str, tasks: int) -> int:
        return default_jobs(device)

    def resources(self, device: str, jobs: int) -> dict[str, Any]:
        return _job_resources(device, jobs)

    def run(self, todo, out, assignment, options, report, *, jobs, device, events):
        return _run_jobs(todo, out, assignment, options, report, jobs, device, events, self.start)
