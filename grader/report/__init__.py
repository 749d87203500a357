"""The report step: everything written from a grade.

- files:       results.json and samples.npz (written after a grade, read back for a report)
- terminal:    the rich table printed by `segrade check`
- html:        report.html and report.pdf of one submission (templates/report.html.j2)
- figures:     the charts and prediction grids embedded in the reports
- gradescope:  results_gradescope.json in Gradescope's autograder format
- gradebook:   gradebook.csv, one row per submission
- summary:     the class summary and the index page
- outputs:     which of these files a command writes, and where
"""

from grader.report.files import ResultsError, read_results, read_samples, write_results
from grader.report.terminal import make_console, print_summary

__all__ = ["ResultsError", "make_console", "print_summary", "read_results", "read_samples", "write_results"]
