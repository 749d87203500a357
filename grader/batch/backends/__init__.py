"""Where the jobs of `segrade grade` run: a backend takes the submissions to grade (each with
its grade key) and yields their outcomes as they end.

- `LocalBackend` (`--backend local`, the default, grader.batch.backends.local): job processes on this
  machine, at most `--jobs` at a time;
- `SlurmBackend` (`--backend slurm`, grader.batch.backends.slurm): one Slurm array task per
  submission, submitted with submitit; OUT must be on a filesystem the nodes share.

Every backend grades a submission with `grader.batch.job.grade_entry`, which writes OUT/<id>
through the staging folder and commits it with done.json: the same files, whatever ran it.
"""

from __future__ import annotations

from grader.batch.backends.base import Backend

BACKENDS = ("local", "slurm")


def make_backend(name: str, **settings) -> Backend:
    if name == "local":
        from grader.batch.backends.local import LocalBackend

        return LocalBackend()
    if name == "slurm":
        from grader.batch.backends.slurm import SlurmBackend, SlurmConfig

        return SlurmBackend(SlurmConfig.load(**settings))
    raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
