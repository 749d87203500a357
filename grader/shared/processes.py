"""Process helpers that both sides use (neutral: imports nothing from segrade)."""

from __future__ import annotations

import os
import signal
import sys


def cpu_cores() -> int:
    """The cores this process may run on: its CPU affinity (what a container, `taskset` or a
    Slurm allocation leaves it), else every core of the machine."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):   # no affinity on this platform (macOS)
        return os.cpu_count() or 1


def thread_limit() -> int | None:
    """OMP_NUM_THREADS when it sets a positive number of threads ("4", or "4,2" for nested
    levels): the most any one process should use. None when unset or unreadable."""
    first = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(first) if first.isdigit() and int(first) > 0 else None


def die_with_parent() -> None:
    """Linux: get SIGKILL when the parent process dies, so that killing a grade (even with
    SIGKILL) leaves no worker or batch job running on. Cleared when the uid changes: the
    worker calls it again after dropping privileges. Elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def drop_privileges(uid: int) -> None:
    """Started as root (inside the sandbox): become `uid` before touching student code or
    captured programs. A no-op when not root."""
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        die_with_parent()  # the uid change cleared it


# The scratch folders in use by this process: a process that must end at once (a Slurm task
# on SIGTERM or its time-limit warning) removes them first (remove_scratch_folders), since the
# `with` blocks that would have will not run.
_LIVE_SCRATCH: set[str] = set()


class scratch_folder:
    """`with scratch_folder("segrade-") as path:` a temporary folder that is removed on exit even
    while a process that was just killed still has files being written or closed in it (a
    sandboxed worker's last writes land after its group is killed): removal is retried for a
    few seconds, and what cannot be removed is left in the temporary directory rather than
    failing the grade."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __enter__(self) -> str:
        import tempfile

        self.path = tempfile.mkdtemp(prefix=self.prefix)
        _LIVE_SCRATCH.add(self.path)
        return self.path

    def __exit__(self, *exc) -> None:
        import shutil
        import time

        _LIVE_SCRATCH.discard(self.path)
        for attempt in range(6):
            try:
                shutil.rmtree(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1 * 2 ** attempt)
        shutil.rmtree(self.path, ignore_errors=True)


def remove_scratch_folders() -> None:
    """Remove every scratch folder still in use (captured programs can be hundreds of MB), for
    a process about to end without unwinding."""
    import shutil

    for path in list(_LIVE_SCRATCH):
        shutil.rmtree(path, ignore_errors=True)


def end_now(status: int) -> None:
    """End the worker or the verifier once everything is sent: the interpreter's teardown with
    torch loaded (and any thread or atexit hook student code left) takes most of a second that
    the grade would wait on."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
