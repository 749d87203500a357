"""Where segrade's bundled files live: the reference solution, the templates and
the default assignment spec.

In a source checkout `reference/` and `templates/` sit beside the `grader`
package; in an installed wheel they are copied inside it as `grader/_bundled/`
(see pyproject.toml). This module is the one place that knows both layouts.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the grader package (this file is grader/shared/resources.py)
DEFAULT_SPEC = PACKAGE_DIR / "spec" / "default.toml"


def _bundled(name: str) -> Path:
    for candidate in (PACKAGE_DIR / "_bundled" / name, PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"segrade's bundled folder {name!r} is missing from {PACKAGE_DIR}; "
        "reinstall segrade (pip install --force-reinstall segrade)"
    )


def bundled_root() -> Path:
    """The folder holding the bundled folders (reference/, templates/, courses/)."""
    return _bundled("reference").parent


def reference_dir() -> Path:
    """The reference solution, shaped like a submission that follows the contract."""
    return _bundled("reference")


def templates_dir() -> Path:
    return _bundled("templates")
