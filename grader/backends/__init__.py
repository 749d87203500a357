"""Where the jobs of `segrade grade` run: a backend takes the submissions to grade (each with
its grade key) and yields their outcomes as they end.

- `LocalBackend` (`--backend local`, the default): job processes on this machine, at most
  `--jobs` at a time (grader.batch);
- `SlurmBackend` (`--backend slurm`, grader.backends.slurm): one Slurm array task per
  submission, submitted with submitit; OUT must be on a filesystem the nodes share.

Every backend grades a submission with `grader.batch.grade_entry`, which writes OUT/<id>
through the staging folder and commits it with done.json: the same files, whatever ran it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

BACKENDS = ("local", "slurm")


class Backend:
    name = "?"

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
        from grader.batch import STAGING

        shutil.rmtree(out / STAGING, ignore_errors=True)

    def run(self, todo, out: Path, assignment, options, *, jobs: int, device: str, pdf: bool, visibility: str,
            on_start: Callable | None = None, on_note: Callable[[str], None] | None = None) -> Iterator:
        raise NotImplementedError


class LocalBackend(Backend):
    """Job processes on this machine (grader.batch._run_jobs)."""

    name = "local"

    def device(self, options) -> str:
        from grader.device import resolve_device

        return str(resolve_device(options.device))

    def default_jobs(self, device: str, tasks: int) -> int:
        from grader.batch import default_jobs

        return default_jobs(device)

    def resources(self, device: str, jobs: int) -> dict[str, Any]:
        from grader.batch import _job_resources

        return _job_resources(device, jobs)

    def run(self, todo, out, assignment, options, *, jobs, device, pdf, visibility, on_start=None, on_note=None):
        from grader.batch import run_local_jobs

        return run_local_jobs(todo, out, assignment, options, jobs=jobs, device=device, pdf=pdf,
                              visibility=visibility, on_start=on_start, on_note=on_note)


def make_backend(name: str, **settings) -> Backend:
    if name == "local":
        return LocalBackend()
    if name == "slurm":
        from grader.backends.slurm import SlurmBackend, SlurmConfig

        return SlurmBackend(SlurmConfig.load(**settings))
    raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
