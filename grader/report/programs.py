"""What was graded, in words: the captured program a variant's marks rest on (its sha256), or
that it was measured in the student's own process, and why (issue 26, docs/security.md)."""

from __future__ import annotations

from typing import Any

STUDENT_PROCESS = "student process"


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


def in_student_process(results: dict[str, Any]) -> list[str]:
    """The variants of one results.json measured in the student's process."""
    return [v["variant_id"] for v in results.get("variants", [])
            if (v.get("program") or {}).get("measured_in") == STUDENT_PROCESS
            or (v.get("program") or {}).get("training_measured_in") == STUDENT_PROCESS]
