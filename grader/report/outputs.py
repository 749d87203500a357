"""Which files a report writes, from saved results (no regrading):

- per submission folder (beside results.json): report.html, report.pdf, results_gradescope.json;
- per results folder of several submissions: summary.html, gradebook.csv, index.html.

`segrade check` and each job of `segrade grade` call `write_submission_report` with the record
they have just graded (in memory: nothing is read back); `segrade report DIR` calls it on the
records read from the folder, and `segrade grade` and `segrade report DIR` call
`write_class_outputs`, so a template change never needs a regrade (points, prompts and titles
are as saved at grading time).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.records.files import (
    ErrorRecord, ResultsError, error_folders, read_results, read_samples, results_folders, unreadable,
    write_atomic,
)
from grader.records.results import SubmissionResult
from grader.report.gradebook import write_gradebook
from grader.report.gradescope import VISIBILITIES, gradescope_error, write_gradescope
from grader.report.html import environment, html_to_pdf, render_html
from grader.report.summary import summary_context
from grader.spec import Assignment

@dataclass(frozen=True)
class ReportOptions:
    """How the reports of each submission are written, by every command and backend alike:
    with a PDF beside the HTML or not, and the tests' visibility in results_gradescope.json."""

    pdf: bool = True
    visibility: str = "after_published"

    def __post_init__(self) -> None:
        if self.visibility not in VISIBILITIES:
            raise ValueError(f"visibility {self.visibility!r} is not one Gradescope knows: use one of "
                             f"{', '.join(VISIBILITIES)}")


# Per submission folder, the files linked from the summary and the index, with their link text.
LINKED_FILES = {"report.html": "report", "report.pdf": "pdf", "results.json": "results",
                "results_gradescope.json": "gradescope"}


@dataclass
class ClassOutputs:
    summary: Path
    gradebook: Path
    index: Path
    reports: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # results folders that could not be reported on


def write_submission_report(folder: str | Path, assignment: Assignment, options: ReportOptions = ReportOptions(), *,
                            result: SubmissionResult | None = None, workers: int = 1,
                            changes: dict[str, Any] | None = None) -> list[Path]:
    """report.html (+ report.pdf) and results_gradescope.json in `folder`, from `result` (the
    record just graded or rescored, in memory, with its prediction grids) or else from the
    folder's results.json and samples.npz; `changes`: what changed since the grade it
    replaced (else the folder's changes.json); `workers`: processes drawing the charts, for a
    command that has the machine to itself."""
    from grader.batch.changes import read_changes

    folder = Path(folder)
    if result is None:
        result = read_results(folder)
    if result.assignment_id != assignment.id:
        raise ResultsError(f"{folder}/results.json was graded for assignment {result.assignment_id!r}, not "
                           f"{assignment.id!r}: pass that assignment's spec with --spec")
    samples = result.samples if result.samples is not None else read_samples(folder)
    changes = changes if changes is not None else read_changes(folder)
    html = render_html(result, samples, assignment, changes=changes, workers=workers)
    written = [write_atomic(folder / "report.html", html)]
    if options.pdf:
        written.append(html_to_pdf(html, folder / "report.pdf"))
    written.append(write_gradescope(result, folder / "results_gradescope.json", visibility=options.visibility))
    return written


def write_error_report(folder: str | Path, error: ErrorRecord, assignment: Assignment,
                       options: ReportOptions = ReportOptions()) -> list[Path]:
    """report.html (+ report.pdf) and results_gradescope.json for a submission that could not
    be graded (`error`: its error.json record): the message, in its own report."""
    folder = Path(folder)
    html = environment().get_template("error.html.j2").render({**error.to_json(), "assignment": assignment})
    written = [write_atomic(folder / "report.html", html)]
    if options.pdf:
        written.append(html_to_pdf(html, folder / "report.pdf"))
    gradescope = json.dumps(gradescope_error(error, options.visibility), indent=2) + "\n"
    written.append(write_atomic(folder / "results_gradescope.json", gradescope))
    return written


def write_class_outputs(root: str | Path, assignment: Assignment, options: ReportOptions = ReportOptions(), *,
                        reports: bool = True, only: set[str] | None = None, workers: int = 1) -> ClassOutputs:
    """Reports for every submission folder under `root`, then the class summary, the gradebook
    and an index. Submissions that could not be graded at all (a folder with error.json, as
    `segrade grade` writes) get a row too, linked to their folder's files. `only`: the folder
    names to include (a batch's current submissions). A folder whose results cannot be read
    becomes an error row, never a stop. `workers`: processes drawing each report's charts."""
    root = Path(root)
    records: list[SubmissionResult | ErrorRecord] = []
    links: dict[str, dict[str, str]] = {}
    outputs = ClassOutputs(root / "summary.html", root / "gradebook.csv", root / "index.html")
    for folder in results_folders(root):
        if only is not None and folder.name not in only:
            continue
        try:
            result = read_results(folder)
            if reports:
                outputs.reports += write_submission_report(folder, assignment, options, result=result,
                                                           workers=workers)
        except (ResultsError, OSError, ValueError, KeyError) as exc:
            outputs.problems.append(f"{folder.name}: {exc}")
            records.append(unreadable(folder, f"cannot report: {exc}"))
            continue
        records.append(result)
        links[str(result.id)] = _links(folder)
    for sid, why in error_folders(root, only).items():
        records.append(unreadable(root / sid, why))
        links[sid] = _links(root / sid)
    records.sort(key=lambda r: str(r.id))
    context = summary_context(records, assignment, links)
    context["class_files"] = class_files(root)
    env = environment()
    write_atomic(outputs.summary, env.get_template("summary.html.j2").render(**context))
    write_gradebook(records, assignment, outputs.gradebook)
    write_atomic(outputs.index, env.get_template("index.html.j2").render(**context))
    return outputs


# Class-level files other commands write beside the summary, linked when present.
CLASS_FILES = {"similarity.html": "code similarity: ranked pairs, side-by-side matches, groups",
               "similarity.csv": "code similarity, one row per pair",
               "changes.csv": "what changed since the previous grading, per submission and variant",
               "canvas_gradebook.csv": "Canvas gradebook import", "moodle_grades.csv": "Moodle grade import"}


def class_files(root: Path) -> list[dict[str, str]]:
    return [{"href": name, "text": text} for name, text in CLASS_FILES.items() if (root / name).is_file()]


def _links(folder: Path) -> dict[str, str]:
    """Link text -> path (relative to the results root) of the folder's files that exist."""
    return {text: f"{folder.name}/{name}" for name, text in LINKED_FILES.items() if (folder / name).is_file()}
