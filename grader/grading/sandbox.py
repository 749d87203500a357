"""Runs the worker (grader.worker) on a private copy of a submission, under limits.

Isolation, strongest available first:
- bubblewrap (`bwrap`), when installed: no network, a private /tmp and /proc, new
  PID/IPC/UTS namespaces, and a file system holding only the system libraries, the
  Python environment, the grader package, the submission copy and the job's inputs
  (read-only except the job folder);
- when running as root, the worker drops to uid/gid 65534 (nobody) before it
  imports any student code, so the process limit applies and nothing root-owned
  is readable or writable (under bubblewrap always; without it only if nobody can
  read the Python installation);
- always: a separate process started as `python -I -u -B` (no PYTHON* variables, no
  user site, cwd not on sys.path until the worker adds it) or, as root under bubblewrap,
  forked from a zygote started that way that had only imported torch and exported a model
  of its own (grader.shared.zygote: the same sandbox, entered before any student code), a
  scrubbed environment, resource limits (address space, CPU time, file size, processes,
  open files), and a wall-clock deadline per phase (import, build, forward, ...).

The worker reports over a private pipe (its fd number is passed on the command
line), one JSON event per line; its stdout/stderr go to a log file that is kept only
as a log, truncated. When the worker dies or overruns a deadline while working on a
variant, that variant gets the precise status (timeout, oom, crashed, error) and a
fresh worker carries on with the remaining variants.

The verifier (grader.verifier) runs through the same function; it may be started before its
request exists (EarlyStart), so that its start-up overlaps the worker's run: it then waits,
with an empty job folder, until its request and programs are in place.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from grader.shared.processes import die_with_parent, scratch_folder
from grader.shared.zygote import Connection, Forked, Zygote, ZygoteError, end_placeholder as _end_placeholder
from grader.shared.protocol import (MAX_LINE_BYTES, PROGRAM, Capture, Done, Environment, Message, ModuleReport,
                                    Observation, Packages, PhaseStarted, ProtocolError, Reader, TrainingOutcome, TrainingReport,
                                    VariantReport, VerifierRequest, WorkerRequest)
from grader.records.results import VariantStatus

# Variables the worker may inherit; everything else (tokens, keys, paths to grading
# data) is dropped.
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES")
NOBODY = 65534

MALFORMED = "the worker sent a malformed message"

# Worker statuses for a variant the worker could not finish (results.VariantStatus values).
TIMEOUT, OOM, CRASHED, ERROR = (VariantStatus.TIMEOUT.value, VariantStatus.OOM.value, VariantStatus.CRASHED.value,
                                VariantStatus.ERROR.value)


@dataclass(frozen=True)
class Limits:
    """Per-worker limits; every field can be set from the command line or the spec."""

    memory_gb: float = 12.0        # address space (torch alone reserves ~4 GB of it)
    cpu_seconds: int = 3600
    file_size_mb: int = 1024       # largest file the worker may write
    processes: int = 256           # applies when the worker runs as its own user
    open_files: int = 1024
    log_bytes: int = 1_000_000     # worker output kept for the report (the tail)
    phase_seconds: dict[str, float] = field(default_factory=lambda: {
        "start": 60, "import": 120, "build": 180, "forward": 120, "check": 300, "train": 1800, "evaluate": 600,
        "capture": 300})

    def deadline(self, phase: str) -> float:
        return float(self.phase_seconds.get(phase, 300))


@dataclass
class WorkerRun:
    """Everything the worker reported, plus what the sandbox saw of its end."""

    environment: dict[str, Any] = field(default_factory=dict)  # the worker's own report, validated (device...)
    modules: list[dict[str, Any]] = field(default_factory=list)
    variants: dict[str, Observation] = field(default_factory=dict)  # id -> observation
    log: str = ""
    isolation: str = ""
    problem: str | None = None      # a failure that hit every variant (e.g. at import)
    problem_status: str = ERROR
    seconds: float = 0.0
    restarts: int = 0
    captures: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # id -> purpose -> capture message


def isolation_available() -> str:
    """'bubblewrap' when bwrap is installed and works here, else 'process'."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return "process"
    probe = subprocess.run([bwrap, "--unshare-net", "--ro-bind", "/", "/", "true"], capture_output=True)
    return "bubblewrap" if probe.returncode == 0 else "process"


def _python_paths() -> list[str]:
    """The interpreter, its standard library, the virtual environment and the worker's own
    sys.path: what the worker must be able to read. Of a source checkout on that path
    (editable install), only the grader package, not the tests or anything else."""
    package = Path(__file__).resolve().parents[1]  # the grader package
    # Never the temporary folder or a folder above it: mounted over the worker's private
    # /tmp it would hide the job's own folder and show other jobs' files.
    temp = Path(tempfile.gettempdir()).resolve()
    on_path = [p for p in _worker_sys_path() if os.path.isdir(p)
               and Path(p).resolve() not in (package.parent, Path.cwd(), temp, *temp.parents)]
    return [sys.base_prefix, sys.prefix, sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
            str(Path(sys.executable).resolve().parent.parent), *on_path, str(package)]


@functools.cache
def _worker_sys_path() -> tuple[str, ...]:
    """sys.path as the worker's interpreter (`python -I`) sets it up: the standard library,
    site-packages and what their .pth files add. Not this process's sys.path: a script's
    folder, PYTHONPATH or pytest's test folders are of no use to the worker (-I ignores
    them) and must not become readable to student code."""
    try:
        out = subprocess.run([sys.executable, "-I", "-c", "import json, sys; print(json.dumps(sys.path))"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
        # the last line: a sitecustomize that prints must not hide it
        return tuple(str(Path(p).resolve()) for p in json.loads(out.strip().splitlines()[-1]) if p)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):  # the worker will fail to start and say why
        return ()


def runs_as_nobody(kind: str) -> bool:
    """Whether the worker drops to uid 65534: only when segrade runs as root, and only if
    that user can read the Python installation and reach the temporary folder (bubblewrap
    mounts them reachable; without it, e.g. a Python under /root or a TMPDIR under a private
    folder would be out of reach)."""
    if os.geteuid() != 0:
        return False
    if kind == "bubblewrap":
        return True
    needed = [*_python_paths(), tempfile.gettempdir()]
    return all(os.stat(folder).st_mode & 0o001 for p in needed for folder in [p, *map(str, Path(p).parents)]
               if os.path.isdir(folder))


def describe_isolation(kind: str, forked: bool = False) -> str:
    """`forked`: the process was forked from the zygote (grader.shared.zygote) into its sandbox."""
    start = ("separate worker process (python -I, forked from a process that had only imported torch and "
             "exported a model of its own)" if forked else "separate worker process (python -I)")
    parts = [start, "scrubbed environment", "temporary copy of the submission",
             "resource limits (memory, CPU time, file size, open files)", "per-phase deadlines"]
    if runs_as_nobody(kind):
        parts.append("runs as uid 65534 (nobody) with a process limit")
    elif os.geteuid() == 0:
        parts.append("runs as root (the Python installation or the temporary folder is out of another user's reach): "
                     "no process limit")
    if kind == "bubblewrap":
        parts.append("bubblewrap: no network, private /tmp, only the Python environment and the job's files visible")
    else:
        parts.append("no bubblewrap (not installed): network and file system are not isolated")
    return "; ".join(parts)


def run_worker(submission_dir: Path, request: WorkerRequest | VerifierRequest, *, limits: Limits = Limits(),
               readable: tuple[Path, ...] = (), extra_env: dict[str, str] | None = None,
               torch_cache: dict[str, Path] | None = None, isolation: str | None = None,
               on_message: Callable[[Message], None] | None = None, entry: str = "grader.worker",
               captures: Path | None = None, link: bool = False, early: EarlyStart | None = None) -> WorkerRun:
    """Run the worker (or, for a VerifierRequest, the verifier) over `request.variants` on a
    copy of `submission_dir`.

    `readable`: extra files or folders the worker may read (a weights file, the
    evaluation data). `torch_cache` maps file names to files placed in the worker's
    torch hub cache (TORCH_HOME), so student code calling torchvision's own weight
    loading finds them offline. `on_message` receives every accepted message as it arrives:
    the bulky predictions are scored there (grader.grading.evaluation) and not kept here, and the
    progress display follows the phases (grader.grading.progress).

    `entry`: the module to run, the worker or the verifier (grader.verifier, which reads only
    `readable` and its job folder). With `link` the folder's files are hard-linked into the job
    folder instead of copied: the verifier's programs, never a submission (student code may
    change its copy).
    `captures`: a folder that receives the programs the worker captured (its capture folder
    is emptied into it, plain files only, when each worker process has ended).
    `early`: a verifier already started for this run (EarlyStart), used for its first attempt
    if it is still alive; run_worker ends it either way."""
    if early is not None and not early.alive():
        early.close()   # it ended while waiting (it never saw the job): start afresh
        early = None
    isolation = isolation or isolation_available()
    run = WorkerRun(isolation=describe_isolation(isolation))
    started = time.perf_counter()
    pending = list(request.variants)
    logs: list[str] = []
    first = True
    while first or pending:
        waiting = early if first else None
        with waiting or scratch_folder("segrade-") as tmp:
            job = Path(tmp)
            if waiting is None:
                _prepare_job(job, torch_cache, runs_as_nobody(isolation))
            _fill_submission(job, submission_dir, runs_as_nobody(isolation), link)
            outcome = _run_once(job, replace(request, variants=tuple(pending)), limits, readable,
                                extra_env or {}, isolation, run, first, on_message, entry, captures is not None,
                                waiting)
            logs.append(_tail(job / "worker.log", limits.log_bytes))
            if captures is not None:
                _collect_captures(job / "captures", captures)
        first = False
        finished = {v.id for v in pending if v.id in run.variants}
        pending = [v for v in pending if v.id not in finished]
        if outcome == "stop":
            break
        run.restarts += 1 if pending else 0
    for variant in pending:  # only after a failure that every variant shares
        run.variants[variant.id] = Observation.unfinished(variant.id, run.problem_status, run.problem)
    run.log = _join_logs(logs, limits.log_bytes)
    run.seconds = time.perf_counter() - started
    return run


def _collect_captures(folder: Path, into: Path) -> None:
    """Move the worker's capture files out of its job folder (it has ended: nothing writes
    them any more). Only plain files with a program's name; links and the rest stay behind."""
    into.mkdir(parents=True, exist_ok=True)
    if not folder.is_dir():
        return
    pattern = PROGRAM.required["file"]
    for path in folder.iterdir():
        try:
            pattern.check(path.name, "file", 0)
        except ProtocolError:
            continue
        if path.is_file() and not path.is_symlink():
            shutil.move(str(path), str(into / path.name))


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:   # another file system
        shutil.copy2(source, target)


def _prepare_job(job: Path, torch_cache: dict[str, Path] | None, as_nobody: bool) -> None:
    """The job folder's own folders, before the process starts (its files come later:
    _fill_submission)."""
    (job / "submission").mkdir()
    (job / "captures").mkdir()
    checkpoints = job / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    for name, target in (torch_cache or {}).items():
        (checkpoints / name).symlink_to(target)
    _own(job, as_nobody)


def _fill_submission(job: Path, submission_dir: Path, as_nobody: bool, link: bool) -> None:
    """Copy (or, with `link`, hard-link) the files the process works on into its folder."""
    # Links are never followed: a submission cannot pull in files from outside itself.
    shutil.copytree(submission_dir, job / "submission", symlinks=True, dirs_exist_ok=True,
                    copy_function=_link_or_copy if link else shutil.copy2,
                    ignore=lambda d, names: [n for n in names if (Path(d) / n).is_symlink()])
    _own(job / "submission", as_nobody)


def _own(folder: Path, as_nobody: bool) -> None:
    if as_nobody:  # the worker must own its job folder
        for path in [folder, *folder.rglob("*")]:
            os.lchown(path, NOBODY, NOBODY)


def _run_once(job: Path, request: WorkerRequest | VerifierRequest, limits: Limits, readable: tuple[Path, ...],
              extra_env: dict[str, str], isolation: str, run: WorkerRun, first: bool,
              on_message: Callable[[Message], None] | None, entry: str = "grader.worker",
              capture: bool = False, early: EarlyStart | None = None) -> str:
    """One worker process (`early`'s, when given). Returns 'stop' when no other worker should be tried."""
    drop = runs_as_nobody(isolation)
    extra = {"capture_folder": str(job / "captures")} if capture else {}
    request = replace(request, **extra, drop_to=NOBODY if drop else None)
    (job / "request.json").write_text(json.dumps(request.to_json()))
    if early is not None:
        proc, read_fd = early.proc, early.go()
    else:
        proc, read_fd = _launch(job, limits, readable, extra_env, isolation, entry)
    if isinstance(proc, Forked):
        run.isolation = describe_isolation(isolation, forked=True)
    try:
        modules = request.modules if isinstance(request, WorkerRequest) else ()
        reader = Reader([v.id for v in request.variants], [m.path for m in modules],
                        request.training.mode if request.training else None, _expected_environment(request))
        return _follow(proc, read_fd, limits, run, first, on_message, reader)
    finally:
        os.close(read_fd)
        _kill(proc)


def _launch(job: Path, limits: Limits, readable: tuple[Path, ...], extra_env: dict[str, str], isolation: str,
            entry: str, wait_fd: int | None = None) -> tuple[subprocess.Popen, int]:
    """Start `entry` in the sandbox on `job`. Returns the process and the read end of its
    channel. With `wait_fd`, the process imports what it needs and then waits for a byte on
    that descriptor before it reads its request (EarlyStart)."""
    drop = runs_as_nobody(isolation)
    env = worker_environment(job, extra_env)
    forker = zygote(isolation)
    if forker is not None:
        try:
            return _launch_forked(forker, job, limits, readable, env, entry, wait_fd, drop)
        except ZygoteError:
            end_zygote()   # started as below, and the next launch starts a new zygote
        except _PlaceholderFailed:
            pass   # started as below, where bubblewrap's own error goes to the log
        except _CannotEnter as error:
            _NO_FORK.append(str(error))   # said once on stderr; the isolation line says how each started
            end_zygote()
            print(f"segrade: {error}; starting sandboxed processes as python -m instead", file=sys.stderr)
    read_fd, write_fd = os.pipe()
    command = [sys.executable, "-I", "-u", "-B", "-m", entry, str(job / "request.json"), str(write_fd)]
    passed = (write_fd,)
    if wait_fd is not None:
        command += [str(wait_fd), str(NOBODY if drop else -1)]
        passed += (wait_fd,)
    if isolation == "bubblewrap":
        command = _bwrap_prefix(job, readable, write_fd) + command
    with open(job / "worker.log", "wb") as log:
        proc = subprocess.Popen(command, cwd=job / "submission", env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, pass_fds=passed, start_new_session=True,
                                preexec_fn=lambda: _set_limits(limits, drop))
    os.close(write_fd)
    return proc, read_fd


# The zygote this process launches through (grader.shared.zygote): its own, started at its
# first forked launch, or a connection to its batch's (use_zygote).
_ZYGOTE: list[Connection] = []
_ZYGOTE_LOCK = threading.Lock()
_NO_FORK: list[str] = []   # why forking into a sandbox failed here, once it has


def forked_start(isolation: str) -> bool:
    """Whether sandboxed processes are forked from a zygote (grader.shared.zygote): under
    bubblewrap, as root (the namespaces bubblewrap makes are then root's to enter), unless
    SEGRADE_FORKED_START=0, and until a forked process could not enter its sandbox here.
    Elsewhere they start as `python -m ENTRY`."""
    return (isolation == "bubblewrap" and os.geteuid() == 0 and os.environ.get("SEGRADE_FORKED_START") != "0"
            and not _NO_FORK)


def zygote(isolation: str) -> Connection | None:
    """The zygote this process launches through: a connection to its batch's, or its own,
    started now if need be (one that died, or that was started with other thread or device
    settings, is replaced); None where processes are not forked (forked_start) or no zygote
    starts."""
    if not forked_start(isolation):
        return None
    env = zygote_env()
    with _ZYGOTE_LOCK:
        if _ZYGOTE and (_ZYGOTE[0].key != Zygote.key_of(env) or not _ZYGOTE[0].alive()):
            _ZYGOTE.pop().close()
        if not _ZYGOTE:
            try:
                _ZYGOTE.append(Zygote(env))
            except (ZygoteError, OSError):
                return None
        return _ZYGOTE[0]


def zygote_env() -> dict[str, str]:
    """The environment a zygote starts with: the scrubbed one (PASSED_ENV) of this process."""
    return {k: os.environ[k] for k in PASSED_ENV if k in os.environ}


def use_zygote(connection: Connection) -> None:
    """Launch through `connection` (to a batch's zygote, grader.batch.backends.local) rather
    than start a zygote of this process's own."""
    end_zygote()
    with _ZYGOTE_LOCK:
        _ZYGOTE.append(connection)


def end_zygote() -> None:
    """End this process's zygote (or its connection to its batch's): the next forked launch
    starts a new one."""
    with _ZYGOTE_LOCK:
        if _ZYGOTE:
            _ZYGOTE.pop().close()


class _PlaceholderFailed(OSError):
    """bubblewrap did not set up the sandbox around its placeholder."""


class _CannotEnter(OSError):
    """A forked process could not join bubblewrap's namespaces here (a container without the
    capability, say): this process starts its sandboxed processes as `python -m` from now on."""


def _launch_forked(forker: Connection, job: Path, limits: Limits, readable: tuple[Path, ...], env: dict[str, str],
                   entry: str, wait_fd: int | None, drop: bool) -> tuple[Forked, int]:
    """_launch's process forked from the zygote into the same sandbox: bubblewrap builds it
    around a placeholder (`cat`, until its stdin closes) and the zygote's child enters it."""
    info_r, info_w = os.pipe()
    try:
        placeholder = subprocess.Popen(
            _bwrap_prefix(job, readable, -1) + ["--info-fd", str(info_w), "--", "/bin/sh", "-c", "echo; exec cat"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, pass_fds=(info_w,),
            start_new_session=True, preexec_fn=die_with_parent)
    finally:
        os.close(info_w)
    fds: list[int] = []
    try:
        ready = select.select([placeholder.stdout], [], [], limits.deadline("start"))[0]
        if not ready or placeholder.stdout.read(1) != b"\n":
            raise _PlaceholderFailed("bubblewrap did not set up the sandbox")
        info = json.loads(os.read(info_r, 65536))
        read_fd, write_fd = os.pipe()
        status_r, status_w = os.pipe()
        log = os.open(job / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)   # as open(..., "wb")
        fds = [write_fd, log, status_w] + ([wait_fd] if wait_fd is not None else [])
        request = {"entry": entry, "request": str(job / "request.json"), "cwd": str(job / "submission"), "env": env,
                   "limits": resource_limits(limits, drop), "uid": NOBODY if drop else -1}
        try:
            pid = forker.start(info, request, fds)
        except BaseException:
            for fd in (read_fd, status_r):
                os.close(fd)
            raise
        forked = Forked(placeholder, pid, status_r)
        if not forked.entered(limits.deadline("start")):
            os.close(read_fd)
            raise _CannotEnter(f"a process forked from the zygote could not enter its sandbox: "
                               f"{_tail(job / 'worker.log', 2000).strip()}")
        return forked, read_fd
    except BaseException:
        _end_placeholder(placeholder, kill=True)
        raise
    finally:
        os.close(info_r)
        for fd in fds:
            if fd != wait_fd:
                os.close(fd)


class EarlyStart:
    """A verifier started before its request exists, so that its start-up (Python, torch and
    torch.export's deserialiser: ~3.5 s on 2 cores) runs while the worker is still working.
    Until `go` it has its own empty job folder, the same sandbox and limits as ever, and waits
    on a pipe; it reads nothing of the job before then. run_worker uses it for its first
    attempt; `close` ends it (used or not) and removes its folder."""

    def __init__(self, limits: Limits, readable: tuple[Path, ...], isolation: str) -> None:
        self.folder: scratch_folder | None = scratch_folder("segrade-")
        self.job = Path(self.folder.__enter__())
        self.proc: subprocess.Popen | None = None
        self.read_fd = self.go_fd = None
        try:
            _prepare_job(self.job, None, runs_as_nobody(isolation))
            wait_fd, self.go_fd = os.pipe()
            try:
                # Only the verifier knows how to wait (grader.verifier.main); the worker never starts early.
                self.proc, self.read_fd = _launch(self.job, limits, readable, {}, isolation, "grader.verifier",
                                                  wait_fd)
            finally:
                os.close(wait_fd)
        except BaseException:
            self.close()
            raise

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def go(self) -> int:
        """The request is in place: let the process read it. Returns its channel's read end,
        which the caller now owns (and closes)."""
        try:
            os.write(self.go_fd, b"g")
        except OSError:   # it has just ended: _follow sees it end and says so
            pass
        os.close(self.go_fd)
        self.go_fd = None
        read_fd, self.read_fd = self.read_fd, None
        return read_fd

    def __enter__(self) -> str:
        return str(self.job)

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for fd in (self.go_fd, self.read_fd):
            if fd is not None:
                os.close(fd)   # a waiting process reads the end of its pipe and exits
        self.go_fd = self.read_fd = None
        if self.proc is not None:
            _kill(self.proc)
        if self.folder is not None:
            self.folder.__exit__(None, None, None)
            self.folder = None


def worker_environment(job: Path, extra_env: dict[str, str]) -> dict[str, str]:
    """The worker's (and the verifier's) environment variables: the few passed on, the job's
    own folders and what the caller adds; nothing else of ours."""
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    return env | {"HOME": str(job / "submission"), "TMPDIR": str(job), "TORCH_HOME": str(job / "torch"),
                  "MPLBACKEND": "Agg"} | extra_env


def _expected_environment(request: WorkerRequest | VerifierRequest) -> dict[str, str]:
    """What the grading process knows of the worker's environment itself: it runs the same
    interpreter and torch, on the device type it was asked for."""
    import torch

    from grader.shared.device import resolve_device

    return {"torch": torch.__version__, "python": sys.version.split()[0],
            "device_type": resolve_device(request.device).type}


def _follow(proc: subprocess.Popen, read_fd: int, limits: Limits, run: WorkerRun, first: bool,
            on_message: Callable[[Message], None] | None, reader: Reader) -> str:
    """Read the worker's messages until it is done, dies, overruns a phase deadline or sends
    a message the protocol rejects (then the worker is stopped and the variant in progress,
    or the whole submission outside any variant, gets the reason)."""
    phase = "start"
    deadline = time.monotonic() + limits.deadline(phase)
    pending: list[bytes] = []  # the start of a line whose end has not come yet
    pending_bytes = 0
    mode = reader.mode
    while True:
        remaining = deadline - time.monotonic()
        ready = select.select([read_fd], [], [], max(0.0, remaining))[0] if remaining > 0 else []
        if not ready:
            if remaining <= 0 or proc.poll() is not None:
                _kill(proc)
                return _ended(proc, run, phase, reader.in_progress, timed_out=remaining <= 0, limits=limits)
            continue
        chunk = os.read(read_fd, 65536)
        if not chunk:  # the worker closed its end: it exited (or closed fd on purpose)
            reason = None
            if not _exited(proc, limits):
                reason = f"{MALFORMED}: it closed the channel during {phase} and did not end"
            elif pending_bytes:
                reason = f"{MALFORMED}: a truncated line ({pending_bytes} bytes without an end) before it closed the channel"
            return _ended(proc, run, phase, reader.in_progress, timed_out=False, limits=limits, reason=reason)
        if b"\n" not in chunk:  # scan each byte once, however long the line
            pending.append(chunk)
            pending_bytes += len(chunk)
            if pending_bytes > MAX_LINE_BYTES:  # no newline in sight: not the grader's worker talking
                _kill(proc)
                return _ended(proc, run, phase, reader.in_progress, timed_out=False, limits=limits,
                              reason=f"{MALFORMED}: a line over {MAX_LINE_BYTES // 1024**2} MB during {phase}")
            continue
        *lines, rest = b"".join([*pending, chunk]).split(b"\n")
        pending, pending_bytes = ([rest] if rest else []), len(rest)
        for line in lines:
            current = reader.in_progress
            try:
                message = reader.read(line)
            except ProtocolError as exc:
                _kill(proc)
                return _ended(proc, run, phase, current, timed_out=False, limits=limits, reason=f"{MALFORMED}: {exc}")
            if on_message is not None:
                on_message(message)
            if isinstance(message, Environment):
                run.environment.update(asdict(message))
            elif isinstance(message, ModuleReport) and first:
                run.modules.append(message.to_json())
            elif isinstance(message, Packages) and first:
                run.environment.update(stubbed=list(message.stubbed),
                                       stood_in={k: list(v) for k, v in message.stood_in.items()})
            elif isinstance(message, PhaseStarted):
                phase = message.phase
                deadline = time.monotonic() + limits.deadline(phase)
            elif isinstance(message, VariantReport):
                run.variants[message.variant] = message.observation
            elif isinstance(message, Capture):
                run.captures.setdefault(message.variant, {})[message.purpose] = {
                    "ok": message.ok, "programs": message.programs, "seconds": message.seconds,
                    "error": message.error, "weights": message.weights}
            elif isinstance(message, TrainingReport):
                # The mode is the one the grading process asked for (the reader checked any the worker sent).
                run.variants[message.variant] = replace(run.variants[message.variant],
                                                        training=message.training.as_asked(mode))
            elif isinstance(message, Done):
                _exited(proc, limits)  # everything is in; one that lingers (a student thread) is stopped
                return "stop"


def _exited(proc: subprocess.Popen, limits: Limits) -> bool:
    """Wait a little for the worker to end; stop it if it does not. Whether it ended itself."""
    try:
        proc.wait(timeout=limits.deadline("start"))
        return True
    except subprocess.TimeoutExpired:
        _kill(proc)
        return False


# What a phase runs of the student's code beyond its name (said when it times out).
PHASE_NOTES = {"build": " (the constructor, then torch.export's capture of the model, which runs its forward once)",
               "capture": " (torch.export's capture of the trained build, which runs its forward once)"}


def _ended(proc: subprocess.Popen, run: WorkerRun, phase: str, current: str | None, *, timed_out: bool,
           limits: Limits, reason: str | None = None) -> str:
    """Turn an unfinished worker into a status on the variant it was working on."""
    code = proc.returncode
    if code is not None and code > 128 and isolation_signal(code - 128):
        code = -(code - 128)  # bwrap's init reports a child killed by signal N as exit code 128 + N
    if timed_out:
        status, message = TIMEOUT, (f"no progress within the {limits.deadline(phase):.0f} s limit of the {phase} phase"
                                    + PHASE_NOTES.get(phase, ""))
    elif code is not None and code < 0:
        sig = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        if -code == signal.SIGKILL:
            status, message = OOM, (f"the worker was killed (SIGKILL) during {phase}: most likely out of memory "
                                    f"(limit {limits.memory_gb:g} GB)")
        elif -code == signal.SIGXCPU:
            status, message = TIMEOUT, f"CPU time limit ({limits.cpu_seconds} s) reached during {phase}"
        elif -code == signal.SIGXFSZ:
            status, message = ERROR, f"wrote a file larger than {limits.file_size_mb} MB during {phase}"
        else:
            status, message = CRASHED, f"the worker crashed with {sig} during {phase}"
    elif phase == "start":
        status, message = ERROR, (f"the worker failed to start (exit code {code}) before any student code ran: "
                                  "a problem with segrade's environment; the worker log says more")
    else:
        status, message = ERROR, (f"the worker process ended (exit code {code}) during {phase}: student code called "
                                  "sys.exit/os._exit or closed the grader's channel")
    if reason is not None:
        status, message = ERROR, reason
    if current is not None and current in run.variants:  # checked already; it died training or evaluating
        run.variants[current] = replace(run.variants[current], training=TrainingOutcome.ended(status, phase, message))
        return "continue"
    if current is not None:
        run.variants[current] = Observation.unfinished(current, status, message, phase)
        return "continue"
    # Outside any variant (start-up or import): every remaining variant shares the failure.
    run.problem, run.problem_status = message, status
    return "stop"


def isolation_signal(number: int) -> bool:
    return number in signal.Signals._value2member_map_


def resource_limits(limits: Limits, as_nobody: bool) -> list[tuple[int, int]]:
    """(resource, value) pairs the worker runs under."""
    pairs = [(resource.RLIMIT_AS, int(limits.memory_gb * 1024**3)),
             (resource.RLIMIT_CPU, limits.cpu_seconds),
             (resource.RLIMIT_FSIZE, limits.file_size_mb * 1024**2),
             (resource.RLIMIT_NOFILE, limits.open_files),
             (resource.RLIMIT_CORE, 0)]
    if as_nobody:
        # Counted per user: the worker runs as nobody (root would be exempt).
        pairs.append((resource.RLIMIT_NPROC, limits.processes))
    return pairs


def _set_limits(limits: Limits, as_nobody: bool) -> None:
    """In the child, before exec: resource limits (inherited by bwrap and the worker)."""
    for name, value in resource_limits(limits, as_nobody):
        resource.setrlimit(name, (value, value))
    die_with_parent()


def _bwrap_prefix(job: Path, readable: tuple[Path, ...], channel_fd: int) -> list[str]:
    """A file system with the system libraries, Python, the grader and the job only."""
    system = ["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc/ld.so.cache", "/etc/ld.so.conf",
              "/etc/ld.so.conf.d", "/etc/localtime", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf"]
    python = _python_paths()
    inputs = [str(Path(p).resolve()) for p in readable]
    args = ["bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
            "--new-session"]
    args += _read_only(system)
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"]
    # TMPDIR may lie deeper than /tmp (a cluster's /tmp/job-123, a scratch disk): without its
    # folders made walkable first, the worker could not reach its own job folder.
    args += _walkable_parents([str(job)]) + ["--bind", str(job), str(job)]
    args += _read_only(python + inputs)  # after the private /tmp, which would hide those under /tmp
    return args + ["--chdir", str(job / "submission")]


def _read_only(paths: list[str]) -> list[str]:
    """--ro-bind arguments for the paths that exist, each once. bwrap would create missing
    mount points as root-only folders, which the worker (nobody) could not walk through,
    so every ancestor is created first, world-traversable."""
    paths = [p for p in dict.fromkeys(paths) if os.path.exists(p)]
    return _walkable_parents(paths) + [arg for p in paths for arg in ("--ro-bind", p, p)]


def _walkable_parents(paths: list[str]) -> list[str]:
    """--dir arguments that create every ancestor of `paths` (but / and the private /tmp)
    world-traversable, shallowest first."""
    ancestors = sorted({str(parent) for p in paths for parent in Path(p).parents if str(parent) not in ("/", "/tmp")},
                       key=lambda a: a.count("/"))
    return [arg for folder in ancestors for arg in ("--perms", "0755", "--dir", folder)]


def _kill(proc: subprocess.Popen | Forked) -> None:
    if isinstance(proc, Forked):
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        return
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def _tail(path: Path, limit: int) -> str:
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            f.seek(max(0, size - limit))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return text if size <= limit else f"[... {size - limit} earlier bytes of output cut ...]\n" + text


def _join_logs(logs: list[str], limit: int) -> str:
    text = "\n[--- worker restarted ---]\n".join(log for log in logs if log)
    return text if len(text) <= limit else "[... earlier output cut ...]\n" + text[-limit:]
