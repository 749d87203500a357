"""The class gradebook: one row per submission, one column per rubric item, as a pandas table.

Built from each submission's typed record (grader.records.files.read_record) and the
assignment spec, so that the columns follow the rubric and the points are segrade's own.
Manual items are left empty for the human grader; a submission that could not be graded at
all (an ErrorRecord) is an "error row" with its message rather than missing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from grader.records.files import ErrorRecord, write_atomic
from grader.records.results import SubmissionResult
from grader.spec import Assignment

SUMMARY_COLUMNS = ("automatic_total", "automatic_max", "max_total", "passed_variants", "status", "flags")


def gradebook(records: list[SubmissionResult | ErrorRecord], assignment: Assignment) -> pd.DataFrame:
    """One row per submission: `submission`; one column per rubric item in rubric order
    (automatic items: the points of their variants, empty with checks only; manual items:
    empty, for the grader); then SUMMARY_COLUMNS; then `miou_<variant id>` (test mIoU)."""
    seen: set[str] = set()
    rows = []
    for record in records:
        sid = str(record.id)
        if sid in seen:
            raise ValueError(f"submission {sid!r} appears twice in the gradebook: keep one results folder "
                             "per submission")
        seen.add(sid)
        rows.append(_error_row(sid, record.error, assignment) if isinstance(record, ErrorRecord)
                    else _row(sid, record, assignment))
    columns = ["submission", *(item.id for item in assignment.rubric), *SUMMARY_COLUMNS,
               *(f"miou_{v.id}" for v in assignment.variants)]
    return pd.DataFrame(rows, columns=columns)


def gradebook_maxima(assignment: Assignment) -> dict[str, float]:
    """The most marks each points column can hold: every rubric item's column, and
    `automatic_total` (the marks segrade scores)."""
    return {**{item.id: item.marks for item in assignment.rubric},
            "automatic_total": assignment.automatic_marks}


def write_gradebook(records: list[SubmissionResult | ErrorRecord], assignment: Assignment, path: Path) -> Path:
    """Write the gradebook as CSV (points to at most 4 decimals, empty cells for no value),
    atomically: a killed write leaves no half file."""
    return write_atomic(path, gradebook(records, assignment).round(4).to_csv(index=False))


def _row(sid: str, result: SubmissionResult, assignment: Assignment) -> dict[str, Any]:
    if result.assignment_id != assignment.id:
        raise ValueError(f"submission {sid!r} was graded for assignment {result.assignment_id!r}, not "
                         f"{assignment.id!r}: pass the spec it was graded with, or grade it again with this one")
    grade = result.grade
    row: dict[str, Any] = {"submission": sid}
    for item in assignment.rubric:
        points = [v.points for v in result.variants if v.points_detail.get("rubric_item") == item.id]
        scored = not item.manual and result.total is not None and bool(points) and None not in points
        row[item.id] = sum(points) if scored else math.nan
    flags = [f"{v.variant_id}: {flag}" for v in result.variants for flag in v.points_detail.get("flags", [])]
    problem = result.environment.get("worker_problem")
    if problem:
        flags.append(f"worker: {problem}")
    row.update(automatic_total=math.nan if result.total is None else result.total,
               automatic_max=grade.automatic_max, max_total=grade.max_total,
               passed_variants=f"{grade.passed_variants}/{grade.total_variants}", status="graded",
               flags="; ".join(flags))
    for variant in result.variants:
        row[f"miou_{variant.variant_id}"] = math.nan if variant.miou is None else variant.miou
    return row


def _error_row(sid: str, error: str, assignment: Assignment) -> dict[str, Any]:
    maxima = gradebook_maxima(assignment)
    return {"submission": sid, "automatic_max": maxima["automatic_total"], "max_total": assignment.total_marks,
            "status": f"error: {error}", "flags": ""}
