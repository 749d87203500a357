"""Measurements on a model, taken wherever the model runs: in the verifier on a captured
program (grader.verifier), or in the worker beside student code when the model could not be
captured (grader.worker, the fallback). Imports only grader.shared and torch: never the
worker, the submission or its stand-ins."""
