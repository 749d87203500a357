"""The worker side of the trust boundary: code that runs in the worker process, beside
student code (started by grader.grading.sandbox as `python -I -u -B -m grader.worker`).

Nothing on the grading side imports this package; see docs/security.md."""
