"""grader.records.files: the one place that writes and reads results.json and error.json."""

from __future__ import annotations

import json

import pytest

from grader.records.files import (ERROR_SCHEMA, ErrorRecord, ResultsError, error_folders, read_error, read_results,
                            write_atomic, write_error)


def test_an_error_record_round_trips_and_is_found_by_the_class_outputs(tmp_path):
    record = ErrorRecord("bo", "/in/bo.zip", "cv-seg", "1.0", "not a valid zip file", "x" * 5000)
    path = write_error(tmp_path / "bo", record)
    data = json.loads(path.read_text())
    assert data["schema"] == ERROR_SCHEMA and data["submission"] == {"id": "bo", "source": "/in/bo.zip"}
    assert len(data["detail"]) == 4000  # the tail only
    assert read_error(tmp_path / "bo") == ErrorRecord("bo", "/in/bo.zip", "cv-seg", "1.0", "not a valid zip file",
                                                      "x" * 4000)
    write_atomic(tmp_path / "ann" / "results.json", "{}")
    write_error(tmp_path / "ann", record)       # a graded folder: results.json wins
    assert error_folders(tmp_path) == {"bo": "not a valid zip file"}
    assert error_folders(tmp_path, only={"ann"}) == {}


@pytest.mark.parametrize("text", ["not json", "[]", json.dumps({"schema": "segrade.error/1", "error": 3}),
                                  json.dumps({"schema": "other", "error": "x"})])
def test_a_broken_error_record_says_so_and_never_raises_anything_else(tmp_path, text):
    write_atomic(tmp_path / "s" / "error.json", text)
    with pytest.raises(ResultsError, match="cannot be read"):
        read_error(tmp_path / "s")
    assert "cannot be read" in error_folders(tmp_path)["s"]


@pytest.mark.parametrize("text", ["[]", "null", json.dumps({"schema": "segrade.results/1"})])
def test_results_of_another_shape_are_a_results_error(tmp_path, text):
    write_atomic(tmp_path / "results.json", text)
    with pytest.raises(ResultsError, match="schema"):
        read_results(tmp_path)


# --------------------------------------------------------------------------- the typed reader

from pathlib import Path  # noqa: E402

from grader.records.files import read_record, write_results  # noqa: E402
from grader.records.results import (  # noqa: E402
    RESULTS_SCHEMA, Band, CheckResult, CheckStatus, RecordError, SubmissionResult, VariantStatus, band_text,
)
from grader.records.view import first_problem_line, problem_text, summary_lines, verdict  # noqa: E402

SMALL = Path(__file__).parent / "data" / "results_small.json"


def small() -> dict:
    return json.loads(SMALL.read_text())  # schema 2, as an older segrade wrote it


def test_a_saved_grade_reads_back_typed_and_writes_back_unchanged(tmp_path):
    record = SubmissionResult.from_json(small())
    assert record.schema == "segrade.results/2" and record.answers == {}  # what 3 added, read as empty
    assert record.id == "student_042" and record.total == 28.7 and record.submission.root is None
    assert [v.status for v in record.variants] == [VariantStatus.PASSED, VariantStatus.PASSED, VariantStatus.FAILED]
    assert isinstance(record.variants[1].band, Band) and record.variants[1].checks[0].status is CheckStatus.PASS
    current = record.to_json()
    assert current["schema"] == RESULTS_SCHEMA
    # Written in the current schema, a record reads back to the same record and the same file.
    write_results(record, tmp_path)
    again = read_record(tmp_path)
    assert again == record and again.schema == RESULTS_SCHEMA
    assert json.loads((tmp_path / "results.json").read_text()) == current
    # Every field of the older file survives, with the ones schema 3 added; `submission.freezes`
    # (what top-level code freezes, 2026-12-07) is added empty for a grade made before it.
    old = small()
    assert current["submission"]["freezes"] == []
    assert {k: v for k, v in current.items() if k not in ("schema", "answers")} == {
        k: v for k, v in old.items() if k != "schema"} | {"variants": current["variants"],
                                                           "submission": old["submission"] | {"freezes": []}}
    # `program` (issue 26: the captured program graded) is added, null for a grade made before it
    assert all(x["program"] is None for x in current["variants"])
    assert [{k: v for k, v in x.items() if k not in ("band", "program")} for x in current["variants"]] == \
        [{k: v for k, v in x.items() if k != "band"} for x in old["variants"]]


def _set(path: str, value):
    def change(data: dict) -> dict:
        *parents, last = path.split("/")
        node = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is KeyError:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
        return data
    return change


@pytest.mark.parametrize(("change", "named"), [
    (_set("variants/1/status", "done"), "variants[1] 'unet': 'status' is 'done', not one of passed"),
    (_set("variants/0/checks/0/status", 3), "checks[0]: 'status' is int, not str"),
    (_set("variants/2/band/measured", "yes"), "'unet_noskip', band: 'measured' is str, not bool"),
    (_set("variants/1/points", "12"), "'points' is str, not int or float or null"),
    (_set("grade/passed_variants", KeyError), "grade: 'passed_variants' is missing"),
    (_set("grade/total", True), "grade: 'total' is bool"),
    (_set("submission", []), "'submission' is list, not dict"),
    (_set("modules/0", "fcn.py"), "modules[0] is str, not an object"),
    (_set("variants/1/figures", None), "'figures' is NoneType, not dict"),
    (_set("variants", {}), "'variants' is dict, not list"),
])
def test_a_record_of_the_wrong_shape_is_refused_naming_the_field(tmp_path, change, named):
    write_atomic(tmp_path / "results.json", json.dumps(change(small())))
    with pytest.raises(ResultsError, match="grade the submission again") as caught:
        read_results(tmp_path)
    assert named in str(caught.value)
    with pytest.raises(RecordError):
        SubmissionResult.from_json(change(small()))


def test_the_one_view_of_a_graded_submission():
    record = SubmissionResult.from_json(small())
    noskip = record.variant("unet_noskip")
    failing = noskip.first_problem
    assert failing is not None and failing.status is CheckStatus.FAIL
    assert problem_text(noskip) == failing.message and problem_text(noskip, headline=True) == failing.headline
    assert first_problem_line(record) == f"unet_noskip: {failing.headline}"
    warned = record.variant("unet").first_check(CheckStatus.WARN)  # no failure: its first warning
    assert problem_text(record.variant("unet")) == f"warning ({warned.id}): {warned.message}"
    assert problem_text(record.variant("fcn8s_frozen")) == ""
    assert verdict(record.grade) == ("2/3 variants pass every required check. Automatic points: 28.7 of 81 "
                                     "(100 marks in all).")
    lines = summary_lines(record)
    assert lines[1] == verdict(record.grade) and any(line.startswith("unet_noskip (") for line in lines)
    band = record.variant("unet").band
    assert band_text(band, "..") == f"{band.lower:.3f}..{band.upper:.3f}" and band_text(None) == "–"
    refused = Band(measured=False, profile="smoke", backbone="random_init", refusal="measured for other data")
    assert band_text(refused) == "does not apply" and band_text(Band(False, "smoke", "random_init")) == "not measured"


def test_failed_imports_split_into_blocking_and_informational():
    data = small()
    data["modules"] = [{"path": "model.py", "ok": False, "error": "boom", "blocking": True},
                       {"path": "eda.py", "ok": False, "error": "No module named 'cv2'", "blocking": False},
                       {"path": "old.py", "ok": False, "error": "x"},  # before `blocking` was recorded
                       {"path": "fine.py", "ok": True, "error": None}]
    record = SubmissionResult.from_json(data)
    assert [m["path"] for m in record.failed_imports(blocking=True)] == ["model.py", "old.py"]
    assert [m["path"] for m in record.failed_imports(blocking=False)] == ["eda.py"]


def test_a_headline_that_introduces_lines_says_where_they_are():
    """The terminal shows a message's first paragraph; one that ends on "pin it in
    segrade.toml:" would end on nothing (the template after the blank line is the report's)."""
    pinned = CheckResult("builds", CheckStatus.FAIL, "No class found. Pin it in segrade.toml:\n\n[unet]\nclass = ...")
    assert pinned.headline == "No class found. Pin it in segrade.toml (the lines to write are in the report)"
    plain = CheckResult("builds", CheckStatus.FAIL, "It failed.\n\nMore detail: here.")
    assert plain.headline == "It failed."
