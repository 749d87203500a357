"""`segrade grade SUBMISSIONS_DIR --out DIR`: grade a folder of submissions, in parallel and resumably."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from grader.commands import (add_backend_arguments, add_bands_argument, add_sandbox_arguments, add_training_arguments,
                             backend_settings)
from grader.commands.exports import add_lms_arguments, lms_options, print_lms
from grader.commands.report import add_report_arguments, report_options
from grader.commands.similarity import add_similarity_arguments, print_similarity, similarity_options


def add_parser(commands) -> None:
    grade = commands.add_parser(
        "grade", help="grade a folder of submissions (parallel, resumable) and write every report, the class "
                      "summary, the gradebook and an index",
        description="Each entry of SUBMISSIONS_DIR (a subfolder, a .zip, a .py file or a .ipynb notebook) is one "
                    "submission, whose id is the entry's name. Writes DIR/<id>/ (results.json, report.html, "
                    "report.pdf, results_gradescope.json), DIR/summary.html, DIR/gradebook.csv and DIR/index.html. "
                    "Re-running skips the submissions already graded with the same content, spec, profile and "
                    "segrade version, so an interrupted batch finishes where it stopped.")
    grade.add_argument("submissions", metavar="SUBMISSIONS_DIR")
    grade.add_argument("--out", metavar="DIR", required=True, help="where the results and reports go")
    grade.add_argument("--jobs", type=int, help="submissions graded at once (default: what the machine affords: "
                       "one per 4 CPU cores, two per GPU; with --backend slurm, as --slurm-parallel)")
    grade.add_argument("--manifests", metavar="DIR", help="instructor manifests, DIR/<id>.toml (or DIR/<id>/segrade.toml), "
                       "saying how to build each variant of that submission")
    add_training_arguments(grade)
    add_bands_argument(grade)
    grade.add_argument("--checks-only", action="store_true", help="only the checks, no training")
    add_sandbox_arguments(grade)
    add_report_arguments(grade)
    bands = grade.add_argument_group("bands measured for the batch (when the profile's bands do not apply)")
    bands.add_argument("--no-measure-bands", action="store_true",
                       help="do not measure missing bands in the batch: performance stays unscored (the old behaviour)")
    bands.add_argument("--band-seeds", type=int, default=3, metavar="K",
                       help="reference runs when bands are measured in the batch (default 3)")
    bands.add_argument("--reference", metavar="DIR", help="the course's reference solution, for bands measured in "
                       "the batch (default: segrade's reference/, for the default assignment)")
    add_backend_arguments(grade, "job processes here; slurm: one Slurm array task per submission, via submitit "
                                 "(OUT and the venv on a filesystem the nodes share)")
    add_similarity_arguments(grade, in_grade=True)
    add_lms_arguments(grade)
    grade.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from rich.markup import escape

    from grader.batch.grade import BatchEvents, BatchOptions, grade_batch
    from grader.data.check import require_dataset
    from grader.shared.errors import BatchError
    from grader.grading.pipeline import GradeOptions
    from grader.report import make_console
    from grader.report.progress import PlainLines, is_live, time_left
    from grader.report.terminal import print_batch_summary
    from grader.commands import load_spec_of
    from grader.spec import SpecError

    console = make_console()
    if args.jobs is not None and args.jobs < 1:
        console.print("[red]segrade:[/] --jobs must be at least 1")
        return 2
    # One line for the batch (submissions done of all, its ETA) and one per running job (its
    # variant, phase and training step, grader.grading.progress); plain lines when not a terminal.
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[count]}"),
                        TimeElapsedColumn(), TextColumn("{task.fields[left]}"), console=console)
    overall = progress.add_task("grading", total=None, count="", left="")
    running: dict[str, int] = {}
    plain: dict[str, PlainLines] = {}
    live = is_live(console)
    counts = {"done": 0, "total": 0, "since": time.monotonic()}

    def on_plan(todo, resumed) -> None:
        if resumed:
            progress.console.print(f"{len(resumed)} submission(s) already graded with the same content, spec and "
                                   f"profile: kept ({', '.join(o.id for o in resumed)})")
        counts.update(total=len(todo), since=time.monotonic())
        progress.update(overall, total=len(todo), description=f"grading {len(todo)} submission(s)",
                        count=f"0/{len(todo)}")

    def on_start(entry) -> None:
        running[entry.id] = progress.add_task(f"  {escape(entry.id)}", total=1.0, count="", left="")
        plain[entry.id] = PlainLines(progress.console, prefix=f"{entry.id}: ", phases=False)

    def on_progress(entry, state) -> None:
        if entry.id not in running:
            return
        if not live:
            plain[entry.id](state)
            return
        progress.update(running[entry.id], completed=state.fraction, count=f"{state.fraction:4.0%}",
                        description=f"  {escape(entry.id)}: {escape(state.describe())}", left=time_left(state))

    def on_done(outcome) -> None:
        if outcome.id in running:
            progress.remove_task(running.pop(outcome.id))
        plain.pop(outcome.id, None)
        progress.advance(overall)
        counts["done"] += 1
        done, total = counts["done"], counts["total"]
        left = (time.monotonic() - counts["since"]) / done * (total - done) if total >= done > 0 else None
        progress.update(overall, count=f"{done}/{total}",
                        left="" if left is None else f"ETA {round(left) // 60} min {round(left) % 60:02d} s")
        if outcome.state == "error":
            line = f"[red]✗ {escape(outcome.id)}[/] not graded: {escape(outcome.message)}"
        else:
            colour = "green" if outcome.ok else "yellow"
            points = "" if outcome.points is None else f", {outcome.points:g}/{outcome.automatic_max:g} points"
            line = (f"[{colour}]{'✓' if outcome.ok else '!'} {escape(outcome.id)}[/] {outcome.passed_variants}/"
                    f"{outcome.total_variants} variants pass{points}")
        progress.console.print(f"{line} [dim]({outcome.seconds:.0f} s)[/]")
        if outcome.note:
            progress.console.print(f"  [yellow]{escape(outcome.note)}[/]")

    def on_note(message: str) -> None:
        progress.console.print(f"[cyan]•[/] {escape(message)}")

    # Slurm tasks not started yet: a line of their reasons and waits (a terminal), or a
    # printed line when the reasons change and every 5 minutes otherwise (a log).
    waiting = {"row": None, "shape": None, "at": 0.0}

    def on_wait(pending) -> None:
        from grader.batch.backends.slurm_pending import describe

        if not pending:
            if waiting["row"] is not None:
                progress.remove_task(waiting["row"])
            waiting.update(row=None, shape=None)
            return
        line = describe(pending)
        if live:
            if waiting["row"] is None:
                waiting["row"] = progress.add_task("", total=None, count="", left="")
            progress.update(waiting["row"], description=f"  [yellow]{escape(line)}[/]")
            return
        shape = sorted((p.short_reason, p.id) for p in pending)
        if all(p.short_reason == "None" for p in pending):
            return  # about to start: nothing to tell a log
        if shape != waiting["shape"] or time.monotonic() - waiting["at"] > 300:
            progress.console.print(f"[cyan]•[/] Slurm: {escape(line)}")
            waiting.update(shape=shape, at=time.monotonic())

    try:
        from grader.batch.backends import make_backend

        backend = make_backend(args.backend, **backend_settings(args, parallel=args.jobs))  # --jobs N: N tasks at once
        if args.band_seeds < 2:
            raise ValueError("--band-seeds must be at least 2 (a band needs a spread)")
        assignment = load_spec_of(args)
        require_dataset(assignment.dataset, ("train", "val", "test"), Path(args.spec) if args.spec else None)
        options = GradeOptions(vgg16_weights=args.vgg16_weights, device=args.device,
                               profile=None if args.checks_only else args.profile,
                               bands_folder=Path(args.bands) if args.bands else None,
                               isolation=None if args.isolation == "auto" else args.isolation,
                               capture=not args.no_capture, trust_student_process=args.trust_student_process)
        batch = BatchOptions(jobs=args.jobs, manifests=Path(args.manifests) if args.manifests else None,
                             report=report_options(args), backend=backend, measure_bands=not args.no_measure_bands,
                             band_seeds=args.band_seeds, reference=Path(args.reference) if args.reference else None,
                             similarity=None if args.no_similarity else similarity_options(args),
                             lms=lms_options(args))
        with progress:
            summary = grade_batch(args.submissions, args.out, assignment, options, batch,
                                  BatchEvents(on_plan, on_start, on_progress, on_done, on_note, on_wait))
    except (SpecError, BatchError, FileNotFoundError, ValueError, KeyError) as exc:
        console.print(f"[red]segrade:[/] {escape(str(exc))}")
        return 2
    print_batch_summary(summary, console)
    if summary.similarity is not None:
        print_similarity(summary.similarity, console)
    print_lms(summary.lms, console)
    return 1 if summary.errors or summary.problems else 0
