"""What a backend does: take the submissions to grade (each with its grade key) and yield
their outcomes as they end (grader.batch.backends.local, grader.batch.backends.slurm)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from grader.batch.job import STAGING


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

    def run(self, todo, out: Path, assignment, options, *, jobs: int, device: str, pdf: bool, visibility: str,
            on_start: Callable | None = None, on_note: Callable[[str], None] | None = None,
            on_progress: Callable | None = None, on_wait: Callable | None = None) -> Iterator:
        """Yield each submission's BatchOutcome as it ends. `on_progress(entry, ProgressState)`:
        now and then, where each running job has got to (grader.grading.progress).
        `on_wait(pending)`: at each look at the queue, the tasks not started yet and why
        (grader.batch.backends.slurm_pending.Pending; a local backend never calls it)."""
        raise NotImplementedError
