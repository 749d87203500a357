"""Options of `grade` and `report` for the LMS import files (grader.report.lms)."""

from __future__ import annotations

from pathlib import Path


def add_lms_arguments(parser) -> None:
    parser.add_argument("--roster", metavar="CSV", help="roster mapping submission ids to students (columns: "
                        "submission, name, canvas_id, sis_user_id, sis_login_id, section, email, id_number): writes "
                        "canvas_gradebook.csv and moodle_grades.csv")
    parser.add_argument("--lms-assignment", metavar="NAME", help="the assignment's column in the LMS files, for Canvas "
                        "'Assignment Name (assignment id)' (default: the spec's title)")


def lms_options(args) -> tuple[Path, str | None] | None:
    if not getattr(args, "roster", None):
        return None
    from grader.report.lms import read_roster

    read_roster(args.roster)  # a bad roster stops the command before anything is graded
    return Path(args.roster), args.lms_assignment


def print_lms(lms, console) -> None:
    from rich.markup import escape

    if lms is None:
        return
    console.print("LMS files: " + ", ".join(str(p) for p in lms.written))
    for problem in lms.problems:
        console.print(f"  [yellow]{escape(problem)}[/]")
