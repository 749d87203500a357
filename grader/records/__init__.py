"""The records a grade leaves: the typed results (results) and the one place that
reads and writes them on disk (files)."""
