"""The logits in whatever a student's forward returns: grader.measure.logits, which the verifier
uses too (re-exported here for the adapters)."""

from __future__ import annotations

from grader.measure.logits import to_logits  # noqa: F401
