"""The Slurm backend of `segrade grade --backend slurm`: one Slurm array task per submission,
submitted with submitit (BRIEF §9).

What lives where (OUT must be on a filesystem the nodes share, and so must the venv: tasks
run with the submitting interpreter):

    OUT/.segrade-slurm/tasks.json   every task submitted: submission, grade key, job id
    OUT/.segrade-slurm/logs/        submitit's folder: each task's stdout/stderr and pickles
    OUT/.segrade-staging/           each task's output before its commit (as locally)
    OUT/<id>/done.json              written by the task itself, last, then the rename

A task grades its submission exactly as a local job does (grader.batch.job.grade_entry) and
commits OUT/<id> itself, so the submitting command only watches: it polls `squeue` and the
done.json files. Killing it loses nothing: the tasks go on under Slurm, and a re-run finds
the ones still queued or running in tasks.json (same submission, same grade key) and waits
for them instead of submitting them again; those that finished meanwhile are already
committed. A task that ends without a done.json (time limit, out of memory, node failure,
preemption, cancelled) becomes an error outcome with Slurm's state and reason, its log's
tail and a segrade status (timeout, oom, crashed, error); a re-run submits it again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import tomllib
import uuid
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from grader.batch.backends.base import Backend
from grader.batch.backends.slurm_pending import Pending, describe, never_starts, waited_since
from grader.shared.processes import remove_scratch_folders   # imported here, not in a signal handler

STATE = ".segrade-slurm"
TASKS_FILE = "tasks.json"
# squeue states of a task that is not over yet.
LIVE_STATES = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
               "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING", "STOPPED", "RESV_DEL_HOLD", "SPECIAL_EXIT"}
# Slurm's end states -> segrade status and words for the report.
FAILURES = {
    "TIMEOUT": ("timeout", "the task reached its time limit (raise --slurm-time)"),
    "DEADLINE": ("timeout", "the task reached its deadline"),
    "OUT_OF_MEMORY": ("oom", "the task ran out of memory (raise --slurm-mem)"),
    "NODE_FAIL": ("crashed", "the node failed"),
    "BOOT_FAIL": ("crashed", "the node failed to boot"),
    "PREEMPTED": ("error", "the task was preempted by a higher-priority job"),
    "CANCELLED": ("error", "the task was cancelled"),
    "FAILED": ("error", "the task failed"),
}
LOG_REASONS = (  # what slurmstepd (and submitit, on Slurm's warning signal) write into the task's stderr
    (re.compile(r"DUE TO TIME LIMIT"), "TIMEOUT"),
    # submitit ends a task itself when Slurm's warning signal (USR2, SlurmConfig.warning_s before the limit)
    # arrives: Slurm then records COMPLETED, and only the log says why.
    (re.compile(r"this job is timed-out"), "TIMEOUT"),
    # ... and when that signal comes before submitit has set its handler (a time limit under
    # the warning, or a slow start), it kills the task: Slurm records FAILED, exit code 140.
    (re.compile(r"User defined signal 2"), "TIMEOUT"),
    (re.compile(r"this job is preempted"), "PREEMPTED"),
    (re.compile(r"DUE TO PREEMPTION"), "PREEMPTED"),
    (re.compile(r"DUE TO NODE FAIL"), "NODE_FAIL"),
    (re.compile(r"oom[-_ ]kill|Out Of Memory|OUT_OF_MEMORY", re.I), "OUT_OF_MEMORY"),
    (re.compile(r"CANCELLED AT"), "CANCELLED"),
)


@dataclass(frozen=True)
class SlurmConfig:
    """Per task resources and how the array runs; from a TOML file's [slurm] table and/or
    the command line (the command line wins)."""

    partition: str | None = None
    gpus: int = 0                 # GPUs per task (0: a CPU task)
    cpus: int = 4                 # CPU cores per task (the worker's torch threads)
    mem_gb: float = 16.0          # memory per task
    time_min: int = 60            # time limit per task, minutes
    parallel: int | None = None   # array tasks running at once (None: as many as Slurm allows)
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    setup: tuple[str, ...] = ()   # shell lines run before each task (e.g. "module load cuda/12.4")
    extra: dict[str, Any] = field(default_factory=dict)  # any other sbatch option, e.g. {"exclude": "node7"}
    poll_s: float = 10.0          # how often the waiting command looks at squeue and OUT
    grace_s: float = 60.0         # how long a finished task's done.json may take to show on a shared FS
    # The settings the user set (config file or command line): a chosen value the partition
    # cannot give is refused; a default is fitted to it (grader.batch.backends.slurm_partition).
    chosen: frozenset[str] = frozenset()

    @classmethod
    def load(cls, config_file: str | Path | None = None, **overrides: Any) -> "SlurmConfig":
        values: dict[str, Any] = {}
        if config_file:
            path = Path(config_file)
            try:
                data = tomllib.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise ValueError(f"--slurm-config {path}: {exc}") from None
            values = dict(data.get("slurm", data))
            known = {f.name for f in fields(cls)} - {"chosen"}
            unknown = sorted(set(values) - known)
            if unknown:
                raise ValueError(f"--slurm-config {path}: unknown setting(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(sorted(known))}")
        values |= {k: v for k, v in overrides.items() if v is not None}
        if "setup" in values:
            values["setup"] = tuple(values["setup"])
        config = cls(**values, chosen=frozenset(values))
        if config.cpus < 1 or config.gpus < 0 or config.mem_gb <= 0 or config.time_min < 1:
            raise ValueError("Slurm resources must be positive: --slurm-cpus >= 1, --slurm-gpus >= 0, "
                             "--slurm-mem > 0, --slurm-time >= 1")
        return config

    @property
    def warning_s(self) -> int:
        """How long before the time limit Slurm warns a task (USR2): 90 s, submitit's default,
        or a quarter of a short limit. A warning longer than the limit would arrive at the
        task's start and end it as timed-out before it did anything."""
        return min(90, self.time_min * 60 // 4)

    def executor_parameters(self, name: str) -> dict[str, Any]:
        extra = dict(self.extra)
        for key in ("account", "qos", "constraint"):
            if getattr(self, key):
                extra[key] = getattr(self, key)
        params: dict[str, Any] = {"name": name, "timeout_min": self.time_min, "mem_gb": self.mem_gb,
                                  "cpus_per_task": self.cpus, "slurm_setup": list(self.setup),
                                  "slurm_signal_delay_s": self.warning_s,
                                  "slurm_additional_parameters": extra}
        if self.gpus:
            params["gpus_per_node"] = self.gpus
        if self.partition:
            params["slurm_partition"] = self.partition
        if self.parallel:
            params["slurm_array_parallelism"] = self.parallel
        return params


@dataclass
class _Task:
    entry: Any
    key: str
    job: str | None
    started: bool = False
    ended_at: float | None = None  # when it left squeue without a done.json (waiting for the FS)


class SlurmBackend(Backend):
    name = "slurm"

    def __init__(self, config: SlurmConfig) -> None:
        self.config = config

    # -- what the batch asks of a backend
    def prepare(self, options, note) -> None:
        """Before anything is planned or submitted: a GPU for GPU work, and the request
        checked against what the partition can give (slurm_partition.fit_request): a chosen
        value that can never run raises RequestError (exit 2), a default is fitted, said in
        `note`."""
        from grader.batch.backends.slurm_partition import fit_request, read_partitions

        _need_sbatch()
        config = self.config
        gpu_work = options.device == "cuda" or options.profile == "full"
        if gpu_work and not config.gpus and "gpus" not in config.chosen:
            config = replace(config, gpus=1)
            note("Slurm: the full profile trains on a GPU: asking for 1 GPU per task (--slurm-gpus 0 to train on "
                 "the nodes' CPUs instead)")
        try:
            partitions = read_partitions()
        except OSError as exc:
            note(f"Slurm: could not read what the partition can give ({exc}); submitting the request unchecked")
        else:
            fit = fit_request(config, partitions)
            for line in fit.notes:
                note(f"Slurm: {line}")
            config = fit.config
        self.config = config

    def device(self, options) -> str:
        if options.device != "auto":
            return options.device
        return "cuda" if self.config.gpus else "cpu"

    def default_jobs(self, device: str, tasks: int) -> int:
        return self.config.parallel or max(1, tasks)

    def resources(self, device: str, jobs: int) -> dict[str, Any]:
        return {"threads": self.config.cpus}

    def clear_staging(self, out: Path, finished: bool = False) -> None:
        """Keep the staging folders of tasks still queued or running (an earlier, killed
        submitting command left them going); remove the rest."""
        from grader.batch.job import PROGRESS_DIR, STAGING

        staging = out / STAGING
        if not staging.is_dir():
            return
        live = {t["target"].replace("/", "-") for t in _live_records(out)}
        for child in staging.iterdir():
            if child.name == PROGRESS_DIR and live and not finished:
                continue  # the live tasks' progress files
            if child.name.rsplit(".", 1)[0].removesuffix(".old") not in live:
                shutil.rmtree(child, ignore_errors=True)
        if not any(staging.iterdir()):
            staging.rmdir()

    def run(self, todo, out, assignment, options, report, *, jobs, device, events):
        from grader.batch.job import read_done

        note = events.note
        _need_sbatch()
        out = Path(out).resolve()
        state = out / STATE
        logs = state / "logs"
        state.mkdir(mode=0o700, exist_ok=True)  # the pickled tasks hold the batch's secret test seed
        logs.mkdir(exist_ok=True)
        records = _read_records(out)
        live = _squeue_patiently(sorted({r["name"] for r in records.values()}))
        tasks: dict[str, _Task] = {}
        to_submit = []
        for entry, key in todo:
            record = records.get(entry.target)
            job = _job_of(record, live) if record and record.get("key") == key else None
            if job is not None and job in live:
                tasks[entry.target] = _Task(entry, key, job)
            elif job is not None and (done := read_done(out / entry.target)) and done.get("key") == key:
                tasks[entry.target] = _Task(entry, key, job)  # ended since the plan: collected below
            else:
                to_submit.append((entry, key))
        if tasks:
            note(f"Slurm: {len(tasks)} task(s) of an earlier run still queued or running, not submitted again "
                 f"({', '.join(sorted(t.entry.id for t in tasks.values()))})")
        if to_submit:
            for (entry, key), job in zip(to_submit, self._submit(to_submit, out, assignment, options, report,
                                                                 records)):
                tasks[entry.target] = _Task(entry, key, job)
            array = sorted({t.job.split("_")[0] for t in tasks.values() if t.job})
            note(f"Slurm: submitted {len(to_submit)} array task(s) (job {', '.join(array)}); logs in {logs}; "
                 f"progress: squeue --name {records[to_submit[0][0].target]['name']}")
        try:
            yield from self._wait(tasks, out, assignment, report, events)
        except KeyboardInterrupt:
            names = sorted({r["name"] for r in _read_records(out).values()})
            note(f"Slurm: stopped waiting; the tasks go on under Slurm. Run the same command again to collect them "
                 f"(nothing is submitted twice), or cancel them: scancel --name {','.join(names)}")
            raise

    # -- submitting
    def _submit(self, todo, out: Path, assignment, options, report, records: dict[str, dict[str, Any]]) -> list[str]:
        import submitit

        name = f"segrade-{uuid.uuid4().hex[:8]}"
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        # The intent first: were this command killed between sbatch and the job ids, a re-run
        # finds the tasks by their job name and index.
        for index, (entry, key) in enumerate(todo):
            records[entry.target] = {"id": entry.id, "target": entry.target, "key": key, "name": name,
                                     "index": index, "job": None, "submitted": now}
        _write_records(out, records)
        # Tasks may start in another directory than this command: every path absolute.
        options = replace(options, bands_folder=Path(options.bands_folder).resolve() if options.bands_folder else None,
                          vgg16_weights=str(Path(options.vgg16_weights).resolve()) if options.vgg16_weights else None)
        args = [(replace(entry, path=Path(entry.path).resolve(),
                         manifest=Path(entry.manifest).resolve() if entry.manifest else None),
                 key, out, assignment, options, report) for entry, key in todo]
        try:
            executor = submitit.AutoExecutor(folder=out / STATE / "logs", cluster="slurm")
            executor.update_parameters(**self.config.executor_parameters(name))
            jobs = executor.map_array(slurm_task, *zip(*args))  # one iterable per argument
        except Exception as exc:  # sbatch refused (a wrong partition, account, limit...)
            from grader.shared.errors import BatchError

            for entry, _ in todo:
                records.pop(entry.target, None)
            _write_records(out, records)
            detail = getattr(exc, "stderr", None) or getattr(exc, "output", None) or exc
            if isinstance(detail, bytes):
                detail = detail.decode(errors="replace")
            raise BatchError(f"Slurm refused the array ({type(exc).__name__}: {str(detail).strip()[-1500:]}); "
                             "check --slurm-partition, --slurm-gpus, --slurm-mem, --slurm-time and the account "
                             "against `sinfo -s`") from None
        ids = [job.job_id for job in jobs]
        for (entry, _), job_id in zip(todo, ids):
            records[entry.target]["job"] = job_id
        _write_records(out, records)
        return ids

    # -- waiting
    def _wait(self, tasks: dict[str, _Task], out: Path, assignment, report, events):
        from grader.batch.job import BatchOutcome, read_done, read_entry_progress, write_error_folder

        on_start, on_progress, note = events.on_start, events.on_progress, events.note

        names = sorted({r["name"] for r in _read_records(out).values()})
        last_line = 0.0
        while tasks:
            live = squeue(names)
            if live is None:  # the controller did not answer: ask again later, conclude nothing
                time.sleep(self.config.poll_s)
                continue
            pending = [Pending(t.entry.id, t.job, live[t.job]["reason"], waited_since(live[t.job].get("submitted", "")))
                       for t in tasks.values() if t.job in live and live[t.job]["state"] == "PENDING"]
            if pending:
                self._stop_if_never_starting(pending, live, names)
            if events.on_wait:
                events.on_wait(pending)
            for target, task in list(tasks.items()):
                status = live.get(task.job or "")
                if status is not None:
                    if status["state"] == "RUNNING" and not task.started and on_start:
                        on_start(task.entry)
                        task.started = True
                    if status["state"] == "RUNNING" and on_progress \
                            and (progress := read_entry_progress(out, task.entry)) is not None:
                        on_progress(task.entry, progress)
                    continue
                done = read_done(out / target)
                if done and done.get("key") == task.key:
                    if on_start and not task.started:
                        on_start(task.entry)
                    del tasks[target]
                    yield BatchOutcome(**done["outcome"])
                    continue
                ended = final_state(task.job)
                if ended["state"] in ("COMPLETED", "UNKNOWN"):
                    task.ended_at = task.ended_at or time.monotonic()
                    if time.monotonic() - task.ended_at < self.config.grace_s:
                        continue  # a shared filesystem may show done.json a little later
                    ended = {**ended, **_reason_from_log(out, task.job)}
                elif ended["state"] == "FAILED":  # killed by a signal the log names (time-limit warning, OOM)?
                    ended = {**ended, **_reason_from_log(out, task.job)}
                outcome = _failure_outcome(task, ended, out)
                extra = {"status": outcome.status, "slurm": ended}
                try:
                    write_error_folder(out, task.entry, None, outcome.message, outcome, assignment, report,
                                       detail=ended.get("log_tail", ""), extra=extra)
                except Exception as exc:  # noqa: BLE001 (the batch goes on)
                    outcome.message += f" (and its error report could not be written: {exc})"
                if on_start and not task.started:
                    on_start(task.entry)
                del tasks[target]
                yield outcome
            if tasks:
                # A line now and then for logs that are not a terminal (a caller with on_wait shows it itself).
                if not events.on_wait and time.monotonic() - last_line > 300:
                    counts: dict[str, int] = {}
                    for task in tasks.values():
                        st = (live.get(task.job or "") or {}).get("state", "ENDING")
                        counts[st] = counts.get(st, 0) + 1
                    note("Slurm: waiting for " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
                         + (f"; {describe(pending)}" if pending else ""))
                    last_line = time.monotonic()
                time.sleep(self.config.poll_s)

    def _stop_if_never_starting(self, pending: list[Pending], live: dict[str, dict[str, str]], names: list[str]):
        """Tasks that can never start by themselves (slurm_pending.never_starts): cancel every
        pending task of the batch (they share the request and the partition) and stop, saying
        what to change; running tasks go on, and a re-run collects them and resubmits the rest."""
        from grader.batch.backends.slurm_partition import read_partitions
        from grader.shared.errors import BatchError

        nodes_by_partition = None
        why = None
        for p in pending:
            nodes = None
            if p.short_reason == "ReqNodeNotAvail":
                if nodes_by_partition is None:
                    try:
                        nodes_by_partition = {k: list(v.nodes) for k, v in read_partitions().items()}
                    except OSError:
                        nodes_by_partition = {}
                nodes = nodes_by_partition.get(live[p.job].get("partition", ""))
            why = never_starts(p, nodes)
            if why:
                break
        if not why:
            return
        jobs = [p.job for p in pending]
        cancel = subprocess.run(["scancel", *jobs], capture_output=True, text=True, timeout=60)
        cancelled = ("cancelled them" if cancel.returncode == 0
                     else f"cancelling them failed ({cancel.stderr.strip()[-300:]}): scancel --name {','.join(names)}")
        running = sum(1 for s in live.values() if s["state"] != "PENDING")
        raise BatchError(
            f"Slurm: {len(pending)} pending task(s) can never start ({', '.join(p.id for p in pending[:8])}"
            f"{' ...' if len(pending) > 8 else ''}): {why}. Stopped waiting and {cancelled} ({', '.join(jobs[:8])}"
            f"{' ...' if len(jobs) > 8 else ''})"
            + (f"; {running} running task(s) go on and a re-run collects them" if running else "")
            + ". Fix the option and run the same command again: the cancelled tasks are submitted again.")


def _need_sbatch() -> None:
    if not shutil.which("sbatch"):
        from grader.shared.errors import BatchError

        raise BatchError("--backend slurm: `sbatch` is not found here: run segrade on a machine that submits Slurm "
                         "jobs (a login node), or use --backend local")




def slurm_task(entry, key: str, out: Path, assignment, options, report):
    """One array task, on the node: grade one submission into OUT/<id> (grader.batch.job.grade_entry)."""
    import signal

    from grader.batch.job import grade_entry

    # Slurm ends a task (time limit, scancel, preemption) with SIGTERM to every process of it,
    # the sandboxed worker included; submitit ignores SIGTERM, so the task would go on and
    # commit "the worker crashed with SIGTERM" as the student's grade. End uncommitted instead:
    # the waiting command reports Slurm's state (TIMEOUT, CANCELLED...) and a re-run submits it.
    signal.signal(signal.SIGTERM, _end_on_signal)
    # Slurm's time-limit warning (USR2, SlurmConfig.warning_s before the limit) also reaches every process of
    # the task: the worker dies of it. submitit's own handler raises an exception that a second
    # signal arriving meanwhile can swallow (seen: the task then committed "the worker crashed
    # with SIGUSR2"). End here too, with the line LOG_REASONS reads as TIMEOUT.
    signal.signal(signal.SIGUSR2, _end_on_time_limit_warning)
    if options.threads:
        import torch

        torch.set_num_threads(options.threads)
    note = ""
    if options.isolation in (None, "bubblewrap"):
        note = bubblewrap_problem() or ""
    return grade_entry(entry, key, Path(out), assignment, options, report, note=note)


TIME_LIMIT_LINE = b"segrade: Slurm's time-limit warning (SIGUSR2) arrived: this job is timed-out\n"


def _end_on_time_limit_warning(signum, frame) -> None:
    os.write(2, TIME_LIMIT_LINE)   # async-signal-safe, unlike logging
    _end_on_signal(signum, frame)


def _end_on_signal(signum, frame) -> None:
    """End the task uncommitted, leaving none of its scratch folders (the worker's captured
    programs) on the node's disk."""
    remove_scratch_folders()
    os._exit(128 + signum)


def bubblewrap_problem(sys_root: Path = Path("/proc/sys")) -> str | None:
    """Why bubblewrap cannot isolate student code on this node, or None when it can. HPC
    nodes often disable unprivileged user namespaces, which bubblewrap needs."""
    from grader.grading.sandbox import isolation_available

    host = socket.gethostname().split(".")[0]
    if not shutil.which("bwrap"):
        return (f"node {host}: bubblewrap is not installed, so student code ran with process isolation only "
                "(no network or file-system isolation); ask the cluster's admins to install it")
    if isolation_available() == "bubblewrap":
        return None
    return (f"node {host}: bubblewrap cannot run here ({userns_reason(sys_root)}), so student code ran with process "
            "isolation only (no network or file-system isolation); ask the cluster's admins to allow unprivileged "
            "user namespaces on the grading partition, or to install bwrap setuid")


def userns_reason(sys_root: Path = Path("/proc/sys")) -> str:
    def read(rel: str) -> str | None:
        try:
            return (sys_root / rel).read_text().strip()
        except OSError:
            return None

    if read("user/max_user_namespaces") == "0":
        return "unprivileged user namespaces are disabled: user.max_user_namespaces = 0"
    if read("kernel/unprivileged_userns_clone") == "0":
        return "unprivileged user namespaces are disabled: kernel.unprivileged_userns_clone = 0"
    if read("kernel/apparmor_restrict_unprivileged_userns") == "1":
        return "AppArmor restricts unprivileged user namespaces: kernel.apparmor_restrict_unprivileged_userns = 1"
    return "bwrap failed to create its namespaces"


# -- Slurm's view, through its commands (no accounting database needed)
def squeue(names: list[str]) -> dict[str, dict[str, str]] | None:
    """The tasks with these job names that are not over yet: job id ("123_4") -> state, reason,
    node. None when squeue fails (the controller busy or unreachable): nothing can be concluded."""
    if not names:
        return {}
    try:
        probe = subprocess.run(["squeue", "-h", "-r", "-n", ",".join(names), "-o", SQUEUE_FORMAT],
                               capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if probe.returncode != 0:
        return None
    return parse_squeue(probe.stdout)


SQUEUE_FORMAT = "%i|%T|%N|%j|%K|%V|%P|%r"  # the reason last: it may hold anything


def parse_squeue(text: str) -> dict[str, dict[str, str]]:
    """squeue -o SQUEUE_FORMAT -> job id -> state, node, name, array index, submit time,
    partition, reason; only the tasks not over yet."""
    found = {}
    for line in text.splitlines():
        parts = line.strip().split("|", 7)
        if len(parts) == 8 and parts[1] in LIVE_STATES:
            found[parts[0]] = {"state": parts[1], "node": parts[2], "name": parts[3], "index": parts[4],
                               "submitted": parts[5], "partition": parts[6], "reason": parts[7]}
    return found


def _squeue_patiently(names: list[str], tries: int = 5, pause: float = 5.0) -> dict[str, dict[str, str]]:
    """squeue, asked again while it fails: which tasks are live decides what is submitted, so a
    guess could grade a submission twice."""
    for attempt in range(tries):
        live = squeue(names)
        if live is not None:
            return live
        time.sleep(pause * (attempt + 1))
    from grader.shared.errors import BatchError

    raise BatchError("squeue failed repeatedly: cannot tell which tasks of an earlier run are still queued or "
                     "running, so nothing was submitted; run again when `squeue` works")


def final_state(job: str | None) -> dict[str, str]:
    """How a task that left the queue ended: `scontrol show job` (recent jobs), else `sacct`
    (clusters with accounting), else UNKNOWN."""
    if not job:
        return {"state": "UNKNOWN", "job": ""}
    try:
        probe = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True, timeout=60)
        fields_ = dict(re.findall(r"(\w+)=(\S*)", probe.stdout)) if probe.returncode == 0 else {}
        if fields_.get("JobState"):
            return {"job": job, "state": fields_["JobState"], "reason": fields_.get("Reason", ""),
                    "exit_code": fields_.get("ExitCode", ""), "node": fields_.get("NodeList", "")}
        probe = subprocess.run(["sacct", "-n", "-P", "-X", "-j", job, "-o", "State,ExitCode,NodeList"],
                               capture_output=True, text=True, timeout=60)
        line = probe.stdout.strip().splitlines()[0] if probe.returncode == 0 and probe.stdout.strip() else ""
        if line:
            state, exit_code, node = (line.split("|") + ["", "", ""])[:3]
            return {"job": job, "state": state.split()[0], "reason": state, "exit_code": exit_code, "node": node}
    except (OSError, subprocess.TimeoutExpired, IndexError):
        pass
    return {"job": job, "state": "UNKNOWN"}


def _log_paths(out: Path, job: str) -> tuple[Path, Path]:
    from submitit.core.utils import JobPaths

    paths = JobPaths(out / STATE / "logs", job_id=job, task_id=0)
    return paths.stdout, paths.stderr


def _reason_from_log(out: Path, job: str | None) -> dict[str, str]:
    if not job:
        return {}
    _, stderr = _log_paths(out, job)
    try:
        text = stderr.read_text(errors="replace")[-20000:]
    except OSError:
        return {}
    for pattern, state in LOG_REASONS:
        if match := pattern.search(text):
            start = text.rfind("\n", 0, match.start()) + 1
            end = text.find("\n", match.end())
            return {"state": state, "reason": f"its log says: {text[start:end if end >= 0 else None].strip()[:300]}"}
    return {}


def _failure_outcome(task: _Task, ended: dict[str, str], out: Path):
    from grader.batch.job import BatchOutcome

    state = ended.get("state", "UNKNOWN")
    status, words = FAILURES.get(state, ("error", "the task ended without committing a grade"))
    stdout, stderr = _log_paths(out, task.job) if task.job else (None, None)
    tail = ""
    if stderr is not None:
        try:
            tail = stderr.read_text(errors="replace")[-3000:]
        except OSError:
            tail = ""
    ended["log_tail"] = tail
    ended["log"] = str(stderr) if stderr else ""
    errors = re.findall(r"^(\w+(?:Error|Exception|Interrupt)\b.*)$", tail, re.M)
    if errors:
        words += f" ({errors[-1][:300]})"
    reason = ended.get("reason")
    because = f"{state}" + (f", reason {reason}" if reason and reason not in ("None", state) else "") \
        + (f", exit code {ended['exit_code']}" if ended.get("exit_code") not in (None, "", "0:0") else "")
    message = (f"Slurm task {task.job} ({because}): {words}; not graded, a re-run submits it again. "
               f"Log: {stderr}")
    return BatchOutcome(task.entry.id, "error", message=message, status=status)


# -- the record of submitted tasks
def _records_path(out: Path) -> Path:
    return out / STATE / TASKS_FILE


def _read_records(out: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(_records_path(out).read_text())
        return data.get("tasks", {}) if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_records(out: Path, records: dict[str, dict[str, Any]]) -> None:
    from grader.records.files import write_atomic

    write_atomic(_records_path(out), json.dumps({"schema": "segrade.slurm-tasks/1", "tasks": records}, indent=1) + "\n")


def _job_of(record: dict[str, Any], live: dict[str, dict[str, str]]) -> str | None:
    """The task's job id; for one submitted by a command killed before it wrote the ids,
    found in the queue by job name and array index."""
    if record.get("job"):
        return record["job"]
    for job, status in live.items():
        index = status["index"] if status["index"] not in ("N/A", "") else "0"  # a one-task "array" is a plain job
        if status["name"] == record.get("name") and index == str(record.get("index")):
            return job
    return None


def _live_records(out: Path) -> list[dict[str, Any]]:
    records = _read_records(out)
    if not records:
        return []
    live = squeue(sorted({r["name"] for r in records.values()}))
    if live is None:  # cannot tell: keep everything
        return list(records.values())
    return [r for r in records.values() if _job_of(r, live) in live]
