"""The verifier process (python -I -m grader.verifier): measures captured programs, never student code."""
