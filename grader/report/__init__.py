"""The report step: everything written from a grade.

- files:     results.json and samples.npz (write after a grade, read back for a report)
- terminal:  the rich table printed by `segrade check`
"""

from grader.report.files import read_results, read_samples, write_results
from grader.report.terminal import make_console, print_summary

__all__ = ["make_console", "print_summary", "read_results", "read_samples", "write_results"]
