"""The report step: everything written from a grade.

- terminal:    the rich table printed by `segrade check`
- html:        report.html and report.pdf of one submission (templates/report.html.j2)
- figures:     the charts and prediction grids embedded in the reports
- gradescope:  results_gradescope.json in Gradescope's autograder format
- gradebook:   gradebook.csv, one row per submission
- summary:     the class summary and the index page
- outputs:     which of these files a command writes, and where

Each renders a typed record (grader.records: results.json and error.json are read and written
there only) through the one view of it (grader.records.view).
"""

from grader.records.files import ResultsError, read_results, read_samples, write_results
from grader.report.terminal import make_console, print_summary

__all__ = ["ResultsError", "make_console", "print_summary", "read_results", "read_samples", "write_results"]
