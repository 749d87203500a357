"""Sandboxed processes forked from one that has already imported torch.

A worker or a verifier started as `python -m ...` spends ~3-5 CPU-seconds importing torch,
torch.export and torch._dynamo before it does anything; a grade starts two of them and a
worker that died starts again. The zygote is a trusted process, started clean by the grading
process (`python -I -u -B -m grader.shared.zygote FD`), that imports those libraries once,
exports a small model of its own (`warm_up`: torch.export's first call imports and caches
more of torch), reads no file and then, for each request, forks a child that joins a
bubblewrap sandbox the grading process has just built and runs the worker's or the
verifier's `__main__` there, exactly as `python -I -u -B -m ENTRY` would in that sandbox.

Why the sandbox is the same: bubblewrap builds it as ever (grader.grading.sandbox: the same
mounts, no network, private /tmp and /proc, new PID/IPC/UTS namespaces) around a placeholder
program that waits; the forked child enters its namespaces (setns) and its root, forks once
more so that the process that runs the entry is inside the PID namespace, and then, before
any student code or captured program is read: a new session, the resource limits, only the
channel, the log and /dev/null open, the job's environment, the job's folder as working
directory; the entry itself drops to nobody as it always has. Ending the placeholder ends the
namespace and every process in it. Only where segrade runs as root (the namespaces bubblewrap
makes are then the root user's to enter); elsewhere processes are started with `python -m`.

What is shared with the zygote is what it imported (torch, numpy, the standard library) and
the caches its own export filled: no file, no secret, no student code has ever been in it.
Its children tell the grading process how the entry ended through a pipe of its own (ENTERED
once in the sandbox, then 4 bytes: the exit code, negative for a signal).

Neutral: imports nothing of segrade outside grader/shared/; the entries it may run are named
(ENTRIES) and run as `__main__`, as `python -m` runs them.
"""

from __future__ import annotations

import array
import ctypes
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading

from grader.shared.processes import die_with_parent

ENTRIES = ("grader.worker", "grader.verifier")
# What the children would import first anyway (the worker through torchvision, the verifier
# through torch.export's loader): the costly part of their start. torchvision is not among
# them: the verifier never imports it (0.3 s for the worker on top of these).
PRELOAD = ("numpy", "torch", "torch.export", "torch._dynamo", "torch._export.serde.serialize")
# Read by torch or OpenMP as they load: a zygote serves only requests with its own values.
LOAD_TIME_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES")
CHANNEL_FD, WAIT_FD = 3, 4     # where the entry finds its channel (and its wait pipe), as argv says
NAMESPACES = ("ipc", "uts", "net", "pid", "mnt")   # mnt last: /proc/PID/ns must still be reachable
MAX_REQUEST = 1 << 20
STATUS = struct.Struct("i")
ENTERED = b"E"   # first on the status pipe: the child is in the sandbox (then the exit code)


class ZygoteError(OSError):
    """The zygote did not start, or stopped answering."""


# --- the zygote process -----------------------------------------------------------------

def _serve(control: socket.socket) -> None:
    """Fork one child per request, on whichever connection it comes, and answer there with the
    child's pid. A request {"connect": true} with one socket adds that socket as another
    connection (a batch's job). Ends when the process that started it closes `control` (or
    dies); another connection ending only ends that connection."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)   # children are reaped by the kernel
    control.sendall(b"ready")
    connections = [control]
    while True:
        for sock in select.select(connections, [], [])[0]:
            try:
                data, fds = _receive(sock)
            except OSError:
                data, fds = b"", []
            if not data:
                if sock is control:
                    return
                connections.remove(sock)
                sock.close()
                continue
            request = json.loads(data)
            if request.get("connect"):
                connections += [socket.socket(fileno=fd) for fd in fds]
                sock.sendall(b"{}")
                continue
            pid = os.fork()
            if pid == 0:
                for each in connections:
                    each.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                _child(request, fds)   # never returns
            for fd in fds:
                os.close(fd)
            sock.sendall(json.dumps({"pid": pid}).encode())


def _receive(sock: socket.socket) -> tuple[bytes, list[int]]:
    fds = array.array("i")
    data, ancillary, _, _ = sock.recvmsg(MAX_REQUEST, socket.CMSG_SPACE(8 * fds.itemsize))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
    return data, list(fds)


def _child(request: dict, fds: list[int]) -> None:
    """Enter the sandbox around request["target"], then fork the process that runs the entry
    inside its PID namespace, wait for it and report how it ended on the status pipe."""
    status = fds[2]
    code = 127
    try:
        _enter(int(request["target"]), {name: int(inode) for name, inode in request["namespaces"].items()})
        pid = os.fork()
        if pid == 0:
            _run(request, fds)   # never returns
        os.write(status, ENTERED)
        for fd in fds:
            if fd != status:
                os.close(fd)
        _, raw = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(raw)
    except BaseException as error:   # said in the log; the grading process sees exit code 127
        try:
            os.write(fds[1], f"segrade: the sandboxed process could not start: {error!r}\n".encode())
        except OSError:
            pass
    finally:
        try:
            os.write(status, STATUS.pack(code))
        finally:
            os._exit(0)


def _enter(target: int, expected: dict[str, int]) -> None:
    """Join the namespaces and the root of process `target` (bubblewrap's, in its sandbox),
    once they are shown to be the namespaces bubblewrap said it made (`expected`, from its
    --info-fd: name -> inode): never another process's that took its pid."""
    libc = ctypes.CDLL(None, use_errno=True)
    root = os.open(f"/proc/{target}/root", os.O_RDONLY)
    handles = [os.open(f"/proc/{target}/ns/{name}", os.O_RDONLY) for name in NAMESPACES]
    check_namespaces(dict(zip(NAMESPACES, handles)), expected)
    for name, fd in zip(NAMESPACES, handles):
        if libc.setns(fd, 0) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns({name}) into the sandbox: {os.strerror(errno)}")
        os.close(fd)
    os.fchdir(root)
    os.chroot(".")
    os.close(root)


def check_namespaces(handles: dict[str, int], expected: dict[str, int]) -> None:
    """Raise unless each namespace handle (name -> open fd of /proc/PID/ns/NAME) is the one
    `expected` names (name -> inode) and none is this process's own."""
    for name, fd in handles.items():
        inode = os.fstat(fd).st_ino
        if name not in expected or inode != expected[name] or inode == os.stat(f"/proc/self/ns/{name}").st_ino:
            raise OSError(f"the {name} namespace of the sandbox's process is not the one bubblewrap made "
                          f"({inode}, expected {expected.get(name)})")


def _run(request: dict, fds: list[int]) -> None:
    """In the sandbox's PID namespace: become the entry's process, as `python -I -u -B -m
    ENTRY REQUEST CHANNEL [WAIT UID]` started there would be, and run it."""
    code = 1
    try:
        import fcntl
        import random
        import resource
        import runpy

        os.setsid()
        # Above every number the entry's descriptors go to, so that no dup2 closes another
        channel, log, _status, *wait = [fcntl.fcntl(fd, fcntl.F_DUPFD, 16) for fd in fds]
        os.dup2(channel, CHANNEL_FD, inheritable=True)
        if wait:
            os.dup2(wait[0], WAIT_FD, inheritable=True)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        keep = {0, 1, 2, CHANNEL_FD, *([WAIT_FD] if wait else [])}
        for fd in _open_fds():
            if fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        die_with_parent()
        # As bubblewrap does for what it starts: no set-uid program can give privileges back.
        if ctypes.CDLL(None, use_errno=True).prctl(38, 1, 0, 0, 0) != 0:   # PR_SET_NO_NEW_PRIVS
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        for name, value in request["limits"]:
            resource.setrlimit(name, (value, value))
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"], PWD=request["cwd"])   # bubblewrap's --chdir sets PWD
        os.environ.update(_set_by_preload(request))
        random.seed()   # not the zygote's state, shared by every child
        entry = request["entry"]
        if entry not in ENTRIES:
            raise ValueError(f"not an entry the zygote runs: {entry!r}")
        sys.argv = [entry, request["request"], str(CHANNEL_FD), *([str(WAIT_FD), str(request["uid"])] if wait else [])]
        try:
            runpy.run_module(entry, run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as end:
            code = end.code if isinstance(end.code, int) else (0 if end.code is None else 1)
            if not isinstance(end.code, int) and end.code is not None:
                print(end.code, file=sys.stderr)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


# Environment variables the preloaded imports set in the zygote (torch._dynamo's import sets
# TORCHINDUCTOR_CACHE_DIR): a started entry has them too, from its own user and TMPDIR.
_SET_BY_PRELOAD: set[str] = set()


def _set_by_preload(request: dict) -> dict[str, str]:
    if "TORCHINDUCTOR_CACHE_DIR" not in _SET_BY_PRELOAD:
        return {}
    import pwd
    import tempfile

    # torch's rule (torch._inductor.runtime.cache_dir_utils), for the user the entry runs as
    uid = request["uid"] if request["uid"] >= 0 else os.getuid()
    tempfile.tempdir = None   # TMPDIR is the job's now
    return {"TORCHINDUCTOR_CACHE_DIR": os.path.join(tempfile.gettempdir(), f"torchinductor_{pwd.getpwuid(uid).pw_name}")}


def warm_up() -> str | None:
    """Export, save and load a small model of the zygote's own, as the worker and the verifier
    do with every variant: torch.export imports much of torch on its first call and fills
    caches (sympy's, the op tables) that each child would otherwise fill again (a tiny
    submission's grade: 2.1 -> 1.3 s). Only fake tensors are traced and nothing is computed on
    data, so no thread pool starts; torch's random state is put back, as a started process has
    it. Returns None, or what failed (the children then pay for it themselves)."""
    try:
        import io

        import torch
        from torch.export import Dim

        nn = torch.nn
        with torch.random.fork_rng(devices=[]):
            model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.ConvTranspose2d(4, 4, 2, stride=2), nn.Dropout2d(0.1), nn.Conv2d(4, 2, 1))
            sizes = ({0: Dim("n", min=1, max=64), 2: 32 * Dim("h", min=1, max=64), 3: 32 * Dim("w", min=1, max=64)},)
            for mode in (True, False):
                model.train(mode)
                program = torch.export.export(model, (torch.zeros(2, 3, 64, 64),), strict=False, dynamic_shapes=sizes)
            buffer = io.BytesIO()
            torch.export.save(program, buffer)
            buffer.seek(0)
            torch.export.load(buffer).module()
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def _open_fds() -> list[int]:
    return [int(name) for name in os.listdir("/proc/self/fd") if name.isdigit()]


def main(argv: list[str]) -> int:
    import importlib

    die_with_parent()
    sock = socket.socket(fileno=int(argv[0]))
    before = dict(os.environ)
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:   # a child imports what it needs itself
            pass
    _SET_BY_PRELOAD.update(k for k in os.environ if k not in before)
    if "cold" not in argv[1:]:   # cold: only imported (benchmarks/bench_sandbox_start.py compares)
        warm_up()
    _serve(sock)
    return 0


# --- the grading process's side -----------------------------------------------------------

class Forked:
    """A process the zygote started, as the grading process follows it: `poll`, `wait`,
    `returncode` and `kill`, like subprocess.Popen's. `placeholder` is bubblewrap around it:
    ended (its stdin closed) once the entry has ended, killed with it."""

    def __init__(self, placeholder: subprocess.Popen, pid: int, status_fd: int) -> None:
        self.placeholder, self.pid, self._status = placeholder, pid, status_fd
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._status], [], [], 0)[0]:
            self._ended()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not select.select([self._status], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(f"sandboxed process {self.pid}", timeout)
            self._ended()
        return self.returncode

    def kill(self) -> None:
        """SIGKILL to bubblewrap (its PID namespace ends, and every process in it) and to the
        child outside it."""
        try:
            os.killpg(self.placeholder.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            os.kill(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def entered(self, timeout: float) -> bool:
        """Wait for the child to say it is in the sandbox; False when it could not enter (its
        reason is in the log) or said nothing in `timeout` seconds: then it is killed, and the
        launcher ends the placeholder it started (once, after which its pid may be reused)."""
        if select.select([self._status], [], [], timeout)[0] and os.read(self._status, 1) == ENTERED:
            return True
        self.kill()
        os.close(self._status)
        self.returncode = -signal.SIGKILL
        return False

    def _ended(self) -> None:
        data = os.read(self._status, STATUS.size)
        os.close(self._status)
        # No status: the child was killed before it could say (kill(), or the machine's OOM killer).
        self.returncode = STATUS.unpack(data)[0] if len(data) == STATUS.size else -signal.SIGKILL
        end_placeholder(self.placeholder)


def end_placeholder(placeholder: subprocess.Popen, kill: bool = False) -> None:
    """End bubblewrap's placeholder: its `cat` reads the end of its stdin and exits, bubblewrap
    with it, and the namespace ends with every process still in it. `kill`: at once."""
    if kill:
        try:
            os.killpg(placeholder.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for stream in (placeholder.stdin, placeholder.stdout):
        try:
            stream.close()
        except OSError:
            pass
    try:
        placeholder.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(placeholder.pid, signal.SIGKILL)
        placeholder.wait()


class Connection:
    """A connection to a zygote: `start` forks one sandboxed process. One per process that
    launches (the zygote's starter holds the first; `Zygote.connect` makes more, for a batch's
    jobs); usable from several threads."""

    def __init__(self, sock: socket.socket, key: tuple[str | None, ...]) -> None:
        self._sock, self.key = sock, key
        # Also where the socket came through multiprocessing: its descriptor keeps the
        # O_NONBLOCK a timeout set, and the rebuilt socket would not wait for the answer.
        self._sock.settimeout(30.0)
        self._lock = threading.Lock()

    def alive(self) -> bool:
        return self._sock.fileno() >= 0

    def start(self, info: dict, request: dict, fds: list[int]) -> int:
        """Fork a child that enters the sandbox bubblewrap described in `info` (what it wrote
        to --info-fd: its process and namespaces) and runs request["entry"]. `fds`: its
        channel, its log, the write end of its status pipe [, its wait pipe]. Returns the
        child's pid."""
        namespaces = {name: info[f"{name}-namespace"] for name in NAMESPACES if f"{name}-namespace" in info}
        answer = self._ask({**request, "target": info["child-pid"], "namespaces": namespaces}, fds)
        return int(answer["pid"])

    def _ask(self, request: dict, fds: list[int]) -> dict:
        with self._lock:
            try:
                self._sock.sendmsg([json.dumps(request).encode()],
                                   [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
                answer = self._sock.recv(4096)
            except OSError as error:
                raise ZygoteError(f"the zygote stopped answering: {error}") from error
        if not answer:
            raise ZygoteError("the zygote has ended")
        return json.loads(answer)

    def close(self) -> None:
        self._sock.close()

    def __reduce__(self):   # passed to a batch's job (multiprocessing sends the socket's descriptor)
        return (Connection, (self._sock, self.key))


class Zygote(Connection):
    """The zygote process, started clean, and the starter's connection to it."""

    def __init__(self, env: dict[str, str], timeout: float = 120.0, warm: bool = True) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        super().__init__(ours, self.key_of(env))
        try:
            self.proc = subprocess.Popen([sys.executable, "-I", "-u", "-B", "-m", "grader.shared.zygote",
                                          str(theirs.fileno()), *([] if warm else ["cold"])],
                                         env=env, pass_fds=(theirs.fileno(),),
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True,
                                         preexec_fn=die_with_parent)
        finally:
            theirs.close()
        self._sock.settimeout(timeout)
        try:
            ready = self._sock.recv(16)
        except OSError as error:
            self.close()
            raise ZygoteError(f"the zygote did not start: {error}") from error
        if ready != b"ready":
            self.close()
            raise ZygoteError("the zygote did not start")
        self._sock.settimeout(30.0)

    @staticmethod
    def key_of(env: dict[str, str]) -> tuple[str | None, ...]:
        return tuple(env.get(name) for name in LOAD_TIME_ENV)

    def alive(self) -> bool:
        return super().alive() and self.proc.poll() is None

    def connect(self) -> Connection:
        """Another connection to this zygote, for another process (a batch's job)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._ask({"connect": True}, [theirs.fileno()])
        finally:
            theirs.close()
        return Connection(ours, self.key)

    def close(self) -> None:
        super().close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def __reduce__(self):
        raise TypeError("a Zygote stays with the process that started it: pass Zygote.connect()")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
