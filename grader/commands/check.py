"""`segrade check SUBMISSION`: a student's self-check of one submission (checks, training, evaluation on the
public validation split, points), what to fix first, and the report; exit 1 when a required check fails."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from grader.commands import add_bands_argument, add_sandbox_arguments, add_training_arguments
from grader.commands.report import add_report_arguments, report_options
from grader.grading.sandbox import Limits
from grader.shared.processes import cpu_cores


def add_parser(commands) -> None:
    check = commands.add_parser("check", help="self-check one submission: check every variant, train it, score it, say what to fix first")
    check.add_argument("path", help="a submission: a folder, a .zip, a .py file or a .ipynb notebook")
    check.add_argument("--out", metavar="DIR", help="write DIR/results.json and the reports: DIR/report.html, "
                       "DIR/report.pdf, DIR/results_gradescope.json (default: <id>_segrade/ next to the submission)")
    check.add_argument("--no-report", action="store_true", help="print the table only; write no files")
    add_training_arguments(check)
    add_bands_argument(check)
    check.add_argument("--checks-only", action="store_true", help="only the checks, no training: seconds per variant")
    check.add_argument("--weights", action="store_true", help="checkpoint mode: evaluate the trained weights in "
                       "the submission (weights/<variant id>.pt or .safetensors) instead of training")
    check.add_argument("--seed", type=int, help="training seed (default: the profile's)")
    check.add_argument("--variant", action="append", default=[], metavar="ID",
                       help="check only this variant (repeatable); the others keep their last result when unchanged")
    check.add_argument("--fresh", action="store_true", help="check every variant again, ignoring the results "
                       "kept from the last self-check in the output folder (unchanged variants are reused otherwise)")
    check.add_argument("--split", choices=("val", "test"), default="val",
                       help="where the final mIoU is measured: val (default: the public validation split, a "
                       "student's self-check) or test (the hidden test split, as `segrade grade` does)")
    check.add_argument("--manifest", metavar="TOML", help="a manifest saying how to build each variant "
                       "(default: the submission's own segrade.toml, if any)")
    add_sandbox_arguments(check)
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
    from grader.shared.processes import scratch_folder

    # The programs that were graded, kept with the report (moved there once it is written);
    # removed whichever way the command ends (an FCN's programs are 0.5 GB each).
    with scratch_folder("segrade-programs-") as scratch:
        return _check(args, Path(scratch) / "programs")


def _check(args: argparse.Namespace, programs: Path) -> int:
    from grader.submission.load import SubmissionError
    from grader.grading.pipeline import GradeOptions, grade_submission
    from grader.report import make_console, print_summary, write_results
    from grader.report.outputs import write_submission_report
    from grader.report.progress import check_progress
    from rich.markup import escape

    from grader.data.check import require_dataset, splits_needed
    from grader.commands import load_spec_of
    from grader.spec import SpecError

    console = make_console()
    try:
        assignment = load_spec_of(args)
        # Before anything runs: a missing root or mismatched masks is the data's fault, said once.
        require_dataset(assignment.dataset, splits_needed(args.split), Path(args.spec) if args.spec else None)
        out = None if args.no_report else Path(args.out) if args.out else None
        options = GradeOptions(vgg16_weights=args.vgg16_weights, device=args.device, limits=_limits(args),
                               profile=None if args.checks_only else args.profile, seed=args.seed,
                               weights=args.weights, manifest=args.manifest, evaluation_split=args.split,
                               bands_folder=Path(args.bands) if args.bands else None,
                               isolation=None if args.isolation == "auto" else args.isolation,
                               capture=not args.no_capture, trust_student_process=args.trust_student_process,
                               programs_folder=None if args.no_report or args.no_capture else programs,
                               variants=tuple(dict.fromkeys(args.variant)), fresh=args.fresh,
                               # Kept beside the output: with --no-report nothing is written, so nothing is kept.
                               keep_in=None if args.no_report else out or default_out(Path(args.path), None))
        what = "checking every variant (no training)" if args.checks_only else \
            "checking, training and evaluating every variant"
        with check_progress(console, f"segrade: {what} of {args.path}") as on_progress:
            result = grade_submission(args.path, assignment, options, on_progress=on_progress)
    except (SpecError, SubmissionError, FileNotFoundError, ValueError, KeyError) as exc:
        console.print(f"[red]segrade:[/] {escape(str(exc))}")
        return 2
    print_summary(result, console)
    if not args.no_report:
        out = out or default_out(Path(args.path), result.submission.id)
        try:
            write_results(result, out)
            if programs.is_dir():   # file by file: a reused variant's programs (same names) stay
                (out / "programs").mkdir(parents=True, exist_ok=True)
                for file in programs.iterdir():
                    shutil.move(str(file), str(out / "programs" / file.name))
            write_submission_report(out, assignment, report_options(args), result=result,
                                    workers=cpu_cores())
        except OSError as exc:
            console.print(f"[red]segrade:[/] could not write the report to {out} ({exc}): pass --out DIR")
            return 2
        console.print(f"report: {out / 'report.html'}{'' if args.no_pdf else ' and report.pdf'}; results: "
                      f"{out / 'results.json'}")
    return 0 if result.ok else 1


def default_out(submission: Path, submission_id: str | None) -> Path:
    """Next to the submission, never inside it (that would change what is graded next time).
    The id is the submission's name (grader.submission.load) unless one was given."""
    return submission.resolve().parent / f"{submission_id or submission_stem(submission)}_segrade"


def submission_stem(path: Path) -> str:
    from grader.submission.load import default_id

    return default_id(path)
