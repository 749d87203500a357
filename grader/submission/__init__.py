"""Loading a submission: its files on disk made importable (formats), fingerprinted and
prepared (load), which files matter (candidates) and the student's written answers."""
