"""Errors the grading side raises about a submission as a whole (neutral: imports nothing
from segrade, so grader.submission.load and grader.submission.formats both use it without importing each other)."""


class SubmissionError(Exception):
    """The submission cannot be read at all; the message says why and what to do."""


class BatchError(Exception):
    """The batch cannot start (no submissions, output folder in use, Slurm refused the
    array...); the message says what to do."""
