"""What a local batch job imports, imported once by the server its jobs are forked from
(grader.batch.backends.local, multiprocessing's `forkserver`), so that each job starts with
torch, segrade's grading side and its report renderers already loaded instead of importing
them again (~4 CPU-s per job on 2 cores).

The server runs only this: no submission, no student code (that runs in the sandboxed
worker, which each job starts afresh), and no torch computation, so it starts no thread
that a fork could leave half-held. An import that fails here (weasyprint without its
libraries) is left for the job, which reports it where it is used."""

from __future__ import annotations

import contextlib

for _name in ("torch", "grader.batch.job", "grader.grading.pipeline", "grader.records.files",
              "grader.report.outputs", "grader.report.figures", "grader.submission.formats",
              "grader.similarity.run", "weasyprint"):
    with contextlib.suppress(Exception):
        __import__(_name)
