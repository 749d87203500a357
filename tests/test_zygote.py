"""Sandboxed processes forked from the zygote (grader.shared.zygote) are in the same sandbox as
those started with `python -m`: the same user, namespaces, files, environment, descriptors and
privileges, measured from inside by student code; the zygote serves every grade of a process
and one that died is replaced."""

from __future__ import annotations

import json
import os
import re
import signal

import pytest

from grader.grading import sandbox
from grader.grading.pipeline import GradeOptions, grade_submission
from grader.grading.sandbox import isolation_available
from grader.records.results import VariantStatus
from grader.spec import load_spec
from tiny_submission import IN_WORKER, contract_classes, spec_with, write_submission

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or isolation_available() != "bubblewrap",
    reason="processes are forked from the zygote only under bubblewrap, as root")

# What student code sees of its own process, sent back as its constructor's error.
LOOK_AROUND = """
    def __init__(self, num_classes, in_channels=3, **kwargs):
        import json, os, socket
        status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
        try:
            socket.create_connection(("10.255.255.1", 80), timeout=1)
            network = "open"
        except OSError as error:
            network = type(error).__name__
        try:
            open("/dev/tty").close()
            terminal = "open"
        except OSError as error:
            terminal = type(error).__name__
        facts = {
            "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
            "no_new_privs": status["NoNewPrivs"].strip(), "capabilities": status["CapEff"].strip(),
            "terminal": terminal, "processes": len([p for p in os.listdir("/proc") if p.isdigit()]),
            "root": sorted(os.listdir("/")), "tmp": len(os.listdir("/tmp")),
            "cwd_is_copy": os.getcwd().endswith("/submission"),
            "descriptors": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
            "environment": sorted(f"{k}={v}" for k, v in os.environ.items()), "network": network, "hostname": socket.gethostname(),
            "limits": open("/proc/self/limits").read().splitlines()[1:],
        }
        print("<facts>" + json.dumps(facts) + "</facts>", flush=True)   # into the worker's log
        raise RuntimeError("looked around")
"""


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    return load_spec(spec_with(["unet"], tmp_path_factory.mktemp("spec") / "spec.toml", architecture=False))


def _facts(tmp_path, spec, monkeypatch, forked: bool) -> tuple[dict, str]:
    monkeypatch.setenv("SEGRADE_FORKED_START", "1" if forked else "0")
    folder = write_submission(tmp_path / ("forked" if forked else "started"), {"models.py": contract_classes(UNet=LOOK_AROUND)})
    result = grade_submission(folder, spec, GradeOptions(profile=None, **IN_WORKER))
    assert "looked around" in " ".join(c.message for c in result.variants[0].checks)
    assert "<facts>" in result.worker_log, result.worker_log
    facts = json.loads(result.worker_log.split("<facts>", 1)[1].split("</facts>", 1)[0])
    # The descriptors' numbers differ (the channel is 3 when forked); how many does not. So do
    # the job folder's name, in the environment, and the processes bubblewrap's namespace holds
    # (its init and the worker; forked: its init, its placeholder and the worker).
    facts["descriptors"] = len(facts["descriptors"])
    facts["environment"] = [re.sub(r"segrade-[^/]+", "JOB", line) for line in facts["environment"]]
    assert facts.pop("processes") == (3 if forked else 2)
    return facts, result.environment["isolation"]


@pytest.mark.slow  # the real worker, twice
def test_a_forked_worker_sees_what_a_started_one_sees(tmp_path, spec, monkeypatch):
    forked, forked_isolation = _facts(tmp_path, spec, monkeypatch, forked=True)
    started, started_isolation = _facts(tmp_path, spec, monkeypatch, forked=False)
    assert forked == started
    assert forked["uid"] == forked["gid"] == 65534 and forked["groups"] == []
    assert forked["no_new_privs"] == "1" and int(forked["capabilities"], 16) == 0
    assert forked["network"] != "open" and forked["terminal"] != "open" and forked["cwd_is_copy"]
    assert "forked from a process that had only imported torch and exported a model of its own" in forked_isolation
    assert "forked" not in started_isolation


@pytest.mark.slow  # the real worker, three times
def test_one_zygote_serves_every_grade_and_a_dead_one_is_replaced(tmp_path, spec, monkeypatch):
    monkeypatch.delenv("SEGRADE_FORKED_START", raising=False)
    folder = write_submission(tmp_path / "sub", {"models.py": contract_classes()})

    def grade():
        result = grade_submission(folder, spec, GradeOptions(profile=None, **IN_WORKER))
        assert [v.status for v in result.variants] == [VariantStatus.PASSED]
        assert "forked from" in result.environment["isolation"]
        return sandbox._ZYGOTE[0].proc.pid

    first = grade()
    assert grade() == first
    os.kill(first, signal.SIGKILL)
    sandbox._ZYGOTE[0].proc.wait()
    assert grade() != first   # a new zygote, and the grade as before


def test_a_child_enters_only_the_namespaces_bubblewrap_made():
    """The zygote's child checks each namespace it is about to join against bubblewrap's
    --info-fd (inode numbers): a pid taken over by another process, or the host's own
    namespaces, are refused before anything is joined."""
    from grader.shared.zygote import NAMESPACES, check_namespaces

    own = {name: os.open(f"/proc/self/ns/{name}", os.O_RDONLY) for name in NAMESPACES}
    try:
        inodes = {name: os.fstat(fd).st_ino for name, fd in own.items()}
        with pytest.raises(OSError, match="not the one bubblewrap made"):
            check_namespaces(own, inodes)   # right inodes, but this process's own: the host's
        with pytest.raises(OSError, match="the net namespace"):
            check_namespaces({"net": own["net"]}, {"net": inodes["net"] + 1})
        with pytest.raises(OSError, match="expected None"):
            check_namespaces({"pid": own["pid"]}, {})
    finally:
        for fd in own.values():
            os.close(fd)


@pytest.mark.slow  # a Python that imports torch and exports
def test_the_zygote_s_own_export_completes_starts_no_thread_and_keeps_torch_s_random_state():
    """warm_up (the zygote's export of a model of its own) in a clean interpreter, as the zygote
    runs it: it completes (a failure would only be slower, so it must be seen here), leaves
    torch's random state as a started process has it, starts no thread a fork would leave
    behind (OpenMP's pool among them, with two threads allowed) and never imports torchvision
    (the verifier's op registry stays torch's own)."""
    import subprocess
    import sys

    code = """
import json, os, sys, torch
from grader.shared.zygote import warm_up
threads, state = len(os.listdir("/proc/self/task")), torch.get_rng_state()
error = warm_up()
print(json.dumps({"error": error, "threads": [threads, len(os.listdir("/proc/self/task"))],
                  "random_state_kept": bool(torch.equal(state, torch.get_rng_state())),
                  "torchvision": "torchvision" in sys.modules}))
"""
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, env=env, timeout=300,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    facts = json.loads(out.stdout.strip().splitlines()[-1])
    assert facts == {"error": None, "threads": facts["threads"][:1] * 2, "random_state_kept": True,
                     "torchvision": False}, out.stderr[-2000:]


def _job_through(link, environment, spec_path, folder, send) -> None:
    """A batch's job, as grader.batch.backends.local starts it: the batch's environment (the job
    server's may be older), and it launches through `link`."""
    os.environ.clear()
    os.environ.update(environment)
    sandbox.use_zygote(link)
    result = grade_submission(folder, load_spec(spec_path), GradeOptions(profile=None, capture=False,
                                                                         trust_student_process=True))
    send.send(([v.status.value for v in result.variants], result.environment["isolation"],
               [type(z).__name__ for z in sandbox._ZYGOTE]))


@pytest.mark.slow  # a job process and the real worker
def test_a_batch_s_jobs_fork_from_the_batch_s_zygote(tmp_path, monkeypatch):
    from grader.batch.backends.local import _connect, job_context
    from grader.shared.zygote import Zygote

    monkeypatch.delenv("SEGRADE_FORKED_START", raising=False)
    spec_path = spec_with(["unet"], tmp_path / "spec.toml", architecture=False)
    folder = write_submission(tmp_path / "sub", {"models.py": contract_classes()})
    batch_zygote = sandbox.zygote("bubblewrap")
    assert isinstance(batch_zygote, Zygote)
    context = job_context()
    for _ in range(2):   # two jobs, one zygote
        receive, send = context.Pipe(duplex=False)
        link = _connect(batch_zygote)
        job = context.Process(target=_job_through, args=(link, dict(os.environ), spec_path, folder, send))
        job.start()
        link.close()
        send.close()
        statuses, isolation, used = receive.recv()
        job.join()
        assert used == ["Connection"], used
        assert statuses == ["passed"] and "forked from" in isolation
        assert used == ["Connection"]   # the batch's zygote, not one of its own
    assert batch_zygote.alive() and sandbox._ZYGOTE == [batch_zygote]


@pytest.mark.slow  # the real worker, twice, restarted after each death
def test_a_crash_and_an_exit_read_the_same_forked_and_started(tmp_path, monkeypatch):
    """How a process ends reaches the grade the same way from a forked process (its status
    relayed by the zygote's child) as from one bubblewrap started (bubblewrap's init reports
    128 + N for signal N). A deadline is the grading side's own kill, the same either way
    (test_hostile's loops run forked)."""
    spec = load_spec(spec_with(["unet", "unet_noskip", "unet_attention"], tmp_path / "spec.toml", architecture=False))
    source = contract_classes(UNet="""
        def forward(self, x):
            import ctypes
            return ctypes.string_at(0)
    """, UNetNoSkip="""
        def __init__(self, num_classes, in_channels=3):
            import os
            os._exit(3)
    """)
    seen = {}
    for forked in (True, False):
        monkeypatch.setenv("SEGRADE_FORKED_START", "1" if forked else "0")
        folder = write_submission(tmp_path / str(forked), {"models.py": source})
        result = grade_submission(folder, spec, GradeOptions(profile=None, **IN_WORKER))
        seen[forked] = {v.variant_id: (v.status.value, " ".join(c.message for c in v.checks)) for v in result.variants}
        assert ("forked from" in result.environment["isolation"]) == forked
    assert seen[True] == seen[False]
    statuses = {vid: status for vid, (status, _) in seen[True].items()}
    assert statuses == {"unet": "crashed", "unet_noskip": "error", "unet_attention": "passed"}
    assert "SIGSEGV" in seen[True]["unet"][1] and "exit code 3" in seen[True]["unet_noskip"][1]


@pytest.mark.slow  # the real worker
def test_where_a_forked_process_cannot_enter_its_sandbox_processes_are_started(tmp_path, monkeypatch, capfd):
    """A machine where the zygote's child cannot join bubblewrap's namespaces (here: told the
    wrong namespace, so it refuses, as it would a pid taken over): the grade goes on with the
    process started as `python -m`, says so once, and later launches do not try again."""
    from grader.shared.zygote import Connection

    monkeypatch.delenv("SEGRADE_FORKED_START", raising=False)
    monkeypatch.setattr(sandbox, "_NO_FORK", [])
    start = Connection.start

    def told_the_wrong_namespace(self, info, request, fds):
        return start(self, {**info, "net-namespace": info["net-namespace"] + 1}, request, fds)

    monkeypatch.setattr(Connection, "start", told_the_wrong_namespace)
    spec = load_spec(spec_with(["unet"], tmp_path / "spec.toml", architecture=False))
    folder = write_submission(tmp_path / "sub", {"models.py": contract_classes()})
    for _ in range(2):
        result = grade_submission(folder, spec, GradeOptions(profile=None, **IN_WORKER))
        assert [v.status for v in result.variants] == [VariantStatus.PASSED]
        assert "forked" not in result.environment["isolation"]
    said = capfd.readouterr().err
    assert said.count("could not enter its sandbox") == 1 and "net namespace" in said, said
    assert not sandbox.forked_start("bubblewrap")
