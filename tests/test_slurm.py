"""`segrade grade --backend slurm` on a real Slurm (slurm-wlm 22.05 and munge, started in a
temporary folder by tests/slurm_cluster.py), and rescoring without retraining.

The submissions are the one-conv models of tiny_submission.py on a spec cut down to the
U-Net, trained in the smoke profile: seconds per submission. The cluster's node has the
machine's cores; each task asks for 1 CPU so the local backend (2 jobs on 2 cores: one
thread each) and Slurm train with the same thread count and give the same numbers.
The tests of the backend's own behaviour (a killed submitter, a drained node) grade with
`--no-capture`, in the worker alone: what they assert does not depend on the verifier, whose
start-up is a few seconds a task; the array test grades as `segrade grade` does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from grader.batch.backends.slurm import TIME_LIMIT_LINE, SlurmBackend, SlurmConfig, _failure_outcome, _reason_from_log, _Task, \
    userns_reason
from grader.batch.grade import BatchEntry, BatchEvents, BatchOptions, grade_batch
from grader.report.outputs import ReportOptions
from grader.grading.pipeline import GradeOptions
from grader.spec import load_spec
from slurm_cluster import SlurmCluster
from tiny_submission import contract_classes, spec_with, without_architecture, write_submission

SLOW = """
def __init__(self, *args, **kwargs):
    import time
    time.sleep(400)
    super().__init__(*args, **kwargs)
"""

HOSTILE = contract_classes(UNet='''
def forward(self, x):
    import json, os
    for path in ("results.json", "../results.json", "/tmp/results.json"):
        try:
            open(path, "w").write(json.dumps({"total": 100, "variants": []}))
        except OSError:
            pass
    print('{"score": 100, "tests": []}')
    os._exit(0)
''')
FAST = {"poll_s": 1.0, "grace_s": 3.0}
# A partition too small for the default request (4 CPUs, 16 GB, 60 min), whatever the machine.
SMALL = "MaxCPUsPerNode=1 MaxMemPerNode=3000 MaxTime=20"


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A real single-node Slurm for this session (skips, saying why, where it cannot run)."""
    why = SlurmCluster.unavailable()
    if why:
        pytest.skip(why)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"), cpus=os.cpu_count() or 2, memory_mb=8000,
                           partitions={"small": SMALL})
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def unet_spec(tmp_path_factory):
    return spec_with(["unet"], tmp_path_factory.mktemp("spec") / "spec.toml", architecture=False)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("subs")
    for name in ("ann", "bo"):
        write_submission(root / name, {"models.py": contract_classes()})
    write_submission(root / "mallory", {"models.py": HOSTILE})
    return root


def _comparable(out: Path, sid: str) -> dict:
    data = json.loads((out / sid / "results.json").read_text())
    return {"total": data["total"],
            "variants": [{k: v[k] for k in ("variant_id", "status", "points", "metrics")}
                         | {"checks": [(c["id"], c["status"]) for c in v["checks"]]} for v in data["variants"]]}


@pytest.fixture(scope="module")
def local_out(tmp_path_factory, folder, unet_spec):
    out = tmp_path_factory.mktemp("local") / "out"
    os.environ["SEGRADE_TEST_SEED"] = "1234"
    try:
        grade_batch(folder, out, load_spec(unet_spec), GradeOptions(profile="smoke", device="cpu"),
                    BatchOptions(jobs=2, report=ReportOptions(pdf=False)))
    finally:
        del os.environ["SEGRADE_TEST_SEED"]
    return out


@pytest.mark.slow  # a Slurm cluster and a batch
def test_slurm_array_tasks_grade_like_the_local_backend(slurm, tmp_path, folder, unet_spec, local_out, monkeypatch):
    monkeypatch.setenv("SEGRADE_TEST_SEED", "1234")
    out = tmp_path / "out"
    notes, started = [], []
    backend = SlurmBackend(SlurmConfig(cpus=1, mem_gb=2, time_min=10, **FAST))
    progress: dict[str, list] = {}
    summary = grade_batch(folder, out, load_spec(unet_spec), GradeOptions(profile="smoke", device="cpu"),
                          BatchOptions(report=ReportOptions(pdf=False), backend=backend),
                          BatchEvents(on_note=notes.append, on_start=lambda e: started.append(e.id),
                                      on_progress=lambda entry, state: progress.setdefault(entry.id, []).append(state)))
    assert {o.id: o.state for o in summary.outcomes} == {"ann": "graded", "bo": "graded", "mallory": "graded"}
    assert sorted(started) == ["ann", "bo", "mallory"]
    # A running task's progress file, written on the node, read at each squeue poll (issue 18).
    assert progress.get("ann") or progress.get("bo"), progress
    for states in (progress.get("ann", []), progress.get("bo", [])):   # mallory's own messages may lie
        assert all(s.total == 1 and s.variant in (None, "unet") for s in states), states
        assert [s.fraction for s in states] == sorted(s.fraction for s in states), states
    assert any("logs in" in n and ".segrade-slurm/logs" in n for n in notes), notes
    tasks = json.loads((out / ".segrade-slurm" / "tasks.json").read_text())["tasks"]
    assert sorted(tasks) == ["ann", "bo", "mallory"] and all("_" in t["job"] for t in tasks.values())
    for sid in ("ann", "bo", "mallory"):
        assert _comparable(out, sid) == _comparable(local_out, sid), sid
    # The hostile one ended its worker and printed a fake score: an error, nothing forged.
    mallory = json.loads((out / "mallory" / "results.json").read_text())
    assert mallory["variants"][0]["status"] == "error"
    assert not (out / "results.json").exists() and not (out / "mallory" / "done.json").read_text().count("100,")
    assert not (out / ".segrade-staging").exists()
    assert (out / "summary.html").is_file() and (out / "gradebook.csv").is_file()


@pytest.mark.slow  # a Slurm cluster
def test_killed_submitter_then_rerun_loses_nothing_and_grades_nothing_twice(slurm, tmp_path, folder, unet_spec):
    out = tmp_path / "out"
    config = tmp_path / "slurm.toml"
    config.write_text("[slurm]\ncpus = 1\nmem_gb = 2\ntime_min = 10\nparallel = 2\npoll_s = 1.0\ngrace_s = 3.0\n")
    command = [sys.executable, "-m", "grader", "grade", str(folder), "--out", str(out), "--spec", str(unet_spec),
               "--checks-only", "--no-capture", "--no-pdf", "--backend", "slurm", "--slurm-config", str(config)]
    env = {**os.environ, "SEGRADE_TEST_SEED": "99"}
    batch = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 240
        while not (out / "ann" / "done.json").exists():  # one task done; mallory's waits for its slot
            assert batch.poll() is None, "the batch ended before it could be killed"
            assert time.monotonic() < deadline, "the first task took too long"
            time.sleep(0.2)
        batch.send_signal(signal.SIGKILL)
        batch.wait()
    finally:
        if batch.poll() is None:
            batch.kill()
    tasks = json.loads((out / ".segrade-slurm" / "tasks.json").read_text())["tasks"]
    first = {sid: t["job"] for sid, t in tasks.items()}
    queue = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True).stdout.split()
    assert set(queue) & {first["bo"], first["mallory"]}, "the other tasks should still be queued or running"
    ann = (out / "ann" / "results.json").stat().st_ino

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "not submitted again" in rerun.stdout and "already graded" in rerun.stdout
    tasks = json.loads((out / ".segrade-slurm" / "tasks.json").read_text())["tasks"]
    assert {sid: t["job"] for sid, t in tasks.items()} == first  # nothing submitted twice
    logs = sorted(p.name for p in (out / ".segrade-slurm" / "logs").glob("*_log.out"))
    assert len(logs) == 3, logs  # three tasks ran, once each
    assert (out / "ann" / "results.json").stat().st_ino == ann
    for sid in ("bo", "mallory"):
        assert json.loads((out / sid / "done.json").read_text())["outcome"]["state"] == "graded"
    assert not (out / ".segrade-staging").exists()


@pytest.mark.slow  # a Slurm cluster
def test_a_cancelled_task_and_one_over_its_time_limit_are_errors_with_slurms_reason(slurm, tmp_path, unet_spec,
                                                                                      monkeypatch):
    """Real Slurm failures: `scancel` on one task, the time limit (1 minute) on the other.
    Both are that submission's error with Slurm's state, its log, and a segrade status;
    neither is kept, so a re-run submits them again, and neither leaves its scratch folders
    (captured programs) on the node."""
    node_tmp = tmp_path / "node-tmp"   # the tasks' TMPDIR (sbatch passes the environment on)
    node_tmp.mkdir(mode=0o1777)
    node_tmp.chmod(0o1777)
    monkeypatch.setenv("TMPDIR", str(node_tmp))
    root = tmp_path / "in"
    for name in ("cancelled", "late"):
        write_submission(root / name, {"models.py": contract_classes(UNet=SLOW)})
    out = tmp_path / "out"

    def cancel_when_running(entry) -> None:
        if entry.id == "cancelled":
            job = json.loads((out / ".segrade-slurm" / "tasks.json").read_text())["tasks"][entry.id]["job"]
            subprocess.run(["scancel", job], check=True)

    summary = grade_batch(root, out, load_spec(unet_spec), GradeOptions(profile=None, device="cpu"),
                          BatchOptions(report=ReportOptions(pdf=False),
                                       backend=SlurmBackend(SlurmConfig(cpus=1, mem_gb=2, time_min=1, **FAST))),
                          BatchEvents(on_start=cancel_when_running))
    outcomes = {o.id: o for o in summary.outcomes}
    assert outcomes["cancelled"].state == "error" and outcomes["cancelled"].status == "error"
    assert "CANCELLED" in outcomes["cancelled"].message and "a re-run submits it again" in outcomes["cancelled"].message
    assert outcomes["late"].state == "error" and outcomes["late"].status == "timeout", outcomes["late"]
    assert "TIMEOUT" in outcomes["late"].message and "raise --slurm-time" in outcomes["late"].message
    assert not list(node_tmp.glob("segrade-*")), "a task ended by Slurm left its scratch folders"
    for sid, state in (("cancelled", "CANCELLED"), ("late", "TIMEOUT")):
        error = json.loads((out / sid / "error.json").read_text())
        assert error["slurm"]["state"] == state and error["slurm"]["log"].endswith("_log.err")
        assert state in (out / sid / "report.html").read_text()
        assert not (out / sid / "done.json").exists()  # a re-run tries it again


@pytest.mark.parametrize("line, state, status", [
    ("slurmstepd: error: *** JOB 7 ON n1 CANCELLED AT 2026-01-01T00:00:00 DUE TO TIME LIMIT ***", "TIMEOUT", "timeout"),
    ("submitit WARNING (2026-12-01 10:06:31,018) - Caught signal SIGUSR2 on n1: this job is timed-out.", "TIMEOUT",
     "timeout"),
    ("slurmstepd: error: Detected 1 oom-kill event(s) in StepId=7.0", "OUT_OF_MEMORY", "oom"),
    ("srun: error: n1: task 0: User defined signal 2", "TIMEOUT", "timeout"),
    (TIME_LIMIT_LINE.decode().strip(), "TIMEOUT", "timeout"),   # slurm_task's own USR2 handler
    ("slurmstepd: error: *** JOB 7 ON n1 CANCELLED AT 2026-01-01T00:00:00 DUE TO NODE FAILURE ***", "NODE_FAIL",
     "crashed"),
    ("slurmstepd: error: *** JOB 7 ON n1 CANCELLED AT 2026-01-01T00:00:00 DUE TO PREEMPTION ***", "PREEMPTED", "error"),
])
def test_slurm_failures_become_segrade_statuses(tmp_path, line, state, status):
    logs = tmp_path / ".segrade-slurm" / "logs"
    logs.mkdir(parents=True)
    (logs / "7_0_0_log.err").write_text(f"some output\n{line}\n")
    ended = {"job": "7_0", "state": "UNKNOWN", **_reason_from_log(tmp_path, "7_0")}
    assert ended["state"] == state
    outcome = _failure_outcome(_Task(BatchEntry("ann", tmp_path), "k", "7_0"), ended, tmp_path)
    assert outcome.status == status and state in outcome.message and "7_0_0_log.err" in outcome.message


def test_nodes_without_user_namespaces_are_named(tmp_path, monkeypatch):
    (tmp_path / "user").mkdir()
    (tmp_path / "kernel").mkdir()
    (tmp_path / "user" / "max_user_namespaces").write_text("0\n")
    assert "max_user_namespaces = 0" in userns_reason(tmp_path)
    (tmp_path / "user" / "max_user_namespaces").write_text("63000\n")
    (tmp_path / "kernel" / "apparmor_restrict_unprivileged_userns").write_text("1\n")
    assert "AppArmor" in userns_reason(tmp_path)
    # On such a node the task's note names the node, the reason and the consequence.
    import shutil

    import grader.grading.sandbox
    from grader.batch.backends.slurm import bubblewrap_problem

    if shutil.which("bwrap"):
        monkeypatch.setattr(grader.grading.sandbox, "isolation_available", lambda: "process")
        problem = bubblewrap_problem(tmp_path)
        assert "bubblewrap cannot run here (AppArmor" in problem and "process isolation only" in problem


def test_slurm_config_file_and_options(tmp_path):
    path = tmp_path / "slurm.toml"
    path.write_text('[slurm]\npartition = "gpu"\ngpus = 1\ncpus = 8\nsetup = ["module load cuda"]\n'
                    'extra = { exclude = "node7" }\n')
    config = SlurmConfig.load(path, cpus=4, partition=None)
    assert (config.partition, config.gpus, config.cpus, config.setup) == ("gpu", 1, 4, ("module load cuda",))
    params = config.executor_parameters("segrade-x")
    assert params["gpus_per_node"] == 1 and params["slurm_partition"] == "gpu"
    assert params["slurm_additional_parameters"] == {"exclude": "node7"}
    # Slurm's warning: submitit's 90 s, or a quarter of a short limit (else it comes at the start)
    assert params["slurm_signal_delay_s"] == 90
    assert SlurmConfig.load(time_min=1).executor_parameters("x")["slurm_signal_delay_s"] == 15
    assert SlurmBackend(config).device(GradeOptions()) == "cuda"
    path.write_text("[slurm]\ngpu = 1\n")
    with pytest.raises(ValueError, match="unknown setting"):
        SlurmConfig.load(path)


@pytest.mark.slow  # a batch with training
def test_rescore_after_a_band_change_without_retraining(tmp_path, folder, unet_spec, local_out):
    """A changed band: `segrade rescore` recomputes the points from the saved results, and
    `segrade grade` with the same band rescores instead of retraining."""
    import shutil

    from grader.cli import main
    from grader.shared.resources import reference_dir

    out = tmp_path / "out"
    shutil.copytree(local_out, out)
    bands = tmp_path / "bands"
    bands.mkdir()
    data = json.loads((reference_dir() / "bands" / "smoke.json").read_text())
    entry = data["backbones"]["random_init"]["variants"]["unet"]
    entry["mean"], entry["std"] = 0.99, 0.001  # a band no one-conv model reaches
    (bands / "smoke.json").write_text(json.dumps(data))
    before = json.loads((out / "ann" / "results.json").read_text())
    assert main(["rescore", str(out), "--bands", str(bands), "--spec", str(unet_spec), "--no-pdf"]) == 0
    after = json.loads((out / "ann" / "results.json").read_text())
    assert after["variants"][0]["metrics"] == before["variants"][0]["metrics"]  # nothing retrained
    assert after["variants"][0]["band"]["mean"] == 0.99
    assert after["total"] < before["total"]
    assert str(after["total"]) in (out / "gradebook.csv").read_text()
    assert json.loads((out / "ann" / "results_gradescope.json").read_text())["score"] == after["total"]

    # grade with the changed band: every grade rescored, none retrained
    bands_file = json.loads((bands / "smoke.json").read_text())
    bands_file["backbones"]["random_init"]["variants"]["unet"]["mean"] = 0.98
    (bands / "smoke.json").write_text(json.dumps(bands_file))
    states, notes = {}, []
    os.environ["SEGRADE_TEST_SEED"] = "1234"
    try:
        summary = grade_batch(folder, out, load_spec(unet_spec), GradeOptions(profile="smoke", device="cpu",
                              bands_folder=bands), BatchOptions(jobs=2, report=ReportOptions(pdf=False)),
                              BatchEvents(on_done=lambda o: states.update({o.id: o}), on_note=notes.append))
    finally:
        del os.environ["SEGRADE_TEST_SEED"]
    assert states == {}  # nothing graded
    assert any(n.startswith("rescored 3 grade(s)") for n in notes), notes
    again = json.loads((out / "ann" / "results.json").read_text())
    assert again["variants"][0]["band"]["mean"] == 0.98 and again["started_at"] == before["started_at"]
    assert {o.id: o.state for o in summary.outcomes} == {"ann": "resumed", "bo": "resumed", "mallory": "resumed"}
    assert asdict(summary.outcomes[0])["points"] == again["total"]


def tiny_profile_spec(path: Path, unet_spec: Path) -> Path:
    """The U-Net spec with a `tiny` profile that has no bands anywhere: 32 px, 12 steps."""
    path.write_text(Path(unet_spec).read_text() + """
[profiles.tiny]
title = "tiny: 32 px, 12 steps (tests only)"
image_size = { fcn = 32, unet = 32 }
batch_size = 4
steps = 12
optimizer = "adamw"
lr = 1e-2
weight_decay = 1e-4
eval_every = 4
train_images = 16
val_images = 4
test_images = 8
grid_images = 2
seed = 0
pretrained = false
""")
    return path


@pytest.mark.slow  # a batch with training
def test_bands_measured_on_the_graders_own_hardware_in_the_batch(tmp_path, unet_spec, capsys):
    """No bands for the profile: the batch grades the reference K times as its own jobs,
    writes OUT/bands/<profile>.json with provenance and scores everyone against it; a re-run
    reuses it; --no-measure-bands keeps the old behaviour. Run through benchmarks/gpu_check.py
    with a tiny profile on the CPU: the GPU check's logic, tested without a GPU."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import gpu_check

    spec_path = tiny_profile_spec(tmp_path / "spec.toml", unet_spec)
    spec = load_spec(spec_path)
    root = tmp_path / "in"
    write_submission(root / "ann", {"models.py": contract_classes()})
    reference = write_submission(tmp_path / "course_reference", {"models.py": contract_classes()})
    out = tmp_path / "out"
    report = gpu_check.run(["--spec", str(spec_path), "--profile", "tiny", "--device", "cpu", "--allow-cpu",
                            "--submission", str(root / "ann"), "--reference", str(reference), "--seeds", "2",
                            "--jobs", "2", "--out", str(out), "--budget", "600"])
    printed = capsys.readouterr().out
    assert "grading the reference 2 times" in printed and "bands measured for this batch on cpu" in printed, printed
    assert report["bands_file"] == str(out / "bands" / "tiny.json") and report["within_budget"]
    [row] = report["rows"]
    assert row["variant"] == "unet" and row["ref_mean"] is not None and row["student_miou"] is not None
    assert row["ref_seconds"] > 0 and row["peak_gpu_memory_mb"] is None  # no GPU here
    assert "unet" in printed and "batch wall time" in printed
    bands = json.loads((out / "bands" / "tiny.json").read_text())
    prov = bands["backbones"]["random_init"]["provenance"]
    assert prov["seeds"] == [1, 2] and prov["measured_for"].startswith("this batch")
    assert prov["device"].startswith("cpu") and prov["torch"] and prov["segrade"] and prov["date"]
    assert len(bands["backbones"]["random_init"]["variants"]["unet"]["runs"]) == 2
    ann = json.loads((out / "ann" / "results.json").read_text())
    assert ann["variants"][0]["band"]["measured"] and ann["variants"][0]["points_detail"]["performance_points"] is not None
    assert "measured for this batch" in ann["grade"]["note"]
    assert "measured for this batch" in (out / "ann" / "report.html").read_text()
    assert "measured for this batch" in (out / "summary.html").read_text()
    assert "reference-seed1" not in (out / "gradebook.csv").read_text()

    # A re-run reuses the bands and grades nothing.
    notes, done = [], []
    options = GradeOptions(profile="tiny", device="cpu")
    grade_batch(root, out, spec, options, BatchOptions(jobs=2, report=ReportOptions(pdf=False), band_seeds=2,
                                                       reference=reference),
                BatchEvents(on_note=notes.append, on_done=lambda o: done.append(o.id)))
    assert done == [] and any("scoring against the bands measured for this batch" in n for n in notes), notes

    # --no-measure-bands: no reference runs, the default (absent) bands, "no band" as before
    from grader.batch.bands import plan_bands

    plan = plan_bands(spec, options, tmp_path / "old", "cpu", measure=False)
    assert plan.entries == [] and plan.folder is None and "--no-measure-bands" in plan.message


def test_tasks_of_a_command_killed_before_it_recorded_job_ids_are_found_by_name():
    from grader.batch.backends.slurm import _job_of

    live = {"41_0": {"state": "RUNNING", "name": "segrade-aaaa", "index": "0"},
            "41_1": {"state": "PENDING", "name": "segrade-aaaa", "index": "1"},
            "40_1": {"state": "PENDING", "name": "segrade-bbbb", "index": "1"}}
    assert _job_of({"name": "segrade-aaaa", "index": 1, "job": None}, live) == "41_1"
    assert _job_of({"name": "segrade-cccc", "index": 0, "job": None}, live) is None
    assert _job_of({"name": "segrade-aaaa", "index": 0, "job": "39_0"}, live) == "39_0"


@pytest.mark.slow  # a Slurm cluster
def test_an_array_slurm_refuses_stops_the_batch_with_sbatchs_message(slurm, tmp_path, unet_spec):
    from grader.batch.grade import BatchError

    root = tmp_path / "in"
    write_submission(root / "ann", {"models.py": contract_classes()})
    # a partition that does not exist: refused before sbatch, naming the partitions there are
    backend = SlurmBackend(SlurmConfig(partition="nosuch", cpus=1, mem_gb=2, time_min=10, **FAST))
    with pytest.raises(BatchError, match=r"no such partition \(partitions: debug \(default\), small\)"):
        grade_batch(root, tmp_path / "out", load_spec(unet_spec), GradeOptions(profile=None, device="cpu"),
                    BatchOptions(report=ReportOptions(pdf=False), backend=backend))
    assert not (tmp_path / "out" / ".segrade-slurm").exists()
    # an option sbatch itself refuses: its message, and no task recorded
    backend = SlurmBackend(SlurmConfig(cpus=1, mem_gb=2, time_min=10, extra={"gres": "nosuch:1"}, **FAST))
    with pytest.raises(BatchError, match="Slurm refused the array.*(?i:gres)"):
        grade_batch(root, tmp_path / "out", load_spec(unet_spec), GradeOptions(profile=None, device="cpu"),
                    BatchOptions(report=ReportOptions(pdf=False), backend=backend))
    assert json.loads((tmp_path / "out" / ".segrade-slurm" / "tasks.json").read_text())["tasks"] == {}


def test_the_training_key_ignores_the_rubric_and_bands_the_scoring_key_does_not(tmp_path, unet_spec):
    import re

    from grader.batch.grade import scoring_key, training_spec_sha256

    text = Path(unet_spec).read_text()
    marks = tmp_path / "marks.toml"
    marks.write_text(re.sub(r"^marks = (\d+)", lambda m: f"marks = {int(m.group(1)) + 5}", text, count=1, flags=re.M))
    steps = tmp_path / "steps.toml"
    steps.write_text(re.sub(r"^steps = (\d+)$", lambda m: f"steps = {int(m.group(1)) + 1}", text, count=1, flags=re.M))
    base, more_marks, more_steps = load_spec(unet_spec), load_spec(marks), load_spec(steps)
    assert base.sha256 != more_marks.sha256
    assert training_spec_sha256(base) == training_spec_sha256(more_marks)
    assert training_spec_sha256(base) != training_spec_sha256(more_steps)
    options = GradeOptions(profile="smoke", device="cpu")
    assert scoring_key(base, options) != scoring_key(more_marks, options)
    bands = tmp_path / "bands"
    bands.mkdir()
    (bands / "smoke.json").write_text("{}")
    from dataclasses import replace

    assert scoring_key(base, options) != scoring_key(base, replace(options, bands_folder=bands))


def test_a_silent_controller_is_never_read_as_ended_tasks(monkeypatch, tmp_path):
    """squeue failing (a busy or unreachable controller) concludes nothing: no task is
    declared failed, nothing is submitted again on a guess."""
    import grader.batch.backends.slurm as slurm_backend
    from grader.batch.grade import BatchError

    monkeypatch.setattr(slurm_backend.subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a, 1, "", "slurm_load_jobs error: timeout"))
    assert slurm_backend.squeue(["segrade-x"]) is None
    monkeypatch.setattr(slurm_backend.time, "sleep", lambda s: None)
    with pytest.raises(BatchError, match="squeue failed repeatedly"):
        slurm_backend._squeue_patiently(["segrade-x"])
    slurm_backend._write_records(tmp_path, {"ann": {"id": "ann", "target": "ann", "key": "k", "name": "segrade-x",
                                                    "index": 0, "job": "5_0"}})
    assert [r["id"] for r in slurm_backend._live_records(tmp_path)] == ["ann"]  # cannot tell: kept


# -- requests that fit, pending reasons, bands on the cluster (issue 29), through the README's commands
def _segrade(args: list[str], capsys, monkeypatch) -> tuple[int, str]:
    """`segrade ARGS` in this process (the command's own parser and printing, without the
    seconds a new interpreter costs): its exit code and what it printed, on one line."""
    from grader.cli import main

    monkeypatch.setenv("COLUMNS", "300")
    capsys.readouterr()
    code = main(args)
    return code, " ".join(capsys.readouterr().out.split())


def _segrade_jobs() -> list[str]:
    return [line for line in subprocess.run(["squeue", "-h", "-o", "%i %j"], capture_output=True,
                                            text=True).stdout.splitlines() if "segrade-" in line]


@pytest.mark.slow  # a Slurm cluster
def test_a_request_too_large_is_refused_before_anything_is_submitted(slurm, tmp_path, unet_spec, capsys,
                                                                     monkeypatch):
    """`segrade grade DIR --out OUT --backend slurm ...` on the partition `small` (1 CPU, 3000 MB
    and 20 minutes per task): --slurm-mem 64 and --slurm-time 90 can never run: exit 2 before
    anything is submitted, with the numbers and the options."""
    root = tmp_path / "in"
    write_submission(root / "ann", {"models.py": contract_classes()})
    out = tmp_path / "out"
    command = ["grade", str(root), "--out", str(out), "--backend", "slurm", "--slurm-partition", "small",
               "--checks-only", "--spec", str(unet_spec), "--no-pdf", "--no-similarity"]
    before = _segrade_jobs()
    code, printed = _segrade(command + ["--slurm-mem", "64", "--slurm-time", "90"], capsys, monkeypatch)
    assert code == 2, printed
    assert "can never run, nothing was submitted" in printed
    assert "--slurm-mem 64: partition small gives at most 2.9 GB per task" in printed and "MaxMemPerNode 3000" in printed
    assert "--slurm-time 90: partition small allows at most 20 min" in printed
    assert _segrade_jobs() == before and not (out / ".segrade-slurm").exists()


@pytest.mark.slow  # a Slurm cluster
def test_the_wait_says_why_and_a_node_drained_for_good_stops_it(slurm, tmp_path, unet_spec, capsys, monkeypatch):
    """On the partition `small` (1 CPU, 3000 MB, 20 minutes per task) with the default request:
    it is fitted to the partition and said. The node busy with another job: the command shows
    the task pending for Resources and how long; the node drained meanwhile: it stops (exit 2),
    says so with the admin's reason, and cancels its task; after the node is resumed the same
    command submits it again, with the fitted request, and grades it."""
    import threading

    root = tmp_path / "in"
    write_submission(root / "ann", {"models.py": contract_classes()})
    out = tmp_path / "out"
    command = ["grade", str(root), "--out", str(out), "--backend", "slurm", "--slurm-partition", "small",
               "--slurm-config", str(_fast_config(tmp_path)), "--checks-only", "--no-capture", "--spec", str(unet_spec),
               "--no-pdf", "--no-similarity"]
    blocker = subprocess.run(["sbatch", "--parsable", "--exclusive", "-p", "debug", "-J", "blocker", "-o", "/dev/null",
                              "--wrap", "sleep 600"], capture_output=True, text=True, check=True).stdout.strip()
    lines: list[str] = []
    batch = None
    try:
        deadline = time.monotonic() + 60
        while "RUNNING" not in subprocess.run(["squeue", "-h", "-j", blocker, "-o", "%T"], capture_output=True,
                                              text=True).stdout:
            assert time.monotonic() < deadline, "the blocking job did not start"
            time.sleep(0.5)
        batch = subprocess.Popen([sys.executable, "-m", "grader", *command], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "300"})
        reader = threading.Thread(target=lambda: lines.extend(batch.stdout), daemon=True)
        reader.start()
        deadline = time.monotonic() + 120
        while not any("pending: 1 Resources" in line for line in lines):
            assert batch.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.3)
        assert any("ann, waiting" in line for line in lines if "Resources" in line), lines
        subprocess.run(["scontrol", "update", f"nodename={slurm.node}", "state=drain", "reason=disk replaced"],
                       check=True)
        assert batch.wait(timeout=60) == 2, "".join(lines)
        reader.join(timeout=10)
        printed = " ".join("".join(lines).split())
        assert "the default request does not fit partition small" in printed, printed
        assert "--slurm-cpus 4 -> 1 CPUs, --slurm-mem 16 -> 2.9 GB, --slurm-time 60 -> 20 min" in printed, printed
        assert "1 pending task(s) can never start (ann)" in printed, printed
        assert f"{slurm.node} is ALLOCATED+DRAIN (disk replaced" in printed and "cancelled them" in printed, printed
        assert "run the same command again" in printed
        first = json.loads((out / ".segrade-slurm" / "tasks.json").read_text())["tasks"]["ann"]["job"]
        assert not [job for job in _segrade_jobs() if not job.startswith(blocker)], "its task was not cancelled"
        assert not (out / "ann").exists()  # no error grade: a re-run submits it
    finally:
        if batch is not None and batch.poll() is None:
            batch.kill()
        subprocess.run(["scancel", blocker], capture_output=True)
        subprocess.run(["scontrol", "update", f"nodename={slurm.node}", "state=resume"], capture_output=True)
    code, printed = _segrade(command, capsys, monkeypatch)
    assert code == 0, printed
    assert json.loads((out / "ann" / "done.json").read_text())["outcome"]["state"] == "graded"
    second = json.loads((out / ".segrade-slurm" / "tasks.json").read_text())["tasks"]["ann"]["job"]
    assert second != first
    # what sbatch was given: the fitted request
    sbatch = next((out / ".segrade-slurm" / "logs").glob(f"{second.split('_')[0]}_submission.sh")).read_text()
    assert "--cpus-per-task=1" in sbatch and "--mem=2969MB" in sbatch and "--time=20" in sbatch
    assert "--partition=small" in sbatch


@pytest.mark.slow  # a Slurm cluster
def test_bands_on_the_cluster_are_array_tasks_and_the_full_ones_ask_for_a_gpu(slurm, tmp_path, unet_spec, capsys,
                                                                               monkeypatch):
    """`segrade bands --backend slurm` on real data (the Cityscapes-layout course of
    docs/new_course.md): one task per seed, each training once and scored on both splits (2
    tasks for the test and the val band, not 4), the same figures as the in-process run of the
    same seed; the `full` bands ask for a GPU, which this cluster has not: refused."""
    from course_fixture import make_course

    from grader.grading.pipeline import grade_on_test_and_val

    spec_path = tiny_profile_spec(tmp_path / "spec.toml", unet_spec)
    reference = write_submission(tmp_path / "reference", {"models.py": contract_classes()})
    code, printed = _segrade(["bands", "--backend", "slurm", "--profile", "full", "--spec", str(spec_path),
                              "--reference", str(reference), "--out", str(tmp_path / "full")], capsys, monkeypatch)
    assert code == 2 and "asking for 1 GPU per task" in printed, printed
    assert "partition debug has no GPUs" in printed and "--slurm-gpus 0" in printed, printed

    # The course's data and spec, with the one-conv reference and no architecture rules: what
    # is asserted is how the bands are measured on the cluster, not what a U-Net scores
    # (test_new_course measures the course's own reference).
    course = make_course(tmp_path)
    (course / "spec.toml").write_text(without_architecture((course / "spec.toml").read_text()))
    bands = tmp_path / "bands"
    code, printed = _segrade(["bands", "--backend", "slurm", "--profile", "smoke", "--seeds", "2", "--spec",
                              str(course / "spec.toml"), "--reference", str(reference), "--out", str(bands),
                              "--no-figures", "--slurm-cpus", "1", "--slurm-mem", "2", "--slurm-time", "10",
                              "--slurm-config", str(_fast_config(tmp_path))], capsys, monkeypatch)
    assert code == 0, printed
    assert "test and val split (one training per seed, scored on both)" in printed, printed
    assert "submitted 2 array task(s)" in printed and printed.count("took") == 2, printed
    assert f"wrote {bands / 'smoke.json'}" in printed and f"wrote {bands / 'smoke.val.json'}" in printed, printed
    runs = {}
    for split, name in (("test", "smoke.json"), ("val", "smoke.val.json")):
        entry = json.loads((bands / name).read_text())["backbones"]["random_init"]
        assert entry["provenance"]["backend"] == "slurm" and entry["provenance"]["seeds"] == [1, 2]
        runs[split] = entry["variants"]["unet"]["runs"]
        assert len(runs[split]) == 2
    folders = [bands / "runs" / f"smoke-test-val-seed{s}" for s in (1, 2)]
    assert all((f / "done.json").is_file() and (f / "val" / "results.json").is_file() for f in folders)
    assert runs["test"] != runs["val"]   # the same trainings, scored on other images
    local = grade_on_test_and_val(reference, load_spec(course / "spec.toml"),
                                  GradeOptions(profile="smoke", device="cpu", seed=1, threads=1))
    assert [round(r.variants[0].metrics["miou"], 6) for r in local] == [runs["test"][0], runs["val"][0]]


def _fast_config(folder: Path) -> Path:
    path = folder / "fast.toml"
    path.write_text("[slurm]\npoll_s = 1.0\ngrace_s = 3.0\n")
    return path
