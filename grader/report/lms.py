"""Gradebook import files for learning-management systems, from a roster.

The roster (`--roster roster.csv`) maps submission ids to students. Its header names the
columns (case and spaces do not matter); `submission` is required, the rest as the LMS needs:

    submission   the submission's id (its entry name in the graded folder)
    name         the student's name as the LMS shows it ("Martin, Alice")
    canvas_id    Canvas's user ID (the `ID` column of a Canvas gradebook export)
    sis_user_id, sis_login_id, section          Canvas's other identity columns
    email, id_number                            Moodle's identifiers (either one)

Written beside gradebook.csv:

- `canvas_gradebook.csv`: Canvas's gradebook CSV: `Student`, `ID`, `SIS User ID`,
  `SIS Login ID`, `Section`, then one column for the assignment named
  `Assignment Name (assignment id)` (give it with --lms-assignment; Canvas matches the column to
  the existing assignment by that id), holding segrade's automatic points.
- `moodle_grades.csv`: Moodle's grade import CSV: the identifier column (`email`, or `idnumber`
  when the roster has no emails) and one column per grade item (the assignment), the points.

The grade is segrade's automatic total; manual items (discussions) are not in it, so the
human grader adds them in the LMS. A roster student without a graded submission, with a
submission that could not be graded or one graded with --checks-only gets no grade, never a 0:
an empty cell in the Canvas file, no row in the Moodle file; `problems` says which, and which
graded submissions are not on the roster.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from grader.records.files import ResultsError, error_folders, read_results, results_folders, write_atomic
from grader.spec import Assignment

CANVAS_FILE = "canvas_gradebook.csv"
MOODLE_FILE = "moodle_grades.csv"
CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
ROSTER_FIELDS = ("submission", "name", "canvas_id", "sis_user_id", "sis_login_id", "section", "email", "id_number")
_ALIASES = {"submission_id": "submission", "id": "submission", "student": "name", "student_name": "name",
            "sis_user": "sis_user_id", "sis_login": "sis_login_id", "login": "sis_login_id", "e_mail": "email",
            "idnumber": "id_number", "id_no": "id_number"}


class RosterError(ValueError):
    """The roster cannot be used; the message says what to fix."""


@dataclass
class LmsFiles:
    written: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _field(header: str) -> str:
    key = "_".join(header.strip().lower().replace("-", " ").split())
    return _ALIASES.get(key, key)


def read_roster(path: str | Path) -> list[dict[str, str]]:
    """The roster's rows as dicts of ROSTER_FIELDS (missing ones empty)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise RosterError(f"--roster {path}: {exc.strerror or exc}") from None
    reader = csv.DictReader(io.StringIO(text))
    headers = {h: _field(h) for h in reader.fieldnames or []}
    if "submission" not in headers.values():
        raise RosterError(f"--roster {path}: no `submission` column (the submission ids); its columns are "
                          f"{', '.join(reader.fieldnames or []) or 'none'}")
    rows, seen = [], set()
    for number, raw in enumerate(reader, 2):
        row = {f: "" for f in ROSTER_FIELDS}
        row.update({headers[h]: (v or "").strip() for h, v in raw.items() if h in headers and headers[h] in row})
        if not row["submission"]:
            continue
        if row["submission"] in seen:
            raise RosterError(f"--roster {path}, line {number}: submission {row['submission']!r} appears twice")
        seen.add(row["submission"])
        rows.append(row)
    return rows


def _points(root: Path, only: set[str] | None) -> tuple[dict[str, float | None], dict[str, str]]:
    """Automatic total per graded submission (None with checks only), and why the others have none."""
    points: dict[str, float | None] = {}
    missing: dict[str, str] = {}
    for folder in results_folders(root):
        sid = folder.name
        if only is not None and sid not in only:
            continue
        try:
            total = read_results(folder).total
        except ResultsError as exc:
            missing[sid] = f"its results cannot be read ({exc})"
            continue
        points[sid] = total
        if total is None:
            missing[sid] = "graded without points (--checks-only)"
    for sid in error_folders(root, only):
        missing[sid] = "could not be graded (error.json)"
    return points, missing


def _number(value: float | None) -> str:
    return "" if value is None else f"{round(float(value), 4):g}"


def write_lms_files(root: str | Path, assignment: Assignment, roster: str | Path, *, column: str | None = None,
                    only: set[str] | None = None) -> LmsFiles:
    """canvas_gradebook.csv and moodle_grades.csv in `root` (a graded folder), for the roster's students."""
    root = Path(root)
    students = read_roster(roster)
    points, missing = _points(root, only)
    column = column or assignment.title
    out = LmsFiles()
    on_roster = {s["submission"] for s in students}
    for sid in sorted(set(points) | set(missing)):
        if sid not in on_roster:
            out.problems.append(f"{sid}: graded, but not on the roster: not in the LMS files")
    for s in students:
        sid = s["submission"]
        if sid in missing:
            out.problems.append(f"{sid}: {missing[sid]}: no LMS grade (an empty Canvas cell, no Moodle row)")
        elif sid not in points:
            out.problems.append(f"{sid}: on the roster, but no graded submission: no LMS grade (an empty Canvas "
                                "cell, no Moodle row)")

    canvas = io.StringIO()
    writer = csv.writer(canvas, lineterminator="\n")
    writer.writerow([*CANVAS_COLUMNS, column])
    for s in students:
        writer.writerow([s["name"], s["canvas_id"], s["sis_user_id"], s["sis_login_id"], s["section"],
                         _number(points.get(s["submission"]))])
    out.written.append(write_atomic(root / CANVAS_FILE, canvas.getvalue()))

    identifier = "email" if any(s["email"] for s in students) or not any(s["id_number"] for s in students) \
        else "idnumber"
    moodle = io.StringIO()
    writer = csv.writer(moodle, lineterminator="\n")
    writer.writerow([identifier, column])
    for s in students:
        key = s["email"] if identifier == "email" else s["id_number"]
        if not key:
            out.problems.append(f"{s['submission']}: no {identifier} in the roster: not in {MOODLE_FILE}")
            continue
        if points.get(s["submission"]) is not None:  # no row rather than an empty grade
            writer.writerow([key, _number(points[s["submission"]])])
    out.written.append(write_atomic(root / MOODLE_FILE, moodle.getvalue()))
    return out
