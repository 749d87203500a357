import pytest

from grader.spec import load_spec
from tiny_submission import spec_without_architecture


@pytest.fixture(scope="session")
def spec(tmp_path_factory):
    """The default assignment spec without its architecture requirements, for the
    one-conv submissions of tiny_submission.py; the architecture check has its own tests
    (test_graph.py, test_checks.py)."""
    return load_spec(spec_without_architecture(tmp_path_factory.mktemp("spec") / "spec.toml"))
