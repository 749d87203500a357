"""The class gradebook (grader.report.gradebook) from the trimmed real results.json in
tests/data/results_small.json (fcn8s_frozen, unet and unet_noskip of the default spec)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from grader.records.files import unreadable
from grader.records.results import SubmissionResult
from grader.report.gradebook import SUMMARY_COLUMNS, gradebook_maxima, write_gradebook
from grader.report.gradebook import gradebook as _gradebook
from grader.spec import load_spec

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def assignment():
    return load_spec()


def records(items: list[dict]) -> list:
    """The typed records of saved results data ({"submission": {"id"}, "error"}: one that could
    not be graded)."""
    return [unreadable(i["submission"]["id"], i["error"]) if "error" in i else SubmissionResult.from_json(i)
            for i in items]


def gradebook(items: list[dict], assignment):
    return _gradebook(records(items), assignment)


def load_results(sid: str = "student_042") -> dict:
    results = json.loads((DATA / "results_small.json").read_text())
    results["submission"]["id"] = sid
    return results


def test_columns_follow_the_rubric(assignment):
    table = gradebook([load_results()], assignment)
    assert list(table.columns) == ["submission", *(item.id for item in assignment.rubric), *SUMMARY_COLUMNS,
                                   *(f"miou_{v.id}" for v in assignment.variants)]
    assert list(SUMMARY_COLUMNS) == ["automatic_total", "automatic_max", "max_total", "passed_variants", "status",
                                     "flags"]


def test_values(assignment):
    results = load_results()
    row = gradebook([results], assignment).iloc[0]
    assert row["submission"] == "student_042" and row["status"] == "graded"
    for item in assignment.rubric:
        points = [v["points"] for v in results["variants"] if v["points_detail"]["rubric_item"] == item.id]
        if item.manual or not points:  # manual: for the grader; no variant of it in this trimmed file
            assert math.isnan(row[item.id]), item.id
        else:
            assert row[item.id] == pytest.approx(sum(points)), item.id
    assert (row["fcn"], row["unet"], row["unet_noskip"]) == (2.0, 24.0785, 2.625)
    assert row["automatic_total"] == 28.7 and row["automatic_max"] == 81 and row["max_total"] == 100
    assert row["passed_variants"] == "2/3" and row["flags"] == ""
    assert row["miou_unet"] == results["variants"][1]["metrics"]["miou"]
    assert math.isnan(row["miou_unet_residual"])


def test_flags_and_worker_problems(assignment):
    results = load_results()
    results["variants"][1]["points_detail"]["flags"] = ["test mIoU 0.300 is above the band: worth a human look"]
    results["environment"]["worker_problem"] = "the worker crashed with SIGSEGV during training"
    row = gradebook([results], assignment).iloc[0]
    assert row["flags"] == ("unet: test mIoU 0.300 is above the band: worth a human look; "
                            "worker: the worker crashed with SIGSEGV during training")


def test_checks_only_leaves_points_empty(assignment):
    results = load_results()
    results["total"] = results["grade"]["total"] = None
    row = gradebook([results], assignment).iloc[0]
    assert all(math.isnan(row[item.id]) for item in assignment.rubric)
    assert math.isnan(row["automatic_total"]) and row["status"] == "graded"


def test_error_row(assignment):
    table = gradebook([load_results("a"), {"submission": {"id": "b"}, "error": "not a zip file: b.zip"}], assignment)
    assert list(table["submission"]) == ["a", "b"]
    row = table.iloc[1]
    assert row["status"] == "error: not a zip file: b.zip"
    assert all(pd.isna(row[item.id]) for item in assignment.rubric)
    assert pd.isna(row["automatic_total"]) and pd.isna(row["passed_variants"])
    assert row["automatic_max"] == 81 and row["max_total"] == assignment.total_marks


def test_refuses_duplicates_and_other_assignments(assignment):
    with pytest.raises(ValueError, match="appears twice"):
        gradebook([load_results("a"), load_results("a")], assignment)
    other = load_results()
    other["assignment_id"] = "another-course"
    with pytest.raises(ValueError, match="pass the spec it was graded with"):
        gradebook([other], assignment)


def test_maxima(assignment):
    maxima = gradebook_maxima(assignment)
    assert [k for k in maxima if k != "automatic_total"] == [item.id for item in assignment.rubric]
    assert maxima["unet"] == 25 and maxima["dataset_visualisation"] == 5
    assert maxima["automatic_total"] == load_results()["grade"]["automatic_max"] == 81


def test_csv_round_trip(assignment, tmp_path):
    results = [load_results("a"), load_results("b"), {"submission": {"id": "c"}, "error": "timed out, twice"}]
    path = write_gradebook(records(results), assignment, tmp_path / "out" / "gradebook.csv")
    assert [p.name for p in path.parent.iterdir()] == ["gradebook.csv"]  # no temporary file left
    back = pd.read_csv(path, keep_default_na=False, na_values=[""])
    expected = gradebook(results, assignment)
    assert list(back.columns) == list(expected.columns)
    expected["flags"] = expected["flags"].replace("", None)  # no flags: an empty cell
    pd.testing.assert_frame_equal(back, expected.round(4), check_dtype=False)
    assert "24.0785" in path.read_text() and ",,," in path.read_text()
