"""The check step: turn the worker's raw observations into check results.

Every judgement is made here, in the grading process. Each check has a stable id,
a status and a message that says what was seen and what to fix.
"""

from __future__ import annotations

from typing import Any

from grader.results import CheckResult, CheckStatus, VariantResult, VariantStatus
from grader.spec import Assignment, Variant

# Checks whose failure makes the variant fail; later checks may only warn.
REQUIRED_CHECKS = ("builds", "forward_shape")


def check_variant(variant: Variant, observed: dict[str, Any] | None, assignment: Assignment,
                  *, batch_size: int, worker_problem: str | None = None,
                  import_errors: tuple[str, ...] = ()) -> VariantResult:
    """Judge one variant from what the worker observed (None: the worker never got to it)."""
    if observed is None:
        why = worker_problem or "the worker did not report on this variant"
        return _result(variant, VariantStatus.FAILED, None,
                       [CheckResult("builds", CheckStatus.FAIL, f"not checked: {why}")])

    candidates = observed.get("candidates", [])
    if not candidates:
        hint = f" Files that failed to import: {'; '.join(import_errors)}." if import_errors else ""
        message = (f"no class named {variant.class_name} (names are matched ignoring case and "
                   f"underscores, so {variant.class_name.lower()} or {variant.class_name.upper()} "
                   f"would do).{hint}")
        return _result(variant, VariantStatus.MISSING, None, [CheckResult("builds", CheckStatus.FAIL, message)])
    if len(candidates) > 1:
        message = (f"{len(candidates)} classes could be {variant.class_name}: {', '.join(candidates)}. "
                   "Keep one, or rename the others.")
        return _result(variant, VariantStatus.FAILED, None, [CheckResult("builds", CheckStatus.FAIL, message)])

    mapping = observed.get("mapping")
    checks = [_builds(observed)]
    checks.append(_forward_shape(observed, variant, assignment.num_classes, batch_size)
                  if checks[0].status is CheckStatus.PASS
                  else CheckResult("forward_shape", CheckStatus.SKIP, "not run: the model did not build"))
    failed = any(c.status is CheckStatus.FAIL for c in checks if c.id in REQUIRED_CHECKS)
    figures = {"parameters": observed.get("parameters"),
               "build_seconds": observed.get("build", {}).get("seconds"),
               "forward_seconds": observed.get("forward", {}).get("seconds")}
    return _result(variant, VariantStatus.FAILED if failed else VariantStatus.PASSED, mapping, checks, figures)


def _builds(observed: dict[str, Any]) -> CheckResult:
    build = observed.get("build") or {}
    if build.get("ok"):
        return CheckResult("builds", CheckStatus.PASS, f"built {observed.get('mapping')}")
    error = build.get("error", "the worker reported no build result")
    return CheckResult("builds", CheckStatus.FAIL, f"{observed.get('mapping')} raised {error}",
                       {"traceback": build.get("traceback")})


def _forward_shape(observed: dict[str, Any], variant: Variant, num_classes: int, batch_size: int) -> CheckResult:
    size = variant.family.input_size
    expected = [batch_size, num_classes, size, size]
    forward = observed.get("forward") or {}
    details = {"expected": expected, "input_shape": forward.get("input_shape")}
    if not forward.get("ok"):
        return CheckResult("forward_shape", CheckStatus.FAIL,
                           f"forward on a {_shape(forward.get('input_shape'))} input raised "
                           f"{forward.get('error', 'an unknown error')}",
                           details | {"traceback": forward.get("traceback")})
    if "output_shape" not in forward:
        return CheckResult("forward_shape", CheckStatus.FAIL,
                           f"forward returned a {forward.get('output_type')}; it must return one "
                           f"tensor of logits shaped N x num_classes x H x W", details)
    seen = forward["output_shape"]
    details["seen"] = seen
    if seen != expected:
        return CheckResult("forward_shape", CheckStatus.FAIL,
                           f"output shape {_shape(seen)} for a {_shape(forward['input_shape'])} input; "
                           f"expected {_shape(expected)} (N x num_classes x H x W, at the input size)", details)
    if not forward.get("dtype", "").startswith(("float", "bfloat")):
        return CheckResult("forward_shape", CheckStatus.FAIL,
                           f"output dtype is {forward.get('dtype')}; logits must be floating point", details)
    if forward.get("finite") is False:
        return CheckResult("forward_shape", CheckStatus.FAIL,
                           "output contains NaN or infinite values on a random input", details)
    return CheckResult("forward_shape", CheckStatus.PASS, f"output {_shape(seen)} as expected", details)


def _shape(shape: list[int] | None) -> str:
    return "x".join(map(str, shape)) if shape else "?"


def _result(variant: Variant, status: VariantStatus, mapping: str | None, checks: list[CheckResult],
            figures: dict[str, Any] | None = None) -> VariantResult:
    return VariantResult(variant.id, variant.title, status, mapping, tuple(checks), figures or {})
