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


# A worker that could not finish a variant says why; these map onto variant statuses.
WORKER_STATUS = {"timeout": VariantStatus.TIMEOUT, "oom": VariantStatus.OOM, "crashed": VariantStatus.CRASHED,
                 "error": VariantStatus.ERROR}


def check_variant(variant: Variant, observed: dict[str, Any], assignment: Assignment, *, batch_size: int,
                  import_errors: tuple[str, ...] = ()) -> VariantResult:
    """Judge one variant from what the worker observed."""
    if "worker_status" in observed:
        status = WORKER_STATUS.get(observed["worker_status"], VariantStatus.ERROR)
        return _result(variant, status, observed.get("mapping"),
                       [CheckResult("builds", CheckStatus.FAIL, observed.get("message") or status.value,
                                    {"phase": observed.get("phase")})])
    if "unresolved" in observed:
        status = VariantStatus.AMBIGUOUS if observed["unresolved"] == "ambiguous" else VariantStatus.MISSING
        hint = f" Files that failed to import: {'; '.join(import_errors)}." if import_errors else ""
        return _result(variant, status, None, [CheckResult(
            "builds", CheckStatus.FAIL, observed.get("message", "not found") + hint,
            {"looked_for": observed.get("looked_for", []), "candidates": observed.get("candidates", [])})])

    mapping = observed.get("mapping")
    checks = [_builds(observed)]
    checks.append(_forward_shape(observed, variant, assignment.num_classes, batch_size)
                  if checks[0].status is CheckStatus.PASS
                  else CheckResult("forward_shape", CheckStatus.SKIP, "not run: the model did not build"))
    failed = any(c.status is CheckStatus.FAIL for c in checks if c.id in REQUIRED_CHECKS)
    figures = {"parameters": observed.get("parameters"),
               "build_seconds": (observed.get("build") or {}).get("seconds"),
               "forward_seconds": (observed.get("forward") or {}).get("seconds")}
    return _result(variant, _status(observed) if failed else VariantStatus.PASSED, mapping, checks, figures,
                   adapter=observed.get("adapter"), notes=tuple(observed.get("notes", ())))


def _status(observed: dict[str, Any]) -> VariantStatus:
    """A raised exception is an error (or oom); a wrong result is a failure."""
    for step in ("build", "forward"):
        info = observed.get(step) or {}
        if info and not info.get("ok"):
            return VariantStatus.OOM if info.get("oom") else VariantStatus.ERROR
    return VariantStatus.FAILED


def _builds(observed: dict[str, Any]) -> CheckResult:
    build = observed.get("build") or {}
    if build.get("ok"):
        return CheckResult("builds", CheckStatus.PASS, f"built as {observed.get('mapping')}")
    error = build.get("error", "the worker reported no build result")
    message = f"building {observed.get('mapping')} raised {error}"
    if _is_network_failure(error):
        message += (". The constructor tried to download weights, but grading runs offline: download only "
                    "when `pretrained` is true (segrade passes pretrained=False unless the instructor "
                    "supplies ImageNet weights with --vgg16-weights or SEGRADE_VGG16_WEIGHTS)")
    return CheckResult("builds", CheckStatus.FAIL, message, {"traceback": build.get("traceback")})


def _is_network_failure(error: str) -> bool:
    # Building a model touches the network only to fetch weights (torch.hub, torchvision).
    network = ("URLError", "urlopen error", "Name or service not known", "Temporary failure in name resolution",
               "Network is unreachable", "ConnectionError", "ConnectionRefusedError")
    return any(word in error for word in network)


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
        return CheckResult("forward_shape", CheckStatus.FAIL, forward.get("output_error") or (
                           f"forward returned a {forward.get('output_type')}; it must return one "
                           "tensor of logits shaped N x num_classes x H x W"), details)
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
            figures: dict[str, Any] | None = None, adapter: str | None = None, notes: tuple[str, ...] = ()) -> VariantResult:
    return VariantResult(variant.id, variant.title, status, mapping, tuple(checks), figures or {}, adapter, notes)
