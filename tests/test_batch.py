"""`segrade grade`: a folder of submissions, graded in parallel and resumably.

The submissions are one-conv models (tiny_submission.py) on a spec cut down to the
U-Net, trained in the smoke profile through the real worker, so a batch of four takes
seconds per submission. The SIGKILL test kills the real command mid-batch and checks
that its jobs die with it and that a re-run finishes without regrading what was done.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader.batch.backends.local import become_job, job_context
from grader.batch.grade import BatchError, BatchEvents, BatchOptions, find_entries, grade_batch
from grader.report.outputs import ReportOptions
from grader.grading.pipeline import GradeOptions
from grader.grading.progress import PHASE_WORDS
from grader.similarity import SimilarityOptions
from grader.spec import load_spec
from tiny_submission import contract_classes, spec_with, write_submission


@pytest.fixture(scope="module")
def unet_spec(tmp_path_factory):
    return spec_with(["unet"], tmp_path_factory.mktemp("spec") / "spec.toml", architecture=False)


def make_folder(root: Path, names: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        write_submission(root / name, {"models.py": contract_classes()})
    (root / "broken.zip").write_bytes(b"not a zip")
    (root / "README.md").write_text("class list\n")  # not a submission
    (root / ".DS_Store").write_bytes(b"\0")           # nor this
    return root


def test_entries_are_folders_zips_scripts_and_notebooks(tmp_path):
    make_folder(tmp_path / "in", ["ann", "bo"])
    (tmp_path / "in" / "cy.py").write_text(contract_classes())
    (tmp_path / "in" / "_ignored").mkdir()
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "bo.toml").write_text("[unet]\nclass = 'UNet'\n")
    entries = find_entries(tmp_path / "in", tmp_path / "manifests")
    assert [e.id for e in entries] == ["ann", "bo", "broken", "cy"]
    assert {e.id: e.manifest for e in entries}["bo"] == tmp_path / "manifests" / "bo.toml"
    assert {e.id: e.manifest for e in entries}["ann"] is None

    (tmp_path / "in" / "ann.zip").write_bytes(b"")
    with pytest.raises(BatchError, match="share the id 'ann'"):
        find_entries(tmp_path / "in")
    with pytest.raises(BatchError, match="not a folder"):
        find_entries(tmp_path / "nowhere")


@pytest.mark.slow  # grades a batch
def test_batch_writes_everything_and_regrades_only_what_changed(tmp_path, unet_spec):
    assignment = load_spec(unet_spec)
    folder = make_folder(tmp_path / "in", ["ann", "bo"])
    out = tmp_path / "out"
    options = GradeOptions(profile="smoke", device="cpu")
    states: dict[str, str] = {}
    progress: dict[str, list] = {}
    summary = grade_batch(folder, out, assignment, options, BatchOptions(jobs=2, report=ReportOptions(pdf=False),
                                                                         similarity=SimilarityOptions()),
                          BatchEvents(on_done=lambda o: states.__setitem__(o.id, o.state),
                                      on_progress=lambda entry, state: progress.setdefault(entry.id, []).append(state)))
    assert states == {"ann": "graded", "bo": "graded", "broken": "error"}
    # Each running job said where it had got to (its progress file, read by the local backend
    # every second: a job this short may be seen only at its end).
    for sid in ("ann", "bo"):
        assert progress[sid] and progress[sid][-1].total == 1, progress.get(sid)
        assert all(s.variant in (None, "unet") for s in progress[sid]) and progress[sid][-1].fraction > 0
    # The extracted code is kept; ann and bo handed in the same file: similarity lists them first.
    assert (out / "ann" / "code" / "models.py").is_file()
    assert [(p.a, p.b, p.textual) for p in summary.similarity.flagged] == [("ann", "bo", 1.0)]
    assert 'href="similarity.html"' in (out / "summary.html").read_text()
    assert [o.id for o in summary.outcomes] == ["ann", "bo", "broken"]
    for sid in ("ann", "bo"):
        files = {p.name for p in (out / sid).iterdir()}
        assert {"results.json", "report.html", "results_gradescope.json", "done.json", "samples.npz"} <= files
        assert json.loads((out / sid / "results.json").read_text())["submission"]["id"] == sid
    # The broken zip has its own report with the message, and a Gradescope file saying so.
    assert "not a valid zip file" in (out / "broken" / "report.html").read_text()
    assert json.loads((out / "broken" / "results_gradescope.json").read_text())["score"] == 0
    rows = list(csv.DictReader((out / "gradebook.csv").open()))
    assert sorted(r["submission"] for r in rows) == ["ann", "bo", "broken"]
    index = (out / "index.html").read_text()
    assert 'href="ann/report.html"' in index and 'href="broken/report.html"' in index
    assert "not a valid zip file" in (out / "summary.html").read_text()
    assert not (out / ".segrade-staging").exists()
    # One secret test split for the whole batch: the two identical submissions score the same.
    scores = [json.loads((out / sid / "results.json").read_text())["variants"][0]["metrics"] for sid in ("ann", "bo")]
    assert scores[0]["miou"] == scores[1]["miou"] and scores[0]["per_class_iou"] == scores[1]["per_class_iou"]
    assert (out / ".segrade-test-seed").stat().st_mode & 0o077 == 0

    # Re-run: nothing regraded. Then change one submission: only it is regraded.
    ann_results = (out / "ann" / "results.json").stat().st_ino
    states.clear()
    grade_batch(folder, out, assignment, options, BatchOptions(jobs=2, report=ReportOptions(pdf=False)),
                BatchEvents(on_done=lambda o: states.__setitem__(o.id, o.state)))
    assert states == {}
    (folder / "bo" / "models.py").write_text(contract_classes() + "\n# a change\n")
    summary = grade_batch(folder, out, assignment, options, BatchOptions(jobs=2, report=ReportOptions(pdf=False)),
                          BatchEvents(on_done=lambda o: states.__setitem__(o.id, o.state)))
    assert states == {"bo": "graded"}
    # Why bo's grade changed (or did not): its report and changes.csv say so.
    changes = list(csv.DictReader((out / "changes.csv").open()))
    assert changes[0]["submission"] == "bo" and changes[0]["variant"] == "total"
    assert "the submission's content changed" in changes[0]["reasons"]
    assert "Why the grade changed" in (out / "bo" / "report.html").read_text()
    assert {o.id: o.state for o in summary.outcomes} == {"ann": "resumed", "bo": "graded", "broken": "resumed"}
    assert (out / "ann" / "results.json").stat().st_ino == ann_results


# A plain progress line of bo's one-variant job, whatever stage it is read at: each wording
# ProgressState.describe and time_left can give (grader.grading.progress, grader.report.progress).
_WORDS = "|".join(map(re.escape, sorted({*PHASE_WORDS.values(), "starting the verifier"})))
_WHAT = rf"{_WORDS}|building and capturing|loading its captured program|training step \d+/\d+"
BO_PROGRESS = (rf"^\[\s*\d+ s\] bo: (?:{_WORDS}|variant 1 of 1, unet: (?:{_WHAT}))"
               rf"(?: \((?:about (?:\d+ min )?\d+ s left|estimating time left)\))?$")


def test_the_progress_pattern_takes_every_wording_of_a_state_and_nothing_else():
    from grader.grading.progress import ProgressState
    from grader.report.progress import plain_line

    lines = [plain_line(ProgressState(total=1, index=i, variant=v, phase=p, stage=st, step=3, steps=12,
                                      remaining=r), "bo: ")
             for p in PHASE_WORDS for st in ("", "capture", "verify") for (i, v) in ((0, None), (1, "unet"))
             for r in (None, 0, 42, 130)]
    assert all(re.search(BO_PROGRESS, line) for line in lines), [x for x in lines if not re.search(BO_PROGRESS, x)]
    for wrong in ("[    3 s] bo: variant 1 of 2, unet: building", "[    3 s] bo: something else",
                  "[    3 s] ann: building", "[    3 s] bo: variant 1 of 1, unet: flying"):
        assert not re.search(BO_PROGRESS, wrong), wrong


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _descendants(pid: int) -> list[int]:
    """Every process under `pid`: the job server, the jobs forked from it, their workers."""
    found = _children(pid)
    return found + [d for child in found for d in _descendants(child)]


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _sandboxed(command: str) -> bool:
    return command.startswith("bwrap ") or "-m grader.worker" in command


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow  # the CLI in subprocesses
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the jobs' parent-death signal is Linux-only")
def test_sigkill_mid_batch_then_rerun_finishes_without_regrading(tmp_path, unet_spec):
    folder = make_folder(tmp_path / "in", ["ann", "bo"])   # bo is graded when the batch is killed
    out = tmp_path / "out"
    command = [sys.executable, "-m", "grader", "grade", str(folder), "--out", str(out), "--spec", str(unet_spec),
               "--checks-only", "--device", "cpu", "--jobs", "1", "--no-pdf"]   # what is killed is the batch
    batch = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not (out / "ann" / "done.json").exists():
            assert batch.poll() is None, "the batch ended before it could be killed"
            assert time.monotonic() < deadline, "the first submission took too long"
            time.sleep(0.2)
        # bo's job (forked from the job server, grader.batch.backends.local) is grading: a sandbox
        # of its runs (bubblewrap's; without it, the worker started as `python -m grader.worker`).
        while not any(_sandboxed(_command(p)) for p in _descendants(batch.pid)):
            assert batch.poll() is None, "the batch ended before it could be killed"
            assert time.monotonic() < deadline, "the second submission's worker never started"
            time.sleep(0.2)
        below = _descendants(batch.pid)
        batch.send_signal(signal.SIGKILL)
        batch.wait()
    finally:
        if batch.poll() is None:
            batch.kill()
    # Everything under it dies with it, instead of grading on unseen.
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in below) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in below if _alive(p)]
    assert not (out / "bo").exists(), "bo's job went on grading after its batch was killed"
    first = (out / "ann" / "results.json").stat()

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 1, rerun.stdout + rerun.stderr  # broken.zip cannot be graded
    assert "already graded" in rerun.stdout and "ann" in rerun.stdout
    # Not a terminal: each running job's progress as plain lines (issue 18), at whatever stage
    # the job's progress file is read (each second; a forked job is quick: "variant 1 of 1,
    # unet: ..." or already "starting the verifier"), in one of the wordings a state can have.
    assert re.search(BO_PROGRESS, rerun.stdout, re.M), rerun.stdout
    assert (out / "ann" / "results.json").stat().st_ino == first.st_ino  # not regraded
    assert (out / "bo" / "done.json").exists()
    rows = list(csv.DictReader((out / "gradebook.csv").open()))
    assert sorted(r["submission"] for r in rows) == ["ann", "bo", "broken"]
    assert not (out / ".segrade-staging").exists()
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["ann", "bo", "broken"]


def _job_start_probe(send, watch, environment) -> None:
    """A job process's own start (grader.batch.backends.local.become_job), then what it sees."""
    become_job(watch, environment)
    send.send(os.environ.get("SEGRADE_PROBE"))
    time.sleep(120)   # until the batch is gone


@pytest.mark.slow  # starts the job server (torch and segrade's grading side imported once)
@pytest.mark.skipif("forkserver" not in multiprocessing.get_all_start_methods(), reason="no fork server here")
def test_a_forked_job_has_the_batch_s_environment_now_and_ends_with_the_batch(monkeypatch):
    """A job forked from the server has the environment the batch has when it starts the job
    (not the server's, from when the server started), and ends when the batch's end of its
    watch pipe closes, as it does when the batch dies."""
    context = job_context()
    monkeypatch.setenv("SEGRADE_PROBE", "before")
    first = context.Process(target=os.getpid)   # the server starts now, with "before"
    first.start()
    first.join()
    monkeypatch.setenv("SEGRADE_PROBE", "after")
    receive, send = context.Pipe(duplex=False)
    watch, alive = context.Pipe(duplex=False)
    job = context.Process(target=_job_start_probe, args=(send, watch, dict(os.environ)))
    job.start()
    send.close()
    watch.close()
    try:
        assert receive.poll(60) and receive.recv() == "after"
        alive.close()   # the batch is gone
        job.join(30)
        assert job.exitcode == 1
    finally:
        if job.is_alive():
            job.kill()


def test_where_the_job_server_cannot_start_jobs_are_spawned(monkeypatch):
    from multiprocessing import forkserver

    def no_socket():
        raise OSError("Read-only file system")

    monkeypatch.setattr(forkserver, "ensure_running", no_socket)
    assert job_context().get_start_method() == "spawn"
    with pytest.raises(OSError):   # asked for by name (a benchmark): no silent change
        job_context("forkserver")


def test_a_job_s_threads_are_its_share_of_the_cores_it_may_use_and_never_over_omp_num_threads(monkeypatch):
    """Jobs split the cores the batch may run on (its affinity: a container's or an
    allocation's, not the machine's count), and OMP_NUM_THREADS caps each: a job that set its
    own two threads beside another process on two cores spun against it."""
    from grader.batch.backends import local
    from grader.shared.processes import cpu_cores

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    monkeypatch.setattr(local, "_total_memory_gb", lambda: 256.0)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert cpu_cores() == 8 and local.default_jobs("cpu") == 2
    assert local._job_resources("cpu", 2) == {"threads": 4}
    assert local._job_resources("cpu", 16) == {"threads": 1}
    for value, threads in (("1", 1), ("2,1", 2), ("16", 4), ("0", 4), ("many", 4), ("", 4)):
        monkeypatch.setenv("OMP_NUM_THREADS", value)
        assert local._job_resources("cpu", 2) == {"threads": threads}, value
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert cpu_cores() == 1 and local.default_jobs("cpu") == 1 and local._job_resources("cpu", 1) == {"threads": 1}


def test_cli_refuses_bad_input(tmp_path, capsys):
    from grader.cli import main

    assert main(["grade", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2
    assert "not a folder" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert main(["grade", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "holds no submission" in capsys.readouterr().out


def test_a_batch_says_when_its_disk_may_not_hold_the_kept_programs(tmp_path, monkeypatch):
    """Each grade keeps its captured programs: about 3.5 GB for a submission with six VGG16 FCNs
    (alice_package's programs folder, the README's main job, 2026-12-06). The batch estimates
    it from the reference's parameter counts and says so before grading when OUT's disk may
    fall short; with room enough, or for a course whose figures were never measured, it says
    nothing."""
    import collections
    import re
    import shutil

    from grader.batch.grade import kept_programs_warning
    from grader.grading.pipeline import GradeOptions
    from grader.spec import load_spec

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(0, 0, 10 * 10**9))
    assignment = load_spec()
    line = " ".join(kept_programs_warning(tmp_path, assignment, GradeOptions(), pending=4).split())
    assert f"{tmp_path} has 10.0 GB free" in line and "the 4 grade(s) to run may need about" in line
    per_submission = float(re.search(r"about ([\d.]+) GB a submission", line).group(1))
    assert 3.0 <= per_submission <= 4.0   # measured: 3.5 GB
    assert "--out DIR" in line and "graded again by the next run" in line
    assert kept_programs_warning(tmp_path, assignment, GradeOptions(), pending=2) is None   # ~7.4 GB fit
    assert kept_programs_warning(tmp_path, assignment, GradeOptions(), pending=0) is None
    unet_only = load_spec(spec_with(["unet"], tmp_path / "unet.toml"))   # only the variants the spec grades count
    assert kept_programs_warning(tmp_path, unet_only, GradeOptions(), pending=4) is None
    empty = tmp_path / "no_figures"
    empty.mkdir()
    assert kept_programs_warning(tmp_path, assignment, GradeOptions(bands_folder=empty), pending=4) is None
