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


def pytest_terminal_summary(terminalreporter):
    if _unmarked_slow:
        terminalreporter.write_sep("-", f"tests over {SLOW_SECONDS:g} s not marked slow (mark them)")
        for seconds, nodeid in sorted(_unmarked_slow, reverse=True):
            terminalreporter.write_line(f"{seconds:6.1f} s  {nodeid}")


# The files that take longest, longest first (their test time in a full run on 2 cores, quiet,
# 2026-12-05: 189, 153, 150, 114, 114, 68, 67, 63, 50, 49, 46, 40, 32, 29, 28, 25, 15, 14 s; the
# rest take seconds). With `--dist loadfile` a file runs whole in one test process, and files go
# out in collection order (`--no-loadscope-reorder` in pyproject.toml: xdist would otherwise
# send the files with the most tests first, and the few-test long ones, the reference's
# self-check among them, last, leaving the other process idle for minutes at the end).
# Longest first, the short files fill in at the end.
LONGEST_FIRST = ("test_hostile.py", "test_submissions.py", "test_slurm.py", "test_reference_grade.py",
                 "test_new_course.py", "test_real_submissions.py", "test_batch.py", "test_check.py",
                 "test_reference_models.py", "test_graph.py", "test_capture_hostile.py", "test_weights.py",
                 "test_reuse.py", "test_training.py", "test_wheel.py", "test_checks.py", "test_provenance.py",
                 "test_capture.py", "test_grayscale_course.py", "test_reports.py", "test_similarity.py")


def pytest_collection_modifyitems(items):
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))   # stable: each file keeps its order
