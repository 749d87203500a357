"""Runs the worker (grader.worker) on a private copy of a submission.

Isolation in this version: a separate process, started with `python -I -u -B` (no
PYTHON* variables, no user site, the working directory not on sys.path until the
worker adds it after its own imports), a scrubbed environment, a temporary copy of
the submission as working directory and HOME, and a wall-clock timeout. The
worker's stdout/stderr are kept only as a log. Network and file-system isolation
(bubblewrap) and resource limits are not in this version yet.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.results import Submission

# Variables the worker may inherit; everything else (tokens, keys, paths to
# grading data) is dropped.
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES")
LOG_LIMIT = 20_000  # characters of worker output kept in results


@dataclass(frozen=True)
class WorkerOutcome:
    response: dict[str, Any] | None  # None when the worker wrote nothing readable
    returncode: int | None           # None on timeout
    log: str
    seconds: float

    @property
    def problem(self) -> str | None:
        """What went wrong with the worker process itself, in a sentence, or None."""
        if self.returncode is None:
            return f"the worker was stopped after {self.seconds:.0f} s (time limit)"
        if self.response is None:
            return f"the worker exited with code {self.returncode} before reporting anything"
        if self.returncode != 0 or not self.response.get("complete"):
            return f"the worker exited with code {self.returncode} before finishing; results so far are kept"
        return None


def run_worker(submission: Submission, request: dict[str, Any], *, timeout_s: float,
               extra_env: dict[str, str] | None = None, torch_cache: dict[str, Path] | None = None) -> WorkerOutcome:
    """Run the worker on a copy of the submission. `torch_cache` maps file names to files
    placed in the worker's torch hub cache (TORCH_HOME), so that student code calling
    torchvision's own weight loading finds grader-supplied weights offline."""
    with tempfile.TemporaryDirectory(prefix="segrade-") as tmp:
        tmp = Path(tmp)
        workdir = tmp / "submission"
        _copy_submission(submission.path, workdir)
        request_path, response_path = tmp / "request.json", tmp / "response.json"
        request_path.write_text(json.dumps({**request, "python_files": list(submission.python_files)}))

        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        torch_home = tmp / "torch"
        checkpoints = torch_home / "hub" / "checkpoints"
        checkpoints.mkdir(parents=True)
        for name, target in (torch_cache or {}).items():
            (checkpoints / name).symlink_to(target)
        env |= {"HOME": str(workdir), "TMPDIR": str(tmp), "TORCH_HOME": str(torch_home), "MPLBACKEND": "Agg"}
        env |= extra_env or {}

        started = time.perf_counter()
        # -I ignores PYTHON* variables, so unbuffered output (-u: the log survives a
        # hard exit) and no .pyc files (-B) are asked for as flags.
        command = [sys.executable, "-I", "-u", "-B", "-m", "grader.worker", str(request_path), str(response_path)]
        try:
            proc = subprocess.run(command, cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout_s)
            returncode, output = proc.returncode, proc.stdout
        except subprocess.TimeoutExpired as exc:
            returncode, output = None, exc.output or b""
        seconds = time.perf_counter() - started
        return WorkerOutcome(_read_response(response_path), returncode, _tail(output), seconds)


def _copy_submission(source: Path, workdir: Path) -> None:
    if source.is_file():
        workdir.mkdir()
        shutil.copy2(source, workdir / source.name)
        return
    # Links are never followed: a submission cannot pull in files from outside itself.
    shutil.copytree(source, workdir, symlinks=True,
                    ignore=lambda d, names: [n for n in names if (Path(d) / n).is_symlink()])


def _read_response(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _tail(output: bytes) -> str:
    text = output.decode("utf-8", errors="replace")
    return text if len(text) <= LOG_LIMIT else "[... earlier output cut ...]\n" + text[-LOG_LIMIT:]
