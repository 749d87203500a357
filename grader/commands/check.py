"""`segrade check SUBMISSION`: grade one submission (checks, training, hidden evaluation, points) and print what to fix."""

from __future__ import annotations

import argparse

from grader.commands import add_training_arguments
from grader.commands.report import add_report_arguments
from grader.sandbox import Limits


def add_parser(commands) -> None:
    check = commands.add_parser("check", help="grade one submission: check every variant, train it, score it on hidden labels")
    check.add_argument("path", help="a submission: a folder, a .zip, a .py file or a .ipynb notebook")
    check.add_argument("--out", metavar="DIR", help="write DIR/results.json and the reports: DIR/report.html, "
                       "DIR/report.pdf, DIR/results_gradescope.json")
    add_training_arguments(check)
    check.add_argument("--checks-only", action="store_true", help="only the checks, no training: seconds per variant")
    check.add_argument("--weights", action="store_true", help="checkpoint mode: evaluate the trained weights in "
                       "the submission (weights/<variant id>.pt or .safetensors) instead of training")
    check.add_argument("--seed", type=int, help="training seed (default: the profile's)")
    check.add_argument("--manifest", metavar="TOML", help="a manifest saying how to build each variant "
                       "(default: the submission's own segrade.toml, if any)")
    check.add_argument("--isolation", choices=("auto", "bubblewrap", "process"), default="auto",
                       help="auto (default): bubblewrap when installed, else a plain process")
    check.add_argument("--memory-gb", type=float, default=Limits.memory_gb, help="worker address-space limit")
    check.add_argument("--phase-timeout", action="append", default=[], metavar="PHASE=S",
                       help="deadline of one phase in seconds (phases: start, import, build, forward, check, train, evaluate); repeatable")
    add_report_arguments(check)
    check.set_defaults(run=run)


def _limits(args: argparse.Namespace) -> Limits:
    phases = dict(Limits().phase_seconds)
    for item in args.phase_timeout:
        phase, _, seconds = item.partition("=")
        if phase not in phases or not seconds.replace(".", "", 1).isdigit():
            raise ValueError(f"--phase-timeout {item!r}: use PHASE=SECONDS with PHASE in {', '.join(phases)}")
        phases[phase] = float(seconds)
    return Limits(memory_gb=args.memory_gb, phase_seconds=phases)


def run(args: argparse.Namespace) -> int:
    from grader.load import SubmissionError
    from grader.pipeline import GradeOptions, grade_submission
    from grader.report import make_console, print_summary, write_results
    from grader.report.outputs import write_submission_report
    from grader.spec import SpecError, load_spec

    console = make_console()
    try:
        assignment = load_spec(args.spec)
        options = GradeOptions(vgg16_weights=args.vgg16_weights, device=args.device, limits=_limits(args),
                               profile=None if args.checks_only else args.profile, seed=args.seed,
                               weights=args.weights, manifest=args.manifest,
                               isolation=None if args.isolation == "auto" else args.isolation)
        with console.status("checking, training and evaluating every variant in the worker..."):
            result = grade_submission(args.path, assignment, options)
    except (SpecError, SubmissionError, FileNotFoundError, ValueError, KeyError) as exc:
        console.print(f"[red]segrade:[/] {exc}")
        return 2
    print_summary(result, console)
    if args.out:
        console.print(f"wrote {write_results(result, args.out)}")
        for path in write_submission_report(args.out, assignment, pdf=not args.no_pdf, visibility=args.visibility):
            console.print(f"wrote {path}")
    return 0 if result.ok else 1
