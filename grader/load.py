"""The load step, grading-process side: find a submission's files and fingerprint them.

Nothing here imports or runs student code; that happens only in the worker
(grader.worker), started by grader.sandbox.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from grader.results import Submission

# Folders that hold no submitted code: tooling, caches, virtual environments.
IGNORED_DIRS = {"__pycache__", ".git", ".ipynb_checkpoints", "venv", ".venv", "env", "site-packages", "node_modules"}


class SubmissionError(Exception):
    """The submission cannot be read at all; the message says why and what to do."""


def load_submission(path: str | Path, submission_id: str | None = None) -> Submission:
    path = Path(path)
    if not path.exists():
        raise SubmissionError(f"{path}: no such file or folder")
    if path.is_file() and path.suffix != ".py":
        raise SubmissionError(
            f"{path}: this version of segrade reads a folder or a single .py file; "
            f"unpack or convert the {path.suffix or 'file'} to one of those"
        )
    root = path if path.is_dir() else path.parent
    files = [path.name] if path.is_file() else submission_files(root)
    python_files = tuple(f for f in files if f.endswith(".py"))
    if not python_files:
        raise SubmissionError(f"{path}: no .py file found, so there is no model code to grade")
    default_id = path.stem if path.is_file() else path.resolve().name
    return Submission(
        id=submission_id or default_id,
        path=path.resolve(),
        python_files=python_files,
        sha256=_fingerprint(root, files),
    )


def submission_files(root: Path) -> list[str]:
    """Regular files under root, relative and sorted; symlinks are never followed."""
    found = []
    for item in sorted(root.rglob("*")):
        rel = item.relative_to(root)
        if any(part in IGNORED_DIRS or part.startswith(".") for part in rel.parts):
            continue
        if item.is_symlink() or not item.is_file():
            continue
        found.append(rel.as_posix())
    return found


def _fingerprint(root: Path, files: list[str]) -> str:
    digest = hashlib.sha256()
    for rel in files:
        digest.update(rel.encode() + b"\0")
        digest.update(hashlib.sha256((root / rel).read_bytes()).digest())
    return digest.hexdigest()
