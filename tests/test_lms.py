"""LMS import files (grader.report.lms) against the formats' documented columns: Canvas's
gradebook CSV (Student, ID, SIS User ID, SIS Login ID, Section, then `Assignment Name
(assignment id)`) and Moodle's grade import CSV (an identifier column, one column per grade
item); the example roster of docs/reports.md."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from grader.report.lms import CANVAS_FILE, MOODLE_FILE, RosterError, read_roster, write_lms_files
from grader.spec import load_spec

DATA = Path(__file__).parent / "data"
DOCS = Path(__file__).parent.parent / "docs"


def _doc_roster() -> str:
    """The example roster in docs/reports.md (so the documented example is the tested one)."""
    text = (DOCS / "reports.md").read_text()
    block = re.search(r"```csv\n(submission,.*?)```", text, re.S)
    assert block, "docs/reports.md has no ```csv roster example"
    return block.group(1)


@pytest.fixture
def graded(tmp_path):
    results = json.loads((DATA / "results_small.json").read_text())
    for sid, total in (("alice", 61.5), ("bob", 40.0)):
        (tmp_path / sid).mkdir()
        (tmp_path / sid / "results.json").write_text(json.dumps({**results, "total": total,
                                                                     "grade": {**results["grade"], "total": total}}))
    (tmp_path / "erin").mkdir()
    (tmp_path / "erin" / "error.json").write_text(json.dumps({"error": "corrupt zip"}))
    (tmp_path / "roster.csv").write_text(_doc_roster())
    return tmp_path


def test_canvas_and_moodle_columns(graded):
    assignment = load_spec(None)
    files = write_lms_files(graded, assignment, graded / "roster.csv", column="Assignment 3: segmentation (4321)")
    assert [p.name for p in files.written] == [CANVAS_FILE, MOODLE_FILE]
    canvas = list(csv.reader((graded / CANVAS_FILE).open()))
    assert canvas[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Assignment 3: segmentation (4321)"]
    assert re.fullmatch(r".+ \(\d+\)", canvas[0][-1])  # Canvas: `Assignment Name (assignment id)`
    rows = {r[0]: r for r in canvas[1:]}
    assert rows["Martin, Alice"] == ["Martin, Alice", "101", "s1001", "amartin", "Section 1", "61.5"]
    assert rows["Nguyen, Bob"][-1] == "40"
    assert rows["Diaz, Carol"][-1] == ""   # on the roster, no submission: Canvas leaves the grade as it is
    assert rows["Evans, Erin"][-1] == ""   # could not be graded: for a person to decide
    moodle = list(csv.reader((graded / MOODLE_FILE).open()))
    assert moodle[0] == ["email", "Assignment 3: segmentation (4321)"]
    assert moodle[1:] == [["amartin@uni.example", "61.5"], ["bnguyen@uni.example", "40"]]  # no grade: no row
    problems = "\n".join(files.problems)
    assert "carol: on the roster, but no graded submission" in problems and "erin: could not be graded" in problems


def test_roster_errors(tmp_path):
    (tmp_path / "r.csv").write_text("name,email\nAlice,a@x\n")
    with pytest.raises(RosterError, match="no `submission` column"):
        read_roster(tmp_path / "r.csv")
    (tmp_path / "r.csv").write_text("Submission,Name\nalice,A\nalice,B\n")
    with pytest.raises(RosterError, match="appears twice"):
        read_roster(tmp_path / "r.csv")
    (tmp_path / "r.csv").write_text("Submission ID,Student Name,ID Number\nalice,A,77\n")
    assert read_roster(tmp_path / "r.csv")[0] | {} == {"submission": "alice", "name": "A", "canvas_id": "",
                                                        "sis_user_id": "", "sis_login_id": "", "section": "",
                                                        "email": "", "id_number": "77"}


def test_moodle_by_id_number(graded):
    (graded / "roster.csv").write_text("submission,name,id_number\nalice,\"Martin, Alice\",20231001\n")
    write_lms_files(graded, load_spec(None), graded / "roster.csv")
    moodle = list(csv.reader((graded / MOODLE_FILE).open()))
    assert moodle == [["idnumber", load_spec(None).title], ["20231001", "61.5"]]
