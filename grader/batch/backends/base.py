"""What a backend does: take the submissions to grade (each with its grade key) and yield
their outcomes as they end (grader.batch.backends.local, grader.batch.backends.slurm)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.batch.job import STAGING, BatchEntry, BatchOutcome


@dataclass(frozen=True)
class BatchEvents:
    """What the command that runs a batch is told as it goes (each optional): the plan (to
    grade, already done), each job's start, its progress now and then
    (grader.grading.progress.ProgressState), each outcome as it ends, and notes."""

    on_plan: Callable[[list[BatchEntry], list[BatchOutcome]], None] | None = None
    on_start: Callable[[BatchEntry], None] | None = None
    on_progress: Callable[[BatchEntry, Any], None] | None = None
    on_done: Callable[[BatchOutcome], None] | None = None
    on_note: Callable[[str], None] | None = None
    # Slurm tasks not started yet, at each look at the queue: [slurm_pending.Pending] (their
    # reasons and waits); an empty list once none waits. A local backend never calls it.
    on_wait: Callable[[list], None] | None = None

    def note(self, message: str) -> None:
        if self.on_note is not None:
            self.on_note(message)


class Backend:
    name = "?"

    def prepare(self, options, note: Callable[[str], None]) -> None:
        """Before the batch is planned: settle the request with the resources (Slurm reads its
        partition here, and refuses a request that can never run)."""

    def device(self, options) -> str:
        """The device the jobs grade on (part of the grade key)."""
        raise NotImplementedError

    def default_jobs(self, device: str, tasks: int) -> int:
        raise NotImplementedError

    def resources(self, device: str, jobs: int) -> dict[str, Any]:
        """GradeOptions fields for each job's share (threads, GPU memory fraction)."""
        raise NotImplementedError

    def clear_staging(self, out: Path, finished: bool = False) -> None:
        """Remove what killed jobs left half-written in OUT's staging folder."""
        shutil.rmtree(out / STAGING, ignore_errors=True)

    def run(self, todo, out: Path, assignment, options, report, *, jobs: int, device: str,
            events: BatchEvents) -> Iterator:
        """Yield each submission's BatchOutcome as it ends, graded with GradeOptions `options`
        and written with ReportOptions `report`; `events.on_start` as each starts and
        `events.on_progress(entry, ProgressState)` now and then, where each running job has got
        to (grader.grading.progress)."""
        raise NotImplementedError
