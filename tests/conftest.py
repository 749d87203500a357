import os

# Under pytest-xdist (`-n 2`, what .ci/run uses) two test processes share the cores: each, and
# every worker it starts (OMP_NUM_THREADS is passed to the sandbox), computes on one thread,
# so the two never oversubscribe the CPU. Thread count changes no assertion (bands are wide,
# the checks judge structure, not digits).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"

import pytest

from grader.spec import load_spec
from tiny_submission import spec_without_architecture


@pytest.fixture(scope="session")
def spec(tmp_path_factory):
    """The default assignment spec without its architecture requirements, for the
    one-conv submissions of tiny_submission.py; the architecture check has its own tests
    (test_graph.py, test_checks.py)."""
    return load_spec(spec_without_architecture(tmp_path_factory.mktemp("spec") / "spec.toml"))
