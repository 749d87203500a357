"""`segrade bands --profile P --seeds K`: grade the reference K times, write its bands.

The reference is segrade's own (`reference/`) unless `--reference DIR` names the course's;
the bands go to `reference/bands/` unless `--out DIR` says otherwise, and never into another
assignment's file."""

from __future__ import annotations

import argparse
from pathlib import Path

from grader.commands import add_backend_arguments, add_training_arguments, backend_settings


def add_parser(commands) -> None:
    bands = commands.add_parser("bands", help="measure the reference's expected mIoU bands for a training profile")
    bands.add_argument("--seeds", type=int, default=5, metavar="K", help="number of training runs (default 5)")
    bands.add_argument("--first-seed", type=int, default=1, help="seeds are FIRST..FIRST+K-1 (default 1)")
    add_training_arguments(bands)
    bands.add_argument("--out", metavar="DIR", help="folder of the bands files (default: reference/bands); "
                       "`check` and `grade` read it with --bands DIR")
    bands.add_argument("--reference", metavar="DIR", help="the reference solution to grade, shaped like a submission "
                       "(default: segrade's reference/, which solves the default assignment)")
    bands.add_argument("--split", choices=("test", "val"), default="test",
                       help="what each run is evaluated on: test (default; what `grade` scores on) or val (the "
                       "public validation split of a real dataset, for students' self-checks; on the synthetic "
                       "scenes one band serves both)")
    bands.add_argument("--figures", action="store_true", help="instead: measure the reference's parameters and FLOPs "
                       "(checks only, no training) and write figures.json")
    add_backend_arguments(bands, "the runs one after the other in this process; slurm: one Slurm array task per "
                                 "seed (the full profile asks for a GPU per task)")
    bands.add_argument("--work", metavar="DIR", help="with --backend slurm: where the tasks write their runs, on a "
                       "filesystem the nodes share (default: the bands folder's runs/)")
    bands.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from grader.grading.bands import BandsError, backbone_key, check_writable, measure_bands, write_bands
    from grader.submission.load import fingerprint
    from grader.grading.pipeline import GradeOptions, grade_submission, resolve_profile
    from grader.report import make_console
    from grader.shared.resources import reference_dir
    from grader.spec import SpecError, load_spec
    from grader.grading.weights import find_vgg16_weights

    console = make_console()
    if args.seeds < 2:
        console.print("[red]segrade:[/] --seeds must be at least 2 (a band needs a spread)")
        return 2
    try:
        assignment = load_spec(args.spec)
        options = GradeOptions(vgg16_weights=args.vgg16_weights, device=args.device, profile=args.profile,
                               evaluation_split=args.split)
        if args.backend != "local" and not args.figures:
            return _on_backend(args, assignment, options, console)
        profile, reason = resolve_profile(assignment, options)
        pretrained = profile.pretrained and find_vgg16_weights(args.vgg16_weights).available
        folder = Path(args.out) if args.out else None
        reference = Path(args.reference) if args.reference else reference_dir()
        if not reference.exists():
            raise FileNotFoundError(f"--reference {reference}: no such file or folder")
        if not args.figures:
            path = check_writable(assignment, profile, folder)  # before training, not after
    except (SpecError, BandsError, FileNotFoundError, ValueError, KeyError) as exc:
        console.print(f"[red]segrade:[/] {exc}")
        return 2
    if args.figures:
        from dataclasses import replace

        from grader.grading.bands import reference_figures, write_figures

        result = grade_submission(reference, assignment, replace(options, profile=None))
        console.print(f"wrote {write_figures(reference_figures(result), folder)}")
        return 0
    backbone = backbone_key(pretrained)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    console.print(f"{reason}; backbone start: {backbone}; seeds {seeds}; grading {reference}; writing {path}")

    def grade(seed: int):
        from dataclasses import replace

        result = grade_submission(reference, assignment, replace(options, profile=profile.id, seed=seed),
                                  submission_id=f"reference-seed{seed}")
        failed = [v.variant_id for v in result.variants if v.status.value != "passed"]
        if failed:
            raise RuntimeError(f"the reference failed {', '.join(failed)} with seed {seed}: fix it before measuring bands")
        return result

    try:
        entry = measure_bands(assignment, profile, seeds, grade, progress=console.print)
        entry["provenance"] |= {"reference": str(reference.resolve()), "reference_sha256": fingerprint(reference)}
    except RuntimeError as exc:
        console.print(f"[red]segrade:[/] {exc}")
        return 1
    try:
        path = write_bands(assignment, profile, backbone, entry, folder)
    except BandsError as exc:  # the file changed hands while the runs went on
        console.print(f"[red]segrade:[/] {exc}")
        return 1
    for vid, stats in entry["variants"].items():
        console.print(f"{vid:16s} mean {stats['mean']:.3f} std {stats['std']:.3f} band {stats['lower']:.3f}.."
                      f"{stats['upper']:.3f} untrained {stats['untrained_mean']:.3f}")
    console.print(f"wrote {path}")
    return 0


def _on_backend(args: argparse.Namespace, assignment, options, console) -> int:
    """The runs as tasks of a backend (grader.batch.reference_runs), then the same bands file."""
    from rich.markup import escape

    from grader.batch.backends import make_backend
    from grader.batch.backends.slurm_pending import describe
    from grader.batch.reference_runs import ReferenceFailed, measure_reference_runs
    from grader.grading.bands import BandsError, bands_folder, check_writable, write_bands
    from grader.shared.errors import BatchError
    from grader.shared.resources import reference_dir

    folder = Path(args.out) if args.out else None
    reference = Path(args.reference) if args.reference else reference_dir()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    shown = {"reasons": None}

    def note(message: str) -> None:
        console.print(f"[cyan]•[/] {escape(message)}")

    def on_wait(pending) -> None:  # a line when the reasons change
        reasons = sorted((p.short_reason, p.id) for p in pending)
        if pending and reasons != shown["reasons"] and not all(p.short_reason == "None" for p in pending):
            note(f"Slurm: {describe(pending)}")
        shown["reasons"] = reasons

    def on_done(outcome) -> None:
        if outcome.state == "error":
            console.print(f"[red]✗ {escape(outcome.id)}[/] {escape(outcome.message)}")
        else:
            console.print(f"[green]✓ {escape(outcome.id)}[/] graded ({outcome.seconds:.0f} s)")

    try:
        if not reference.exists():
            raise FileNotFoundError(f"--reference {reference}: no such file or folder")
        backend = make_backend(args.backend, **backend_settings(args))
        work = Path(args.work) if args.work else bands_folder(folder) / "runs"
        runs = measure_reference_runs(backend, assignment, options, seeds=seeds, reference=reference, work=work,
                                      note=note, on_wait=on_wait, on_done=on_done,
                                      check=lambda profile: check_writable(assignment, profile, folder))
    except ReferenceFailed as exc:
        console.print(f"[red]segrade:[/] {exc}")
        return 1
    except (BatchError, BandsError, FileNotFoundError, ValueError, KeyError) as exc:
        console.print(f"[red]segrade:[/] {exc}")
        return 2
    try:
        path = write_bands(assignment, runs.profile, runs.backbone, runs.entry, folder)
    except BandsError as exc:  # the file changed hands while the runs went on
        console.print(f"[red]segrade:[/] {exc}")
        return 1
    for vid, stats in runs.entry["variants"].items():
        console.print(f"{vid:16s} mean {stats['mean']:.3f} std {stats['std']:.3f} band {stats['lower']:.3f}.."
                      f"{stats['upper']:.3f} untrained {stats['untrained_mean']:.3f}")
    console.print(f"wrote {path}")
    return 0
