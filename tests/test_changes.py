"""Why a grade changed (grader.batch.changes): a regrade compares the results it replaces with the
new ones; the report and changes.csv say what changed and by how many points, variant by
variant (tests/data/results_small.json, altered as a new spec and bands would)."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

from grader.batch.changes import CHANGES_FILE, note_changes, write_changes_csv
from grader.batch.changes import compare as _compare
from grader.records.files import ErrorRecord, write_error
from grader.records.results import SubmissionResult
from grader.report.outputs import ReportOptions, write_submission_report
from grader.spec import load_spec

DATA = Path(__file__).parent / "data"


def compare(old: dict | None, new: dict):
    return _compare(None if old is None else SubmissionResult.from_json(old), SubmissionResult.from_json(new))


def _old_new():
    old = json.loads((DATA / "results_small.json").read_text())
    new = copy.deepcopy(old)
    new["spec_sha256"] = "f" * 64
    new["segrade_version"] = "9.9.9"
    unet = next(v for v in new["variants"] if v["variant_id"] == "unet")
    unet["points"] = round(unet["points"] - 2.5, 4)
    unet["status"] = "failed"
    next(c for c in unet["checks"] if c["id"] == "architecture")["status"] = "fail"
    if unet.get("band"):
        unet["band"] = {**unet["band"], "measured": True, "lower": 0.5, "upper": 0.7}
    new["total"] = new["grade"]["total"] = round(old["total"] - 2.5, 4)
    return old, new


def test_compare_says_what_and_how_much():
    old, new = _old_new()
    changes = compare(old, new)
    assert changes["total"]["delta"] == -2.5
    assert [v["variant_id"] for v in changes["variants"]] == ["unet"]
    unet = changes["variants"][0]
    assert unet["delta"] == -2.5 and unet["old_status"] == "passed" and unet["new_status"] == "failed"
    assert unet["checks"] == ["architecture: pass → fail"]
    why = "\n".join(changes["reasons"])
    assert "the assignment spec changed" in why and f"segrade {old['segrade_version']} → 9.9.9" in why
    assert "the submission's content changed" not in why
    assert compare(None, new) is None
    same = compare(old, copy.deepcopy(old))
    assert same["variants"] == [] and same["total"]["delta"] == 0


def test_report_and_csv(tmp_path):
    old, new = _old_new()
    (tmp_path / "out" / "alice").mkdir(parents=True)
    (tmp_path / "out" / "alice" / "results.json").write_text(json.dumps(old))
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "results.json").write_text(json.dumps(new))
    note_changes(tmp_path / "out" / "alice", SubmissionResult.from_json(new), staging)
    assert (staging / CHANGES_FILE).is_file()
    write_submission_report(staging, load_spec(None), ReportOptions(pdf=False))
    html = (staging / "report.html").read_text()
    assert "Why the grade changed" in html and "architecture: pass → fail" in html and "-2.5" in html
    (tmp_path / "out" / "alice").rename(tmp_path / "old")
    staging.rename(tmp_path / "out" / "alice")
    rows = list(csv.DictReader(write_changes_csv(tmp_path / "out", ["alice"]).open()))
    assert [(r["variant"], r["old_points"], r["new_points"], r["delta"]) for r in rows][1][0] == "unet"
    assert rows[0]["variant"] == "total" and rows[0]["delta"] == "-2.5"
    assert rows[1]["old_status"] == "passed" and rows[1]["new_status"] == "failed"
    assert "assignment spec changed" in rows[1]["reasons"]


def test_graded_after_an_error(tmp_path):
    """A submission that could not be graded before (error.json) and is graded now."""
    previous = tmp_path / "out" / "erin"
    previous.mkdir(parents=True)
    write_error(previous, ErrorRecord("erin", "/in/erin.zip", "fcn-unet-segmentation", "0.1.0", "corrupt zip"))
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "results.json").write_text((DATA / "results_small.json").read_text())
    changes = note_changes(previous, SubmissionResult.from_json(json.loads((DATA / "results_small.json").read_text())),
                           staging)
    assert changes["reasons"] == ["it could not be graded before: corrupt zip"] and changes["total"]["old"] is None
    write_submission_report(staging, load_spec(None), ReportOptions(pdf=False))
    assert "it could not be graded before: corrupt zip" in (staging / "report.html").read_text()


def test_no_changes_file_for_a_first_grade(tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "results.json").write_text((DATA / "results_small.json").read_text())
    new = SubmissionResult.from_json(json.loads((staging / "results.json").read_text()))
    assert note_changes(tmp_path / "never_graded", new, staging) is None
    assert not (staging / CHANGES_FILE).exists()
