"""Which files a report writes, from saved results (no regrading):

- per submission folder (beside results.json): report.html, report.pdf, results_gradescope.json;
- per results folder of several submissions: summary.html, gradebook.csv, index.html.

`segrade check` and each job of `segrade grade` call `write_submission_report`; `segrade grade`
and `segrade report DIR` call `write_class_outputs`, so a template change never needs a
regrade (points, prompts and titles are as saved at grading time).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.records.files import ErrorRecord, ResultsError, error_folders, read_results, read_samples, results_folders, write_atomic
from grader.report.gradebook import write_gradebook
from grader.report.gradescope import gradescope_error, write_gradescope
from grader.report.html import environment, html_to_pdf, render_html
from grader.report.summary import summary_context
from grader.spec import Assignment

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


def write_submission_report(folder: str | Path, assignment: Assignment, *, pdf: bool = True,
                            visibility: str = "after_published", results: dict[str, Any] | None = None,
                            workers: int = 1) -> list[Path]:
    """report.html (+ report.pdf) and results_gradescope.json beside the folder's results.json
    (`results`: its data, when the caller has read it already; `workers`: processes drawing
    the charts, for a command that has the machine to itself)."""
    folder = Path(folder)
    results = read_results(folder) if results is None else results
    if results["assignment_id"] != assignment.id:
        raise ResultsError(f"{folder}/results.json was graded for assignment {results['assignment_id']!r}, not "
                           f"{assignment.id!r}: pass that assignment's spec with --spec")
    from grader.batch.changes import read_changes

    html = render_html(results, read_samples(folder), assignment, changes=read_changes(folder), workers=workers)
    written = [write_atomic(folder / "report.html", html)]
    if pdf:
        written.append(html_to_pdf(html, folder / "report.pdf"))
    written.append(write_gradescope(results, folder / "results_gradescope.json", visibility=visibility))
    return written


def write_error_report(folder: str | Path, error: ErrorRecord, assignment: Assignment, *, pdf: bool = True,
                       visibility: str = "after_published") -> list[Path]:
    """report.html (+ report.pdf) and results_gradescope.json for a submission that could not
    be graded (`error`: its error.json record): the message, in its own report."""
    folder = Path(folder)
    html = environment().get_template("error.html.j2").render({**error.to_json(), "assignment": assignment})
    written = [write_atomic(folder / "report.html", html)]
    if pdf:
        written.append(html_to_pdf(html, folder / "report.pdf"))
    gradescope = json.dumps(gradescope_error(error, visibility), indent=2) + "\n"
    written.append(write_atomic(folder / "results_gradescope.json", gradescope))
    return written


def write_class_outputs(root: str | Path, assignment: Assignment, *, pdf: bool = True,
                        visibility: str = "after_published", reports: bool = True,
                        only: set[str] | None = None, workers: int = 1) -> ClassOutputs:
    """Reports for every submission folder under `root`, then the class summary, the gradebook
    and an index. Submissions that could not be graded at all (a folder with error.json, as
    `segrade grade` writes) get a row too, linked to their folder's files. `only`: the folder
    names to include (a batch's current submissions). A folder whose results cannot be read
    becomes an error row, never a stop. `workers`: processes drawing each report's charts."""
    root = Path(root)
    results_list: list[dict[str, Any]] = []
    links: dict[str, dict[str, str]] = {}
    outputs = ClassOutputs(root / "summary.html", root / "gradebook.csv", root / "index.html")
    for folder in results_folders(root):
        if only is not None and folder.name not in only:
            continue
        try:
            results = read_results(folder)
            if reports:
                outputs.reports += write_submission_report(folder, assignment, pdf=pdf, visibility=visibility,
                                                           results=results, workers=workers)
        except (ResultsError, OSError, ValueError, KeyError) as exc:
            outputs.problems.append(f"{folder.name}: {exc}")
            results_list.append({"submission": {"id": folder.name}, "error": f"cannot report: {exc}"})
            continue
        results_list.append(results)
        sid = str(results["submission"]["id"])
        links[sid] = _links(folder)
    for sid, why in error_folders(root, only).items():
        results_list.append({"submission": {"id": sid}, "error": why})
        links[sid] = _links(root / sid)
    results_list.sort(key=lambda r: str(r["submission"]["id"]))
    context = summary_context(results_list, assignment, links)
    context["class_files"] = class_files(root)
    env = environment()
    write_atomic(outputs.summary, env.get_template("summary.html.j2").render(**context))
    write_gradebook(results_list, assignment, outputs.gradebook)
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
