"""Broken and hostile submissions: each gets a precise status on the affected variant(s),
and nothing else is affected: the other variants pass, the grading process keeps its own
state, no planted secret leaks into results or logs, no network connection gets out.

Each submission is the tiny all-contract model below with one part made hostile; the
tests run the real worker through the real sandbox (bubblewrap where installed; the
`process_only` tests check the fallback without it).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import zipfile

import pytest

from grader.submission.load import SubmissionError
from grader.grading.pipeline import GradeOptions, grade_submission
from grader.report import write_results
from grader.records.results import VariantStatus
from grader.grading.sandbox import Limits, isolation_available, runs_as_nobody
from tiny_submission import IN_WORKER, TINY, contract_classes, write_submission

# A test that grades runs the real worker (a sandboxed process building models): seconds each,
# marked slow one by one.
slow = pytest.mark.slow

FAST = Limits(phase_seconds={"start": 60, "import": 20, "build": 20, "forward": 20})
# SEGRADE_TEST_ISOLATION=process runs this whole file without bubblewrap.
FORCED = os.environ.get("SEGRADE_TEST_ISOLATION")
BWRAP = isolation_available() == "bubblewrap" and FORCED != "process"
needs_bwrap = pytest.mark.skipif(not BWRAP, reason="bubblewrap is not installed or not used")
# The process limit and file permissions protect only when the worker can run as its own
# user, i.e. when segrade runs as root (CI does).
needs_root = pytest.mark.skipif(not runs_as_nobody("bubblewrap" if BWRAP else "process"),
                                reason="the worker drops to nobody only when run as root")


classes = contract_classes


@pytest.fixture(scope="module")
def spec(spec_for):
    """An FCN, the U-Net most hostile code here goes in, and a U-Net graded after it: enough to
    see that nothing else is affected (the next variant included), at a third of the whole
    assignment's builds. A test whose hostile code is in another class grades that class
    between neighbours of its own."""
    return spec_for("fcn8s_frozen", "unet", "unet_residual")


def submit(tmp_path, files: dict[str, str | bytes], name="student"):
    return write_submission(tmp_path / name, files)


def grade(path, spec, *, default_path: bool = False, **options):
    """Checks only. Most hostile code here acts in the worker, before or while it builds and
    measures, and the worker is the same with or without capture: those tests grade in the
    worker alone (no capture, no verifier, what it measured trusted), which saves the verifier's
    ~4 s start-up per grade. `default_path`: the tests whose hostile code could reach the
    captured programs or the grading process grade as `segrade grade` does (capture and
    verifier; test_capture_hostile attacks the capture itself)."""
    options.setdefault("limits", FAST)
    options.setdefault("isolation", FORCED)
    if not default_path:
        options = {**IN_WORKER, **options}
    return grade_submission(path, spec, GradeOptions(**{"profile": None, **options}))


def statuses(result):
    return {v.variant_id: v.status for v in result.variants}


def only(result, bad: dict[str, VariantStatus]):
    """`bad` variants have the given statuses; every other variant passed."""
    got = statuses(result)
    expected = {vid: bad.get(vid, VariantStatus.PASSED) for vid in got}
    assert got == expected, {v.variant_id: v.checks[0].message for v in result.variants if v.variant_id in bad}


def message(result, variant_id):
    variant = next(v for v in result.variants if v.variant_id == variant_id)
    return " ".join(c.message for c in variant.checks)


UNET_ONLY = {"unet": VariantStatus.ERROR}


@slow
def test_syntax_error_in_one_file(tmp_path, spec):
    result = grade(submit(tmp_path, {"models.py": classes(), "broken.py": "def f(:\n    pass\n"}), spec)
    only(result, {})
    broken = next(m for m in result.modules if m["path"] == "broken.py")
    assert broken["ok"] is False and broken["error"].startswith("SyntaxError")


@slow
def test_import_of_a_missing_package(tmp_path, spec):
    files = {"models.py": classes(), "fcn.py": "import albumentations_is_not_installed\n" + TINY
             + "class FCN8s(Tiny):\n    pass\n"}
    result = grade(submit(tmp_path, files), spec)
    # models.py still has FCN8s, so the variant builds from there.
    only(result, {})
    assert "No module named 'albumentations_is_not_installed'" in next(
        m for m in result.modules if m["path"] == "fcn.py")["error"]


@slow
def test_class_missing(tmp_path, spec):
    source = classes().replace("class ResidualUNet(Tiny):\n    pass\n", "")
    result = grade(submit(tmp_path, {"models.py": source}), spec)
    only(result, {"unet_residual": VariantStatus.MISSING})
    assert "ResidualUNet" in message(result, "unet_residual")


@slow
def test_constructor_with_an_unexpected_signature(tmp_path, spec):
    source = classes(UNet="""
        def __init__(self, config):
            super().__init__(config["classes"])
    """)
    result = grade(submit(tmp_path, {"models.py": source}), spec)
    assert statuses(result)["unet"] in (VariantStatus.MISSING, VariantStatus.ERROR)
    assert "config" in message(result, "unet")
    assert sum(s is VariantStatus.PASSED for s in statuses(result).values()) == len(result.variants) - 1


@slow
def test_training_at_top_level_of_a_script_is_not_run(tmp_path, spec):
    script = classes() + """
import os, time
os.makedirs("/content/drive/MyDrive/runs", exist_ok=True)
model = UNet(13)
for epoch in range(50):
    time.sleep(10)
"""
    result = grade(submit(tmp_path, {"train.py": script}), spec)
    only(result, {})
    skipped = result.submission.skipped["train.py"]
    assert any("os.makedirs" in line for line in skipped) and any("for epoch" in line for line in skipped)


@slow
def test_training_at_top_level_of_a_notebook_is_not_run(tmp_path, spec):
    cells = [
        "!pip install wandb",
        "import time\nimport torch\nimport wandb\nwandb.init(project='hw3')",
        classes(),
        "%%time\nfor epoch in range(100):\n    time.sleep(10)",
        "model = FCN8s(13)\nwhile True:\n    pass",
    ]
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "metadata": {}, "source": c, "outputs": [], "execution_count": None, "id": f"c{i}"}
        for i, c in enumerate(cells)]}
    path = tmp_path / "hw3.ipynb"
    path.write_text(json.dumps(notebook))
    result = grade(path, spec)
    only(result, {})


@slow
def test_infinite_loop_at_import(tmp_path, spec):
    source = classes() + "\nclass Spin:\n    while True:\n        pass\n"
    result = grade(submit(tmp_path, {"models.py": source}), spec,
                   limits=Limits(phase_seconds={"start": 60, "import": 3}))
    assert set(statuses(result).values()) == {VariantStatus.TIMEOUT}
    assert "import phase" in message(result, "unet")
    assert result.environment["worker_problem"] == "no progress within the 3 s limit of the import phase"


@slow
def test_infinite_loop_in_forward(tmp_path, spec_for):
    spec = spec_for("fcn8s_frozen", "unet_noskip", "unet_residual")
    source = classes(UNetNoSkip="""
        def forward(self, x):
            while True:
                pass
    """)
    result = grade(submit(tmp_path, {"models.py": source}), spec, default_path=True,
                   limits=Limits(phase_seconds={"start": 60, "import": 20, "build": 10, "forward": 3}))
    only(result, {"unet_noskip": VariantStatus.TIMEOUT})
    # The first forward of a captured variant is torch.export's, in the build phase: the message says so.
    assert "build phase" in message(result, "unet_noskip") and "runs its forward" in message(result, "unet_noskip")
    assert result.environment["worker_restarts"] == 1


@slow
def test_memory_bomb(tmp_path, spec):
    source = classes(UNet="""
        def __init__(self, num_classes, in_channels=3):
            super().__init__(num_classes)
            self.hog = bytearray(64 * 1024**3)
    """)
    result = grade(submit(tmp_path, {"models.py": source}), spec, limits=Limits(memory_gb=8, phase_seconds=FAST.phase_seconds))
    only(result, {"unet": VariantStatus.OOM})


@slow
@needs_root
def test_process_bomb(tmp_path, spec):
    source = classes(UNet="""
        def __init__(self, num_classes, in_channels=3):
            import os, time
            while True:
                if os.fork() == 0:
                    time.sleep(30)
                    os._exit(0)
    """)
    result = grade(submit(tmp_path, {"models.py": source}), spec, limits=Limits(processes=64, phase_seconds=FAST.phase_seconds))
    only(result, {"unet": VariantStatus.ERROR})
    assert "BlockingIOError" in message(result, "unet") or "Resource temporarily unavailable" in message(result, "unet")


@slow
def test_sys_exit_at_import_and_in_a_constructor(tmp_path, spec):
    source = classes(UNet="""
        def __init__(self, num_classes, in_channels=3):
            import sys
            sys.exit(0)
    """)
    at_import = "import sys\nclass Boom:\n    print('training...')\n    sys.exit(0)\n"   # a class body runs
    result = grade(submit(tmp_path, {"a_train.py": at_import, "models.py": source}), spec)
    only(result, UNET_ONLY)
    assert "SystemExit" in message(result, "unet")
    assert result.modules[0]["path"] == "a_train.py" and result.modules[0]["error"] == "SystemExit: 0"
    assert "training..." in result.worker_log


@slow
def test_os_exit_in_a_constructor(tmp_path, spec):
    source = classes(UNet="""
        def __init__(self, num_classes, in_channels=3):
            import os
            os._exit(0)
    """)
    result = grade(submit(tmp_path, {"models.py": source}), spec)
    only(result, UNET_ONLY)
    assert "exit code 0" in message(result, "unet")


@slow
def test_segfault(tmp_path, spec_for):
    spec = spec_for("fcn8s_frozen", "unet_residual", "unet_attention")
    source = classes(ResidualUNet="""
        def forward(self, x):
            import ctypes
            return ctypes.string_at(0)
    """)
    result = grade(submit(tmp_path, {"models.py": source}), spec, default_path=True)
    only(result, {"unet_residual": VariantStatus.CRASHED})
    assert "SIGSEGV" in message(result, "unet_residual")


@slow
def test_printing_100_mb_keeps_a_short_log(tmp_path, spec):
    source = classes(UNet="""
        def __init__(self, num_classes, in_channels=3):
            super().__init__(num_classes)
            chunk = "x" * 1_000_000
            for _ in range(100):
                print(chunk)
    """)
    result = grade(submit(tmp_path, {"models.py": source}), spec)
    only(result, {})
    assert len(result.worker_log) < 1_100_000
    assert "output cut" in result.worker_log


@slow
def test_fake_results_on_stdout_and_on_disk_change_nothing(tmp_path, spec_for):
    spec = spec_for("fcn8s_frozen", "unet", "unet_attention")
    fake = {"schema": "segrade.results/1", "variants": [{"variant_id": "unet", "status": "passed"}],
            "grade": {"points": 100}}
    source = classes(AttentionUNet=f"""
        def __init__(self, num_classes, in_channels=3):
            import json, os
            print(json.dumps({fake!r}))
            for folder in (".", "..", "../..", "../../.."):
                try:
                    with open(os.path.join(folder, "results.json"), "w") as f:
                        json.dump({fake!r}, f)
                except OSError:
                    pass
            raise RuntimeError("not built")
    """)
    out = tmp_path / "out"
    out.mkdir()
    root = submit(tmp_path, {"models.py": source})
    result = grade(root, spec, default_path=True)
    write_results(result, out)
    only(result, {"unet_attention": VariantStatus.ERROR})
    assert not (root / "results.json").exists() and not (tmp_path / "results.json").exists()
    written = json.loads((out / "results.json").read_text())
    assert {v["variant_id"]: v["status"] for v in written["variants"]}["unet_attention"] == "error"
    assert {v["variant_id"]: v["points"] for v in written["variants"]}["unet_attention"] == 0
    assert written["total"] < 100


@slow
@pytest.mark.parametrize("isolation", ["bubblewrap", "process"])
def test_files_outside_the_copy_and_secrets_stay_hidden(tmp_path, spec, monkeypatch, isolation):
    if isolation == "bubblewrap" and not BWRAP or isolation == "process" and FORCED == "bubblewrap":
        pytest.skip("bubblewrap is not installed or not used")
    if isolation == "process" and not runs_as_nobody("process"):
        pytest.skip("without bubblewrap, only a separate user keeps files hidden, and the worker cannot "
                    "run as one here (not root, or the Python installation is not readable by nobody)")
    secret = tmp_path / "hidden_labels.txt"
    secret.write_text("PLANTED-SECRET-4242")
    secret.chmod(0o600)
    monkeypatch.setenv("SEGRADE_TEST_SECRET", "ENV-SECRET-9191")
    source = classes(UNet=f"""
        def __init__(self, num_classes, in_channels=3):
            import os
            super().__init__(num_classes)
            found = []
            for path in ({str(secret)!r}, "/etc/shadow"):
                try:
                    found.append(open(path).read())
                except OSError as exc:
                    found.append(type(exc).__name__)
            found.append(os.environ.get("SEGRADE_TEST_SECRET", "no env"))
            try:   # into its working folder: the worker's copy, never the submission itself
                open("written_by_student.txt", "w").write("x")
            except OSError:
                pass
            found += [os.getcwd(), os.environ.get("HOME")]
            print("FOUND:", found)
            raise RuntimeError("FOUND: " + repr(found))
    """)
    root = submit(tmp_path, {"models.py": source})
    result = grade(root, spec, isolation=isolation)
    only(result, UNET_ONLY)
    text = json.dumps(result.to_json())
    assert "FOUND:" in text
    assert "PLANTED-SECRET-4242" not in text and "ENV-SECRET-9191" not in text and "root:" not in text
    assert str(root) not in message(result, "unet") and not (root / "written_by_student.txt").exists()


@slow
def test_monkeypatching_torch_does_not_reach_the_grader(tmp_path, spec_for):
    spec = spec_for("fcn16s_frozen", "fcn8s_frozen", "unet")
    import torch

    before = torch.nn.functional.cross_entropy
    source = classes(FCN16s="""
        def __init__(self, num_classes, **kwargs):
            import torch
            super().__init__(num_classes)
            torch.nn.functional.cross_entropy = lambda *a, **k: torch.tensor(0.0)
            torch.Tensor.argmax = lambda self, *a, **k: 0
    """, FCN8s="""
        def forward(self, x):
            return self.conv(x)[:, :, ::2]
    """)
    result = grade(submit(tmp_path, {"models.py": source}), spec, default_path=True)
    only(result, {"fcn8s_frozen": VariantStatus.FAILED, "fcn8s_finetune": VariantStatus.FAILED})
    assert torch.nn.functional.cross_entropy is before
    assert torch.zeros(2, 3).argmax(1).shape == (2,)


@slow
@needs_bwrap
def test_no_network_connection_gets_out(tmp_path, spec):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    connections = []
    graded = threading.Event()

    def accept():   # until the grade is over
        while not graded.is_set():
            try:
                connections.append(listener.accept())
            except (socket.timeout, OSError):
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    source = classes(UNet=f"""
        def __init__(self, num_classes, in_channels=3):
            import socket
            super().__init__(num_classes)
            socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(b"labels please")
    """)
    result = grade(submit(tmp_path, {"models.py": source}), spec)
    graded.set()
    thread.join()
    listener.close()
    only(result, UNET_ONLY)
    assert connections == []


def test_zip_with_parent_entries_is_rejected(tmp_path, spec):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("models.py", classes())
        z.writestr("../escaped.py", "print('out')")
    with pytest.raises(SubmissionError, match=r"\.\./escaped\.py"):
        grade(archive, spec)
    assert not (tmp_path / "escaped.py").exists()


@slow
def test_symlink_to_a_file_outside_is_not_followed(tmp_path, spec):
    outside = tmp_path / "outside_secret.py"
    outside.write_text("SECRET = 'PLANTED-LINK-777'\n")
    root = submit(tmp_path, {"models.py": classes() + "\ntry:\n    from linked import SECRET\nexcept ImportError:\n"
                                                     "    SECRET = None\n"})
    (root / "linked.py").symlink_to(outside)
    result = grade(root, spec)
    only(result, {})
    assert "PLANTED-LINK-777" not in json.dumps(result.to_json())
    assert all(m["path"] != "linked.py" for m in result.submission.modules)


@slow
def test_pickle_checkpoint_that_runs_code_on_load(tmp_path, spec):
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    root = submit(tmp_path, {"models.py": classes(UNet="""
        def __init__(self, num_classes, in_channels=3):
            import torch
            super().__init__(num_classes)
            torch.load("weights.pt")
    """), "weights.pt": pickle.dumps(Evil())})
    result = grade(root, spec)
    only(result, UNET_ONLY)
    assert "weights_only" in message(result, "unet") or "Unpickl" in message(result, "unet")
    assert not marker.exists()


@slow
def test_a_hostile_submission_does_not_affect_the_next_one(tmp_path, spec):
    bad = submit(tmp_path, {"models.py": classes(UNet="""
        def __init__(self, num_classes, in_channels=3):
            import os
            os._exit(3)
    """)}, name="bad")
    good = submit(tmp_path, {"models.py": classes()}, name="good")
    assert statuses(grade(bad, spec, default_path=True))["unet"] is VariantStatus.ERROR
    only(grade(good, spec, default_path=True), {})


@slow
def test_downloading_weights_offline_says_what_to_do(tmp_path, spec_for):
    """In a run that trains from ImageNet weights (the full profile) with none on hand. A run that
    starts every backbone from random init (the smoke profile, --checks-only without the weights)
    gives such a constructor random-init weights instead (test_real_submissions)."""
    spec = spec_for("fcn32s_frozen", "fcn32s_finetune")
    source = classes(FCN32s="""
        def __init__(self, num_classes, freeze_backbone=False, pretrained=True):
            import torchvision
            super().__init__(num_classes)
            self.backbone = torchvision.models.vgg16(weights="IMAGENET1K_V1").features
    """)
    result = grade(submit(tmp_path, {"models.py": source}), spec, profile="full")   # neither builds: nothing trains
    only(result, {"fcn32s_frozen": VariantStatus.ERROR, "fcn32s_finetune": VariantStatus.ERROR})
    text = message(result, "fcn32s_frozen")
    assert "tried to download" in text and "--vgg16-weights" in text and "pretrained" in text


def test_the_worker_environment_and_limits(tmp_path, monkeypatch):
    """What the worker (and the verifier) gets: the passed variables and its job's folders,
    nothing else of the grading process's; its address space is memory_gb."""
    import resource

    from grader.grading.sandbox import resource_limits, worker_environment

    monkeypatch.setenv("SEGRADE_TEST_SECRET", "ENV-SECRET-9191")
    env = worker_environment(tmp_path, {"SEGRADE_X": "1"})
    assert "SEGRADE_TEST_SECRET" not in env and env["SEGRADE_X"] == "1"
    assert env["HOME"] == str(tmp_path / "submission") and env["TMPDIR"] == str(tmp_path)
    limits = dict(resource_limits(Limits(memory_gb=4), as_nobody=False))
    assert limits[resource.RLIMIT_AS] == 4 * 1024**3 and resource.RLIMIT_NPROC not in limits
    assert dict(resource_limits(Limits(processes=7), as_nobody=True))[resource.RLIMIT_NPROC] == 7


def test_the_sandbox_mounts_the_workers_own_sys_path_not_the_graders(monkeypatch, tmp_path):
    """The worker runs `python -I`: PYTHONPATH, a script's folder and pytest's test folders
    are not on its sys.path, so they are not mounted (a course folder on PYTHONPATH would have
    shown every submission and the labels to student code); site-packages is, as absolute paths."""
    import sys
    import sysconfig
    from pathlib import Path

    from grader.grading.sandbox import _python_paths

    course = tmp_path / "course"
    course.mkdir()
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    monkeypatch.setattr(sys, "path", ["tests", str(course), *sys.path])
    paths = _python_paths()
    assert all(os.path.isabs(p) for p in paths)
    assert str(Path("tests").resolve()) not in paths and str(course.resolve()) not in paths
    assert str(Path(sysconfig.get_paths()["purelib"]).resolve()) in {str(Path(p).resolve()) for p in paths}


def test_the_temporary_folder_is_never_mounted_into_the_sandbox(monkeypatch, tmp_path):
    """A .pth file (or, before, a script run from /tmp) can put /tmp on sys.path: mounted
    read-only over the worker's private /tmp, it hid the job's folder (the worker could not
    start: "No usable temporary directory") and showed other jobs' files. Neither it nor a
    folder above it (/) is mounted; a virtual environment under it still is."""
    import tempfile
    from pathlib import Path

    from grader.grading import sandbox

    temp = Path(tempfile.gettempdir()).resolve()
    venv = tmp_path / "venv" / "site-packages"
    venv.mkdir(parents=True)
    monkeypatch.setattr(sandbox, "_worker_sys_path", lambda: (str(temp), "/", str(venv.resolve())))
    paths = sandbox._python_paths()
    assert str(temp) not in paths and "/" not in paths
    assert str(venv.resolve()) in paths


@slow
def test_a_temporary_folder_under_a_private_folder_still_reaches_the_worker(tmp_path, spec_for, monkeypatch):
    """TMPDIR deeper than /tmp under a folder only its owner can walk (a cluster's per-job
    folder, pytest's own): the worker, dropped to nobody, must still reach its job folder.
    It could not under bubblewrap (the folders above the job were created root-only) and the
    variant failed with "No module named 'models'", blamed on the student."""
    import tempfile

    private = tmp_path / "private"
    (private / "tmp").mkdir(parents=True)
    private.chmod(0o700)
    (private / "tmp").chmod(0o1777)
    monkeypatch.setattr(tempfile, "tempdir", str(private / "tmp"))
    path = submit(tmp_path, {"models.py": classes()})
    result = grade(path, spec_for("unet"))
    only(result, {})
    assert not list((private / "tmp").iterdir())


# ---------------------------------------------------------------- writing to the grader's channel (issue 16)

# Student code finds the channel's file descriptor on the worker's command line
# (python -m grader.worker REQUEST FD) and writes forged and malformed messages to it.
FORGED = ('{"event": "environment", "environment": {"device": "cuda (NVIDIA H100 forged)", "torch": "9.9", '
          '"python": "3.11.0"}}\\n'
          '{"event": "result", "result": {"id": "unet", "worker_status": "passed"}}\\n'
          'not json at all\\n{"event": "done"}\\n{"event": "done"}\\n')
WRITE = f"""
import os, sys
os.write(int(sys.argv[2]), b'{FORGED}')
"""
CHANNEL_WRITERS = {
    "constructor": classes(UNet=f"""
        def __init__(self, num_classes, in_channels=3):
            super().__init__(num_classes)
            {WRITE.strip().replace(chr(10), chr(10) + ' ' * 12)}
    """),
    "forward": classes(UNet=f"""
        def forward(self, x):
            {WRITE.strip().replace(chr(10), chr(10) + ' ' * 12)}
            return self.conv(x)
    """),
    "thread": classes(UNet=f"""
        def __init__(self, num_classes, in_channels=3):
            super().__init__(num_classes)
            import threading
            def write():
                {WRITE.strip().replace(chr(10), chr(10) + ' ' * 16)}
            thread = threading.Thread(target=write)
            thread.start()
            thread.join()
    """),
}


@slow
@pytest.mark.parametrize("where", sorted(CHANNEL_WRITERS))
def test_forged_and_malformed_messages_on_the_channel_make_only_that_variant_an_error(tmp_path, spec, where):
    result = grade(submit(tmp_path, {"models.py": CHANNEL_WRITERS[where]}), spec, default_path=True)
    only(result, UNET_ONLY)
    assert "the worker sent a malformed message: an environment message after the worker had started" \
        in message(result, "unet")
    assert "forged" not in json.dumps(result.environment) and result.environment["worker_problem"] is None


@slow
def test_messages_written_at_import_make_the_submission_an_error_and_it_is_still_reported(tmp_path, spec):
    # (in a class body: segrade leaves top-level statements out, class bodies run at import)
    source = "import os, sys\nclass Sneaky:\n    os.write(int(sys.argv[2]), b'{\"event\": \"done\"}\\n')\n" + classes()
    result = grade(submit(tmp_path, {"models.py": source}), spec, default_path=True)
    assert set(statuses(result).values()) == {VariantStatus.ERROR}
    assert result.environment["worker_problem"] == ("the worker sent a malformed message: 'done' before a result "
                                                    "for " + ", ".join(v.id for v in spec.variants[:5]))
    write_results(result, tmp_path / "out")  # writable as ever
    assert json.loads((tmp_path / "out" / "results.json").read_text())["grade"]["passed_variants"] == 0


@slow
def test_check_and_grade_write_results_and_reports_for_a_channel_forger(tmp_path, capsys, monkeypatch):
    """The case of issue 16, through the command line: `segrade check` died with a traceback
    in the terminal printer and wrote nothing; a batch called it "segrade failed". The grade
    also runs on a disk said to have 50 MB free: `segrade grade` says, before grading, that the
    captured programs it keeps may not fit (grader.batch.grade.kept_programs_warning), and grades."""
    import shutil
    from collections import namedtuple

    from grader.cli import main
    from tiny_submission import spec_with

    spec_file = str(spec_with(["unet", "unet_noskip"], tmp_path / "spec.toml", architecture=False))
    root = submit(tmp_path / "in", {"models.py": CHANNEL_WRITERS["constructor"]}, name="mallory")
    isolation = ["--isolation", FORCED] if FORCED else []
    code = main(["check", str(root), "--checks-only", "--no-pdf", "--out", str(tmp_path / "check"),
                 "--spec", spec_file, *isolation])
    shown = capsys.readouterr().out
    assert code == 1 and "Traceback" not in shown and "forged" not in shown
    assert "malformed message" in shown
    saved = json.loads((tmp_path / "check" / "results.json").read_text())
    assert {v["variant_id"]: v["status"] for v in saved["variants"]} == {"unet": "error", "unet_noskip": "passed"}
    assert "H100" not in json.dumps(saved) and (tmp_path / "check" / "report.html").is_file()

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**11, 10**11 - 5 * 10**7, 5 * 10**7))
    assert main(["grade", str(tmp_path / "in"), "--out", str(tmp_path / "grade"), "--checks-only", "--no-pdf",
                 "--spec", spec_file, "--jobs", "1", *isolation]) in (0, 1)
    shown = " ".join(capsys.readouterr().out.split())
    assert f"{tmp_path / 'grade'} has 0.1 GB free, and each grade keeps its captured programs" in shown, shown
    assert "the 1 grade(s) to run may need about" in shown and "Free some space or grade into a larger disk" in shown
    out = tmp_path / "grade" / "mallory"
    assert not (out / "error.json").exists(), (out / "error.json").read_text()
    saved = json.loads((out / "results.json").read_text())
    assert {v["variant_id"]: v["status"] for v in saved["variants"]} == {"unet": "error", "unet_noskip": "passed"}
    assert (out / "report.html").is_file() and (tmp_path / "grade" / "gradebook.csv").is_file()


def test_a_job_folder_still_being_written_after_its_worker_was_killed_is_removed_without_failing(tmp_path):
    """A killed worker's last writes can land while its job folder is removed ('Directory not
    empty', seen with the channel forgers): removal retries and never fails the grade."""
    import threading
    import time
    from pathlib import Path

    from grader.shared.processes import scratch_folder

    with scratch_folder("segrade-test-") as folder:
        stop = time.monotonic() + 0.5

        def writer():   # what a dying process does: more files, for a moment
            i = 0
            while time.monotonic() < stop:
                try:
                    (Path(folder) / f"late-{i}").write_text("x")
                except FileNotFoundError:   # the folder is gone: what the grade waited for
                    return
                i += 1

        thread = threading.Thread(target=writer)
        thread.start()
        time.sleep(0.05)
    thread.join()
    assert not Path(folder).exists()
