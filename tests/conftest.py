import os

import pytest

from grader.spec import load_spec
from tiny_submission import spec_with, spec_without_architecture


@pytest.fixture(scope="session")
def spec(tmp_path_factory):
    """The default assignment spec without its architecture requirements, for the
    one-conv submissions of tiny_submission.py; the architecture check has its own tests
    (test_graph.py, test_checks.py)."""
    return load_spec(spec_without_architecture(tmp_path_factory.mktemp("spec") / "spec.toml"))


@pytest.fixture(scope="session")
def spec_for(tmp_path_factory):
    """`spec_for("unet", ...)`: the default spec cut to these variants and without architecture
    requirements (tiny_submission.spec_with), loaded once per run. A test that asserts on
    one variant grades only that one: each variant is a build, a forward and a backward."""
    loaded = {}

    def cut(*variant_ids: str):
        if variant_ids not in loaded:
            path = tmp_path_factory.mktemp("spec") / "spec.toml"
            loaded[variant_ids] = load_spec(spec_with(list(variant_ids), path, architecture=False))
        return loaded[variant_ids]

    return cut


def pytest_configure(config):
    """Under pytest-xdist (`-n auto` in pyproject.toml) each test process trains with one CPU thread, and so do the
    sandboxed workers and verifiers it starts (OMP_NUM_THREADS is passed to them): two test
    processes of torch's default two threads each on 2 cores ran a training test 19x slower
    (56 s -> 1066 s, measured), threads spinning against each other."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)


# The `slow` marker stays honest: a test that ran for more than SLOW_SECONDS without it is
# named at the end of the run (`pytest -m "not slow"` is the quick loop while developing).
SLOW_SECONDS = 5.0
_unmarked_slow: list[tuple[float, str]] = []


def pytest_runtest_logreport(report):
    if report.when == "call" and report.duration > SLOW_SECONDS and "slow" not in report.keywords:
        _unmarked_slow.append((report.duration, report.nodeid))
    name = report.nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
    _file_seconds[name] = _file_seconds.get(name, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    unlisted = sorted(((seconds, name) for name, seconds in _file_seconds.items()
                       if seconds > LONG_FILE_SECONDS and name not in LONGEST_FIRST), reverse=True)
    if unlisted:
        terminalreporter.write_sep("-", f"files over {LONG_FILE_SECONDS:g} s not in LONGEST_FIRST (tests/conftest.py: "
                                        "add them, or one may run last alone)")
        for seconds, name in unlisted:
            terminalreporter.write_line(f"{seconds:6.1f} s  {name}")
    if _unmarked_slow:
        terminalreporter.write_sep("-", f"tests over {SLOW_SECONDS:g} s not marked slow (mark them)")
        for seconds, nodeid in sorted(_unmarked_slow, reverse=True):
            terminalreporter.write_line(f"{seconds:6.1f} s  {nodeid}")


# The files that take longest, longest first (their test time in a full run on 2 cores,
# 2026-12-07, a slow hour: 195, 179, 169, 118, 92, 90, 63, 53, 52, 51, 49, 46, 43, 32, 26, 25, 23,
# 23, 22, 20, 17 s; the rest take seconds). With `--dist loadfile` a file runs whole in one test
# process, and files go out in collection order (`--no-loadscope-reorder` in pyproject.toml:
# xdist would otherwise send the files with the most tests first, and the few-test long ones,
# the reference's self-check among them, last, leaving the other process idle for minutes at
# the end). Longest first, the short files fill in at the end; a file over LONG_FILE_SECONDS
# missing here is named at the end of a run (test_zygote, unlisted, once ran last alone for 50 s).
LONGEST_FIRST = ("test_slurm.py", "test_submissions.py", "test_reference_grade.py", "test_new_course.py",
                 "test_graph.py", "test_hostile.py", "test_reference_models.py", "test_capture_hostile.py",
                 "test_check.py", "test_zygote.py", "test_wheel.py", "test_batch.py", "test_real_submissions.py",
                 "test_weights.py", "test_provenance.py", "test_capture.py", "test_checks.py", "test_reports.py",
                 "test_training.py", "test_similarity.py", "test_reuse.py")
LONG_FILE_SECONDS = 12.0
_file_seconds: dict[str, float] = {}


def pytest_collection_modifyitems(items):
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))   # stable: each file keeps its order
