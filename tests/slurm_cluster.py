"""A real single-node Slurm cluster in a temporary folder, for the tests and the benchmark.

Debian's `slurm-wlm` (22.05) and `munge` (installed by .ci/setup when root). Everything lives
in one folder: the munge key, socket and logs (munged runs as the `munge` user), slurm.conf,
the controller's state, slurmd's spool, the logs and pid files. Ports are picked free, and
the munge socket is private to the folder, so it coexists with anything else on the machine.
`SLURM_CONF` points sbatch/squeue/scontrol (and so submitit) at it.

    with SlurmCluster(folder, cpus=2) as cluster:   # or cluster.start() / cluster.stop()
        ...   # os.environ["SLURM_CONF"] is set while it runs

`SlurmCluster.unavailable()` says why it cannot run here (not root, not installed), or None.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "sinfo")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlurmCluster:
    def __init__(self, folder: str | Path, *, cpus: int | None = None, memory_mb: int = 8000,
                 max_time: str = "30", node: str | None = None, partitions: dict[str, str] | None = None) -> None:
        self.folder = Path(folder).resolve()
        self.cpus = cpus or os.cpu_count() or 1
        try:  # slurmd refuses a node that claims more memory than it has
            physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        except (ValueError, OSError):
            physical = memory_mb
        self.memory_mb = max(1024, min(memory_mb, physical - 512))
        self.max_time = max_time
        self.partitions = partitions or {}  # more partitions of the node: name -> its limits (`MaxCPUsPerNode=1 ...`)
        self.host = socket.gethostname().split(".")[0]
        # A node name of its own (slurmd -N): two test clusters on one host (the coordinator's
        # run beside an engineer's) never share a node name, a port or a folder.
        self.node = node or f"segrade-{uuid.uuid4().hex[:6]}"
        self.processes: list[int] = []
        self._old_conf: str | None = None
        self.munge = self.folder / "munge"

    @staticmethod
    def unavailable() -> str | None:
        if os.geteuid() != 0:
            return ("a real Slurm needs root here (munged as the munge user, slurmd as root); run the tests as root "
                    "or on a machine where `bash .ci/setup` could install slurm-wlm and munge")
        missing = [d for d in DAEMONS if not shutil.which(d) and not Path("/usr/sbin", d).exists()]
        if missing:
            return f"{', '.join(missing)} not installed: `bash .ci/setup` installs slurm-wlm and munge when root"
        try:
            pwd.getpwnam("munge")
        except KeyError:
            return "no `munge` user: reinstall the munge package"
        return None

    @property
    def conf(self) -> Path:
        return self.folder / "slurm.conf"

    def _write(self) -> None:
        f = self.folder
        for sub in ("state", "spool"):  # nothing of an earlier attempt's daemons
            shutil.rmtree(f / sub, ignore_errors=True)
        for sub in ("state", "spool", "log", "run"):
            (f / sub).mkdir(parents=True, exist_ok=True)
        # munged runs as `munge`, which must reach its folder (pytest's tmp folders are 0700
        # root's) and refuses group/world-writable ones on the way: a folder of its own in /tmp.
        munge = self.munge = Path(tempfile.mkdtemp(prefix="segrade-munge-"))
        user = pwd.getpwnam("munge")
        os.chown(munge, user.pw_uid, user.pw_gid)
        key = munge / "munge.key"
        if not key.exists():
            subprocess.run([_bin("mungekey"), "--create", f"--keyfile={key}"], check=True, capture_output=True)
        os.chown(key, user.pw_uid, user.pw_gid)
        os.chmod(key, 0o600)
        self.conf.write_text(f"""\
ClusterName=segradetest
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge / 'munge.socket'}
StateSaveLocation={f / 'state'}
SlurmdSpoolDir={f / 'spool'}
SlurmctldPidFile={f / 'run' / 'slurmctld.pid'}
SlurmdPidFile={f / 'run' / 'slurmd.pid'}
SlurmctldLogFile={f / 'log' / 'slurmctld.log'}
SlurmdLogFile={f / 'log' / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={f / 'log' / 'jobcomp.txt'}
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
MinJobAge=600
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MpiDefault=none
NodeName={self.node} NodeAddr=127.0.0.1 NodeHostname={self.host} CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN
PartitionName=debug Nodes={self.node} Default=YES MaxTime={self.max_time} State=UP
""" + "".join(f"PartitionName={name} Nodes={self.node} {limits} State=UP\n" for name, limits in self.partitions.items()))

    def start(self, timeout: float = 60, tries: int = 3) -> "SlurmCluster":
        """Start the daemons; again with other ports when one was taken meanwhile (the ports
        are picked free, then bound by the daemons: another cluster may get there first)."""
        for attempt in range(tries):
            try:
                return self._start(timeout)
            except RuntimeError:
                self.stop()
                if attempt == tries - 1:
                    raise
        return self

    def _start(self, timeout: float) -> "SlurmCluster":
        self._popen = []
        self._write()
        f = self.folder
        munge = self.munge
        self._spawn(["runuser", "-u", "munge", "--", _bin("munged"), "--foreground", f"--socket={munge / 'munge.socket'}",
                     f"--key-file={munge / 'munge.key'}", f"--pid-file={munge / 'munged.pid'}",
                     f"--log-file={munge / 'munged.log'}", f"--seed-file={munge / 'munged.seed'}", "--force"],
                    f / "log" / "munged.out")
        self._wait(lambda: (munge / "munge.socket").exists(), timeout, "munged did not create its socket")
        env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self._spawn([_bin("slurmctld"), "-D", "-f", str(self.conf)], f / "log" / "slurmctld.out", env)
        self._spawn([_bin("slurmd"), "-D", "-f", str(self.conf), "-N", self.node], f / "log" / "slurmd.out", env)
        self._old_conf = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = str(self.conf)
        atexit.register(self.stop)  # daemons never outlive an interrupted test run
        self._wait(self._idle, timeout, "the node did not come up idle")
        return self

    def _idle(self) -> bool:
        probe = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True)
        states = probe.stdout.split()  # one line per partition the node is in
        return probe.returncode == 0 and bool(states) and all(s in ("idle", "mixed", "allocated") for s in states)

    def _spawn(self, command: list[str], log: Path, env: dict | None = None) -> None:
        with open(log, "ab") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                       start_new_session=True)
        self.processes.append(process.pid)
        self._popen = getattr(self, "_popen", []) + [process]

    def _wait(self, condition, timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            dead = [p for p in getattr(self, "_popen", []) if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"{message}: {self.logs()}")
            time.sleep(0.5)

    def logs(self, limit: int = 3000) -> str:
        parts = []
        for path in sorted((self.folder / "log").glob("*")) + [self.munge / "munged.log"]:
            if path.is_file():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-limit:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        if not any(p.poll() is None for p in getattr(self, "_popen", [])):
            shutil.rmtree(self.munge, ignore_errors=True)
            return
        subprocess.run(["scancel", "--full", "--user", "root"], capture_output=True, timeout=30,
                       env={**os.environ, "SLURM_CONF": str(self.conf)})
        for process in reversed(getattr(self, "_popen", [])):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        shutil.rmtree(self.munge, ignore_errors=True)
        if self._old_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = self._old_conf

    def __enter__(self) -> "SlurmCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _bin(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))
