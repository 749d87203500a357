"""Gradescope autograder output (results.json in Gradescope's format) for one graded submission.

Built from segrade's own results.json data (docs/results.md), never from student output, so
that Gradescope shows the same points and messages as `segrade check`. Each check of each
variant becomes a test (the scored ones carry their marks, the others carry 0 so the student
still reads the message), plus one performance test per variant. Manual rubric items are not
tests: Gradescope's manual grading takes them, and the summary lists them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grader.records.files import ErrorRecord, write_atomic
from grader.records.results import NOT_RUN_BECAUSE, CheckResult, SubmissionResult, VariantResult
from grader.records.view import program_line, summary_lines
from grader.grading.score import split_label

VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")


def gradescope_results(result: SubmissionResult, visibility: str = "after_published",
                       stdout_visibility: str = "hidden") -> dict[str, Any]:
    """Gradescope's results.json data for one submission's segrade results.

    The top-level `score` is segrade's automatic total; with checks only (total None) it is
    left out, so that Gradescope sums the tests."""
    _check_visibility("visibility", visibility)
    _check_visibility("stdout_visibility", stdout_visibility)
    tests = _submission_tests(result.checks)
    label = split_label(result.environment.get("evaluation_split") or "test")
    for index, variant in enumerate(result.variants, start=1):
        tests += _variant_tests(variant, index, label)
    data: dict[str, Any] = {}
    if result.total is not None:
        data["score"] = result.total
    data.update(execution_time=round(float(result.duration_s), 2), output="\n".join(summary_lines(result)),
                visibility=visibility, stdout_visibility=stdout_visibility, tests=tests)
    return data


def gradescope_error(error: ErrorRecord, visibility: str = "after_published") -> dict[str, Any]:
    """Gradescope's results for a submission that could not be graded at all: score 0 and
    the message, so the student sees why."""
    _check_visibility("visibility", visibility)
    return {"score": 0, "execution_time": 0, "output": f"Not graded: {error.error}", "visibility": visibility,
            "stdout_visibility": "hidden", "tests": []}


def _check_visibility(name: str, value: str) -> None:
    if value not in VISIBILITIES:
        raise ValueError(f"{name} {value!r} is not one Gradescope knows: use one of {', '.join(VISIBILITIES)}")


def write_gradescope(result: SubmissionResult, path: Path, **kw: str) -> Path:
    """Write gradescope_results(result, **kw) to `path` (Gradescope reads
    /autograder/results/results.json) atomically: a killed write leaves no half file."""
    return write_atomic(path, json.dumps(gradescope_results(result, **kw), allow_nan=False, indent=2) + "\n")


def _test(name: str, number: str, score: float, max_score: float, passed: bool, output: str,
          tags: list[str]) -> dict[str, Any]:
    return {"name": name, "number": number, "score": score, "max_score": max_score,
            "status": "passed" if passed else "failed", "output": output, "output_format": "text", "tags": tags}


def _submission_tests(checks: tuple[CheckResult, ...]) -> list[dict[str, Any]]:
    """Checks about the submission as a whole (course policy): informational, no marks."""
    return [_test(f"submission · {c.id}", f"0.{j}", 0.0, 0.0, c.status.passes, _check_output(c), ["submission", c.id])
            for j, c in enumerate(checks, start=1)]


def _variant_tests(variant: VariantResult, index: int, label: str) -> list[dict[str, Any]]:
    """The scored checks first (in the rubric's order, run or not), then the other checks the
    variant has, then its performance."""
    vid = variant.variant_id
    detail = variant.points_detail
    earned: dict[str, float] = detail.get("checks") or {}
    # Each check's own most (weighted); results written before check weights split evenly.
    most = detail.get("checks_max_each") or {cid: round(detail["checks_max"] / len(earned), 4) for cid in earned}
    by_id = {c.id: c for c in variant.checks}
    first_failure = variant.first_problem
    tests = []
    for cid in [*earned, *(c for c in by_id if c not in earned)]:
        number = f"{index}.{len(tests) + 1}"
        check = by_id.get(cid)
        if check is None:
            why = NOT_RUN_BECAUSE.get(variant.status, f"the variant's status is {variant.status.value}")
            output = f"not run: {why}" + (f" ({first_failure.id}: {first_failure.message})" if first_failure else "")
            passed = False
        else:
            output, passed = _check_output(check), check.status.passes
        if cid in earned:
            output += f"\n{earned[cid]:g} of {most[cid]:g} points."
        tests.append(_test(f"{vid} · {cid}", number, earned.get(cid, 0.0), most[cid] if cid in earned else 0.0,
                           passed, output, [vid, cid]))
    tests.append(_performance_test(variant, f"{index}.{len(tests) + 1}", label))
    return tests


def _check_output(check: CheckResult) -> str:
    return ("warning: " if check.status == "warn" else "") + check.message


def _performance_test(variant: VariantResult, number: str, label: str) -> dict[str, Any]:
    vid = variant.variant_id
    detail = variant.points_detail
    points, most = detail.get("performance_points"), detail.get("performance_max", 0.0)
    lines = [detail.get("performance") or "not scored: the rubric gives this variant no marks"]
    miou, band = variant.miou, variant.band
    if miou is not None:
        untrained = "" if band is None or band.untrained is None else f"untrained {band.untrained:.3f}, "
        lines.append(f"{label[0].upper()}{label[1:]} {miou:.3f}" + (
            f"; reference band {band.range_text()} ({untrained}{band.runs} runs)." if band and band.measured
            else f"; the reference band does not apply: {band.refusal}" if band and band.refusal
            else "; no reference band was measured."))
    lines += [f"flag: {flag}" for flag in detail.get("flags", [])]
    program = program_line(variant.program)
    if program:
        lines.append(program)
    if points is None:
        if most:
            lines.append(f"Its {most:g} points are not in the automatic total.")
        return _test(f"{vid} · performance", number, 0.0, 0.0, variant.status == "passed", "\n".join(lines),
                     [vid, "performance"])
    lines.append(f"{points:g} of {most:g} points.")
    return _test(f"{vid} · performance", number, points, most, points >= most, "\n".join(lines),
                 [vid, "performance"])
