"""One view of a graded submission, computed once from its typed record
(grader.records.results.SubmissionResult) for every place that shows it: the terminal, the
HTML and PDF report, the Gradescope file, the batch's outcome line and the class summary.

Each medium keeps its own layout (rich markup, HTML, plain text); the facts and the words
for them are here: what to look at first in a variant, the first problem of a submission,
the one-line verdict, the packages the worker stood in, and the plain-text summary.
"""

from __future__ import annotations

from typing import Any

from grader.records.results import (STUDENT_PROCESS, CheckStatus, Grade, SubmissionResult, VariantResult, is_blocking,
                                    variants_passing)


def problem_text(variant: VariantResult, headline: bool = False) -> str:
    """What to look at first in a variant: its first failing check's message (only the first
    paragraph with `headline`), else its first warning, else ''."""
    failing = variant.first_problem
    if failing is not None:
        text = failing.headline if headline else failing.message
        # A course option the contract class does not take (the spec's head='aspp' on a class
        # with a `decoder` argument) builds its default model: the likely cause of the failure.
        # A class found by alias or name pattern is the variant's own: its options are its own.
        left_out = [n for n in variant.notes if n.endswith("was left out")] if variant.adapter == "contract" else []
        return text + (f" ({'; '.join(left_out)}, so this is the class's default model)" if left_out else "")
    warning = variant.first_check(CheckStatus.WARN)
    return f"warning ({warning.id}): {warning.message}" if warning else ""


def first_problem_line(result: SubmissionResult) -> str:
    """The submission's first problem in one line ('unet: ...'), or '' when no check failed."""
    found = result.first_problem
    return f"{found[0].variant_id}: {problem_text(found[0], headline=True)}" if found else ""


def verdict(grade: Grade, seconds: float | None = None) -> str:
    """The one-sentence verdict with the points: '6/10 variants pass every required check.
    Automatic points: 41 of 81 (100 marks in all).'"""
    points = "not scored (checks only)" if grade.total is None else f"{grade.total:g} of {grade.automatic_max:g}"
    took = "" if seconds is None else f" ({seconds:.0f} s)"
    return (f"{variants_passing(grade.passed_variants, grade.total_variants)}{took}. "
            f"Automatic points: {points} ({grade.max_total:g} marks in all).")


def package_notes(environment: dict[str, Any]) -> list[str]:
    """The packages the worker did not have and replaced: stood-in packages (they fail where the
    code really uses them) and no-op stubs for logging ones. Shown in the terminal and report."""
    lines = []
    stood = environment.get("stood_in") or {}
    if stood:
        listed = ", ".join(f"{name} ({', '.join(files)})" if files else name for name, files in sorted(stood.items()))
        lines.append(f"not installed, stood in (the code imports; it fails only where it really uses them): {listed}")
    stubbed = environment.get("stubbed") or []
    if stubbed:
        lines.append(f"not installed, replaced by no-op stubs (logging, progress, notebooks): {', '.join(stubbed)}")
    return lines


def summary_lines(result: SubmissionResult) -> list[str]:
    """The one-submission summary in plain text (Gradescope's `output`): who, the verdict,
    what stopped the worker, the imports that failed, each variant that did not pass with
    its first failing check, and the marks left to a human grader."""
    grade = result.grade
    lines = [f"segrade {result.segrade_version or '?'} · {result.assignment_id} · submission {result.id}",
             verdict(grade)]
    if grade.note:
        lines.append(grade.note)
    if result.environment.get("worker_problem"):
        lines.append(f"Worker problem: {result.environment['worker_problem']}")
    student = in_student_process(result)
    if student:
        lines.append(f"Measured in the student's process (could not be captured): {', '.join(student)}")
    lines += [f"Import failed: {m['path']}: {m['error']}" + ("" if is_blocking(m) else
                                                             " (informational: no model depends on it)")
              for m in result.modules if not m.get("ok")]
    for variant in result.variants:
        if variant.status != "passed":
            failure = variant.first_problem
            lines.append(f"{variant.variant_id} ({variant.title}): {variant.status.value}"
                         + (f", {failure.id}: {failure.message}" if failure else ""))
    if grade.manual:
        lines.append(f"Graded by hand ({sum(m.max_points for m in grade.manual):g} marks, not in these points):")
        lines += [f"- {m.title} ({m.max_points:g} marks)" for m in grade.manual]
    return lines


# --------------------------------------------------------------------------- what was graded (issue 26)



def program_line(program: dict[str, Any] | None) -> str | None:
    """One sentence for a variant's `program` record (results.json); None when there is none
    (not built, or graded before capture existed)."""
    if not program:
        return None
    if program.get("measured_in") == STUDENT_PROCESS:
        return f"Measured in the student's process: {program.get('reason') or 'not captured'}"
    programs = program.get("programs") or {}
    hashes = {mode: (info or {}).get("sha256", "") for mode, info in programs.items()}
    if hashes and len(set(hashes.values())) == 1:
        what = f"sha256 {next(iter(hashes.values()))}"
    else:
        what = ", ".join(f"{mode} sha256 {digest}" for mode, digest in sorted(hashes.items()))
    line = f"Graded program (captured with torch.export, measured by the verifier): {what}"
    training = program.get("training_programs")
    if training:
        line += "; trained from " + ", ".join(f"{m} sha256 {(i or {}).get('sha256', '')}"
                                              for m, i in sorted(training.items()))
    if program.get("training_measured_in") == STUDENT_PROCESS:
        line += f"; trained in the student's process: {program.get('training_reason') or 'not captured'}"
    return line


def in_student_process(result: SubmissionResult) -> list[str]:
    """The variants of one grade measured (or trained) in the student's process."""
    return [v.variant_id for v in result.variants
            if STUDENT_PROCESS in ((v.program or {}).get("measured_in"), (v.program or {}).get("training_measured_in"))]
