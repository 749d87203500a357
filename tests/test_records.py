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
