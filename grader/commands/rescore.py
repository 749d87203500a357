"""`segrade rescore OUT`: recompute the points from saved results after a band or rubric change."""

from __future__ import annotations

import argparse

from grader.commands import add_trust_argument
from grader.commands.report import add_report_arguments, report_options


def add_parser(commands) -> None:
    rescore = commands.add_parser(
        "rescore", help="recompute points from saved results (after new bands or rubric marks), without retraining",
        description="Scores every submission of OUT (a `segrade grade` folder, or one submission's folder) again "
                    "from its results.json, against the bands that apply now and the spec's rubric, and rewrites "
                    "results.json, report.html/.pdf, results_gradescope.json, done.json, summary.html, "
                    "gradebook.csv and index.html. Nothing is trained or run.")
    rescore.add_argument("out", metavar="OUT")
    rescore.add_argument("--bands", metavar="DIR", help="folder of the bands files (default: OUT/bands when the batch "
                         "measured its own, else reference/bands)")
    rescore.add_argument("--spec", metavar="TOML", help="the assignment spec, e.g. with new rubric marks "
                         "(default: segrade's default assignment)")
    add_trust_argument(rescore)
    add_report_arguments(rescore)
    rescore.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from grader.report import make_console
    from grader.records.files import results_folders
    from grader.batch.rescore import rescore_out
    from grader.commands import load_spec_of
    from grader.spec import SpecError

    console = make_console()
    out = Path(args.out)
    try:
        assignment = load_spec_of(args)
        if not results_folders(out):
            raise FileNotFoundError(f"{out} holds no results.json, nor folders holding one: grade first")
        with console.status("rescoring..."):
            rescored, problems, bands = rescore_out(out, assignment, Path(args.bands).resolve() if args.bands else None,
                                                    report_options(args), trust=args.trust_student_process)
    except (SpecError, FileNotFoundError) as exc:
        console.print(f"[red]segrade:[/] {exc}")
        return 2
    for problem in problems:
        console.print(f"[red]not rescored:[/] {problem}")
    console.print(f"rescored {len(rescored)} submission(s) against the bands in {bands or 'reference/bands'}; "
                  f"reports, Gradescope files, summary and gradebook rewritten")
    return 1 if problems else 0
