"""Gradescope output (grader.report.gradescope) from a trimmed real results.json
(tests/data/results_small.json: fcn8s_frozen passed without a band, unet passed under a
measured band, unet_noskip failed its architecture check), validated against a JSON Schema
of Gradescope's format written from the brief (tests/data/gradescope_results.schema.json)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from grader.records.results import SubmissionResult
from grader.report.gradescope import VISIBILITIES, write_gradescope
from grader.report.gradescope import gradescope_results as _gradescope_results

DATA = Path(__file__).parent / "data"


@pytest.fixture
def results() -> dict:
    return json.loads((DATA / "results_small.json").read_text())


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((DATA / "gradescope_results.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def gradescope_results(data: dict, **kw) -> dict:
    """Gradescope's file for saved results data (altered here as a grade would record it)."""
    return _gradescope_results(SubmissionResult.from_json(data), **kw)


def by_name(data: dict) -> dict[str, dict]:
    return {t["name"]: t for t in data["tests"]}


def checks_only(results: dict) -> dict:
    """The same submission as `segrade check --checks-only` would record it."""
    results["total"] = results["grade"]["total"] = None
    results["grade"]["note"] = "checks only: performance marks are not scored without training"
    for v in results["variants"]:
        v["checks"] = [c for c in v["checks"] if c["id"] not in ("learns", "skip_ablation")]
        v.update(training=None, metrics=None, curves=None, band=None, points=v["points_detail"]["checks_points"])
        v["points_detail"].update(performance_points=None, performance="not scored: no training was run (--checks-only)")
    return results


def make_missing(results: dict, status: str, message: str) -> dict:
    """unet_noskip as it is recorded when nothing builds it, or the worker stopped on it."""
    v = results["variants"][2]
    v.update(status=status, mapping=None, checks=[{"id": "builds", "status": "fail", "message": message,
                                                   "details": {}}],
             training=None, metrics=None, curves=None, points=0.0)
    d = v["points_detail"]
    d["checks"] = {cid: 0.0 for cid in d["checks"]}
    d.update(checks_points=0.0, performance_points=0.0,
             performance=f"no performance marks: training or evaluation failed ({message})")
    results["total"] = results["grade"]["total"] = round(sum(v["points"] for v in results["variants"]), 2)
    results["grade"]["passed_variants"] = 2
    return results


def test_output_is_valid_gradescope_json(results, validator, tmp_path):
    for visibility in VISIBILITIES:
        data = gradescope_results(results, visibility=visibility, stdout_visibility="visible")
        validator.validate(data)
        assert data["visibility"] == visibility and data["stdout_visibility"] == "visible"
    data = gradescope_results(results)
    assert (data["visibility"], data["stdout_visibility"]) == ("after_published", "hidden")
    assert data["execution_time"] == pytest.approx(results["duration_s"])
    assert all(t["output_format"] == "text" for t in data["tests"])
    numbers = [t["number"] for t in data["tests"]]
    names = [t["name"] for t in data["tests"]]
    assert len(set(numbers)) == len(numbers) and len(set(names)) == len(names)


def test_sum_of_test_scores_is_the_total(results):
    data = gradescope_results(results)
    assert data["score"] == results["total"] == 28.7
    assert round(sum(t["score"] for t in data["tests"]), 2) == results["total"]
    unscored = sum(v["points_detail"]["performance_max"] for v in results["variants"]
                   if v["points_detail"]["performance_points"] is None)  # fcn8s_frozen: no band
    assert sum(t["max_score"] for t in data["tests"]) == pytest.approx(
        sum(v["max_points"] for v in results["variants"]) - unscored) == 34


def test_one_test_per_check_with_its_points(results):
    tests = by_name(gradescope_results(results))
    for index, variant in enumerate(results["variants"], start=1):
        vid, detail = variant["variant_id"], variant["points_detail"]
        per_check = detail["checks_max"] / len(detail["checks"])
        for cid, earned in detail["checks"].items():
            test = tests[f"{vid} · {cid}"]
            assert (test["score"], test["max_score"]) == (earned, pytest.approx(per_check))
            assert test["tags"] == [vid, cid] and test["number"].startswith(f"{index}.")
        for check in variant["checks"]:  # not scored (logits, learns, skip_ablation): shown, no marks
            test = tests[f"{vid} · {check['id']}"]
            assert check["message"] in test["output"]
            if check["id"] not in detail["checks"]:
                assert test["score"] == test["max_score"] == 0
    assert tests["unet · skip_ablation"]["status"] == "passed"

    warned = tests["unet · gradients"]
    assert warned["status"] == "passed" and warned["score"] == 3.125
    assert warned["output"].startswith("warning: 2 trainable parameter(s) get no gradient")
    failed = tests["unet_noskip · architecture"]
    assert (failed["status"], failed["score"], failed["max_score"]) == ("failed", 0.0, 0.875)
    assert "it has skip connections" in failed["output"]
    policy = tests["submission · llm_declaration"]
    assert policy["max_score"] == 0 and policy["output"].startswith("warning: no comment declares LLM prompts")


def test_performance_tests(results):
    tests = by_name(gradescope_results(results))
    unet = tests["unet · performance"]
    assert (unet["score"], unet["max_score"]) == (11.5785, 12.5)
    assert "93% of the performance marks" in unet["output"]
    assert "Test mIoU 0.164; reference band 0.177..0.225 (untrained 0.001, 3 runs)" in unet["output"]
    assert unet["status"] == "failed"  # below the band: partial marks

    unscored = tests["fcn8s_frozen · performance"]  # no band: listed, never given points
    assert unscored["score"] == unscored["max_score"] == 0
    assert unscored["output"].startswith("not scored: no reference band")
    assert "Its 2 points are not in the automatic total" in unscored["output"]

    forfeited = tests["unet_noskip · performance"]
    assert (forfeited["score"], forfeited["max_score"], forfeited["status"]) == (0.0, 3.5, "failed")
    assert "the architecture check failed" in forfeited["output"]


def test_flags_reach_the_performance_output(results):
    flag = "test mIoU 0.300 is above the reference band's upper edge 0.225: worth a human look"
    results["variants"][1]["points_detail"]["flags"] = [flag]
    assert "flag: test mIoU 0.300 is above" in by_name(gradescope_results(results))["unet · performance"]["output"]


@pytest.mark.parametrize("status, message", [
    ("missing", "no class for unet_noskip: looked for UNetNoSkip, UNet_NoSkip, or a UNet with a skip flag"),
    ("error", "building UNetNoSkip ← UNetNoSkip(num_classes=13) from unet.py raised RuntimeError: boom"),
    ("timeout", "no progress within the 120 s limit of the build phase"),
])
def test_a_variant_that_never_ran_still_has_its_tests(results, validator, status, message):
    names_before = [t["name"] for t in gradescope_results(results)["tests"] if t["name"].startswith("unet_noskip ·")]
    data = gradescope_results(make_missing(results, status, message))
    validator.validate(data)
    tests = by_name(data)
    scored = results["variants"][2]["points_detail"]["checks"]
    for cid in scored:
        test = tests[f"unet_noskip · {cid}"]
        assert (test["score"], test["max_score"], test["status"]) == (0.0, 0.875, "failed")
        assert message in test["output"]
    assert tests["unet_noskip · builds"]["output"].startswith(message)
    assert tests["unet_noskip · gradients"]["output"].startswith("not run: ")
    assert message in tests["unet_noskip · performance"]["output"]
    assert set(scored) | {"performance"} <= {n.split(" · ")[1] for n in names_before}
    assert f"unet_noskip (U-Net without skip connections): {status}, builds: {message}" in data["output"]
    assert round(sum(t["score"] for t in data["tests"]), 2) == data["score"] == results["total"]


def test_checks_only_leaves_the_sum_to_gradescope(results, validator):
    data = gradescope_results(checks_only(results))
    validator.validate(data)
    assert "score" not in data
    assert "Automatic points: not scored (checks only)" in data["output"]
    performance = [t for t in data["tests"] if t["name"].endswith("· performance")]
    assert len(performance) == len(results["variants"])
    for test in performance:
        assert test["score"] == test["max_score"] == 0
        assert "not scored: no training was run (--checks-only)" in test["output"]
    assert sum(t["score"] for t in data["tests"]) == pytest.approx(
        sum(v["points_detail"]["checks_points"] for v in results["variants"]))


def test_manual_items_are_in_the_summary_not_the_tests(results):
    data = gradescope_results(results)
    assert "Graded by hand (19 marks, not in these points):" in data["output"]
    for item in results["grade"]["manual"]:
        assert f"- {item['title']} ({item['max_points']:g} marks)" in data["output"]
        assert not any(item["id"] in t["tags"] for t in data["tests"])
    assert "2/3 variants pass every required check. Automatic points: 28.7 of 81" in data["output"]
    assert results["grade"]["note"] in data["output"]


def test_invalid_visibility_says_what_is_allowed(results):
    with pytest.raises(ValueError, match="use one of hidden, after_due_date, after_published, visible"):
        gradescope_results(results, visibility="public")
    with pytest.raises(ValueError, match="stdout_visibility 'shown'"):
        gradescope_results(results, stdout_visibility="shown")


def test_write_gradescope(results, validator, tmp_path):
    path = write_gradescope(SubmissionResult.from_json(results), tmp_path / "results" / "results.json", visibility="visible")
    assert path == tmp_path / "results" / "results.json"
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temporary file left
    data = json.loads(path.read_text())
    validator.validate(data)
    assert data == gradescope_results(results, visibility="visible")


def test_the_schema_rejects_what_gradescope_would(validator):
    good = {"score": 1, "execution_time": 2.5, "tests": [{"name": "t", "score": 1, "max_score": 1,
                                                          "status": "passed", "output_format": "md"}]}
    validator.validate(good)
    bad = [{**good, "execution_time": "2 s"}, {**good, "visibility": "public"}, {"output": "no score, no tests"},
           {**good, "tests": [{"name": "t", "score": 1, "max_score": 1, "status": "ok"}]},
           {**good, "tests": [{"name": "t", "score": "1", "max_score": 1}]},
           {**good, "tests": [{"name": "t", "score": 1, "max_score": 1, "output_format": "rst"}]}]
    for data in bad:
        assert not validator.is_valid(data), data
