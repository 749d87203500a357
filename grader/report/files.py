"""results.json and samples.npz for the report package: read and written by grader.records.files
(the one place that knows the record formats); re-exported here for the report modules."""

from __future__ import annotations

from typing import Any

from grader.records.files import (  # noqa: F401  (re-exported)
    READABLE_SCHEMAS, ResultsError, read_results, read_samples, write_atomic, write_results,
)


def first_check(variant: dict[str, Any], status: str) -> dict[str, Any] | None:
    """A saved variant's first check with this status ("fail", "warn"): what the reports
    name first. The saved-data twin of VariantResult.first_check."""
    return next((c for c in variant.get("checks", []) if c["status"] == status), None)
