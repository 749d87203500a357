"""Grading one submission, grading side of the trust boundary: the pipeline (load -> check ->
train/evaluate -> score), the sandbox that runs the worker, and each step's rules."""
