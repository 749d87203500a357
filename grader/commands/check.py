"""`segrade check SUBMISSION`: grade one submission and print what to fix."""

from __future__ import annotations

import argparse


def add_parser(commands) -> None:
    check = commands.add_parser("check", help="check one submission: does every variant build and give the right shape?")
    check.add_argument("path", help="a submission folder or a single .py file")
    check.add_argument("--out", metavar="DIR", help="write DIR/results.json")
    check.add_argument("--spec", metavar="TOML", help="assignment spec (default: the one shipped with segrade)")
    check.add_argument("--vgg16-weights", metavar="FILE", help="ImageNet VGG16 weights (torchvision state dict)")
    check.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    check.add_argument("--timeout", type=float, default=900.0, metavar="S", help="worker time limit in seconds")
    check.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from grader.load import SubmissionError
    from grader.pipeline import GradeOptions, grade_submission
    from grader.report import make_console, print_summary, write_results
    from grader.spec import SpecError, load_spec

    console = make_console()
    try:
        assignment = load_spec(args.spec)
        options = GradeOptions(vgg16_weights=args.vgg16_weights, device=args.device, timeout_s=args.timeout)
        with console.status("building every variant in the worker..."):
            result = grade_submission(args.path, assignment, options)
    except (SpecError, SubmissionError, FileNotFoundError) as exc:
        console.print(f"[red]segrade:[/] {exc}")
        return 2
    print_summary(result, console)
    if args.out:
        console.print(f"wrote {write_results(result, args.out)}")
    return 0 if result.ok else 1
