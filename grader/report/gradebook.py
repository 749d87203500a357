"""The class gradebook: one row per submission, one column per rubric item, as a pandas table.

Built from each submission's results.json data (grader.report.files.read_results) and the
assignment spec, so that the columns follow the rubric and the points are segrade's own.
Manual items are left empty for the human grader; a submission that could not be graded at
all is an "error row" ({"submission": {"id": ...}, "error": "message"}) rather than missing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from grader.report.files import write_atomic
from grader.spec import Assignment

SUMMARY_COLUMNS = ("automatic_total", "automatic_max", "max_total", "passed_variants", "status", "flags")


def gradebook(results_list: list[dict[str, Any]], assignment: Assignment) -> pd.DataFrame:
    """One row per submission: `submission`; one column per rubric item in rubric order
    (automatic items: the points of their variants, empty with checks only; manual items:
    empty, for the grader); then SUMMARY_COLUMNS; then `miou_<variant id>` (test mIoU)."""
    seen: set[str] = set()
    rows = []
    for results in results_list:
        sid = str(results["submission"]["id"])
        if sid in seen:
            raise ValueError(f"submission {sid!r} appears twice in the gradebook: keep one results folder "
                             "per submission")
        seen.add(sid)
        rows.append(_error_row(sid, results["error"], assignment) if "error" in results
                    else _row(sid, results, assignment))
    columns = ["submission", *(item.id for item in assignment.rubric), *SUMMARY_COLUMNS,
               *(f"miou_{v.id}" for v in assignment.variants)]
    return pd.DataFrame(rows, columns=columns)


def gradebook_maxima(assignment: Assignment) -> dict[str, float]:
    """The most marks each points column can hold: every rubric item's column, and
    `automatic_total` (the marks segrade scores)."""
    return {**{item.id: item.marks for item in assignment.rubric},
            "automatic_total": assignment.automatic_marks}


def write_gradebook(results_list: list[dict[str, Any]], assignment: Assignment, path: Path) -> Path:
    """Write the gradebook as CSV (points to at most 4 decimals, empty cells for no value),
    atomically: a killed write leaves no half file."""
    return write_atomic(path, gradebook(results_list, assignment).round(4).to_csv(index=False))


def _row(sid: str, results: dict[str, Any], assignment: Assignment) -> dict[str, Any]:
    if results.get("assignment_id") != assignment.id:
        raise ValueError(f"submission {sid!r} was graded for assignment {results.get('assignment_id')!r}, not "
                         f"{assignment.id!r}: pass the spec it was graded with, or grade it again with this one")
    grade = results["grade"]
    variants = results["variants"]
    row: dict[str, Any] = {"submission": sid}
    for item in assignment.rubric:
        points = [v.get("points") for v in variants if (v.get("points_detail") or {}).get("rubric_item") == item.id]
        scored = not item.manual and results["total"] is not None and bool(points) and None not in points
        row[item.id] = sum(points) if scored else math.nan
    flags = [f"{v['variant_id']}: {flag}" for v in variants for flag in (v.get("points_detail") or {}).get("flags", [])]
    problem = (results.get("environment") or {}).get("worker_problem")
    if problem:
        flags.append(f"worker: {problem}")
    row.update(automatic_total=math.nan if results["total"] is None else results["total"],
               automatic_max=grade["automatic_max"], max_total=grade["max_total"],
               passed_variants=f"{grade['passed_variants']}/{grade['total_variants']}", status="graded",
               flags="; ".join(flags))
    for variant in variants:
        miou = (variant.get("metrics") or {}).get("miou")
        row[f"miou_{variant['variant_id']}"] = math.nan if miou is None else miou
    return row


def _error_row(sid: str, error: str, assignment: Assignment) -> dict[str, Any]:
    maxima = gradebook_maxima(assignment)
    return {"submission": sid, "automatic_max": maxima["automatic_total"], "max_total": assignment.total_marks,
            "status": f"error: {error}", "flags": ""}
