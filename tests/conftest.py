import pytest

from grader.spec import load_spec


@pytest.fixture(scope="session")
def spec():
    """The default assignment spec."""
    return load_spec()
