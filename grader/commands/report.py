"""`segrade report RESULTS_DIR`: re-render reports from saved results, without regrading."""

from __future__ import annotations

import argparse

from grader.commands.exports import add_lms_arguments
from grader.report.gradescope import VISIBILITIES
from grader.shared.processes import cpu_cores


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that writes reports."""
    parser.add_argument("--no-pdf", action="store_true", help="write report.html only (PDF takes ~2 s per submission)")
    parser.add_argument("--visibility", choices=VISIBILITIES, default="after_published",
                        help="visibility of the tests in results_gradescope.json (default: after_published)")


def report_options(args: argparse.Namespace):
    """The command line's report options (add_report_arguments) as the one object every writer takes."""
    from grader.report.outputs import ReportOptions

    return ReportOptions(pdf=not args.no_pdf, visibility=args.visibility)


def add_parser(commands) -> None:
    report = commands.add_parser(
        "report", help="re-render reports (HTML, PDF, Gradescope, class summary, gradebook) from saved results",
        description="RESULTS_DIR is one submission's folder (holding results.json, as written by "
                    "`segrade check --out`) or a folder of such folders: each gets report.html, report.pdf and "
                    "results_gradescope.json; a folder of folders also gets summary.html, gradebook.csv and index.html.")
    report.add_argument("results_dir", metavar="RESULTS_DIR")
    report.add_argument("--spec", metavar="TOML", help="the assignment spec the results were graded with "
                        "(default: segrade's default assignment)")
    add_report_arguments(report)
    add_lms_arguments(report)
    report.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from grader.report import ResultsError, make_console
    from grader.commands.exports import lms_options, print_lms
    from grader.records.files import results_folders
    from grader.report.lms import RosterError, write_lms_files
    from grader.report.outputs import write_class_outputs, write_submission_report
    from grader.commands import load_spec_of
    from grader.spec import SpecError

    console = make_console()
    root = Path(args.results_dir)
    try:
        assignment = load_spec_of(args)
        if (root / "results.json").is_file():
            for path in write_submission_report(root, assignment, report_options(args), workers=cpu_cores()):
                console.print(f"wrote {path}")
            return 0
        if not results_folders(root):
            raise ResultsError(f"{root} holds no results.json, nor folders holding one: grade first "
                               "(segrade check SUBMISSION --out DIR)")
        lms = None
        if lms_options(args) is not None:
            lms = write_lms_files(root, assignment, args.roster, column=args.lms_assignment)
        with console.status("rendering reports..."):
            outputs = write_class_outputs(root, assignment, report_options(args), workers=cpu_cores())
    except (SpecError, ResultsError, FileNotFoundError, RosterError) as exc:
        console.print(f"[red]segrade:[/] {exc}")
        return 2
    for problem in outputs.problems:
        console.print(f"[red]cannot report on[/] {problem}")
    console.print(f"wrote {len(outputs.reports)} report files, {outputs.summary}, {outputs.gradebook}, {outputs.index}")
    print_lms(lms, console)
    return 1 if outputs.problems else 0
