"""`segrade bands --profile P --seeds K`: grade the reference K times, write its bands."""

from __future__ import annotations

import argparse
from pathlib import Path

from grader.commands import add_training_arguments


def add_parser(commands) -> None:
    bands = commands.add_parser("bands", help="measure the reference's expected mIoU bands for a training profile")
    bands.add_argument("--seeds", type=int, default=5, metavar="K", help="number of training runs (default 5)")
    bands.add_argument("--first-seed", type=int, default=1, help="seeds are FIRST..FIRST+K-1 (default 1)")
    add_training_arguments(bands)
    bands.add_argument("--out", metavar="DIR", help="folder of the bands files (default: reference/bands)")
    bands.add_argument("--figures", action="store_true", help="instead: measure the reference's parameters and FLOPs "
                       "(checks only, no training) and write figures.json")
    bands.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from grader.bands import backbone_key, bands_path, measure_bands, write_bands
    from grader.pipeline import GradeOptions, grade_submission, resolve_profile
    from grader.report import make_console
    from grader.resources import reference_dir
    from grader.spec import SpecError, load_spec
    from grader.weights import find_vgg16_weights

    console = make_console()
    if args.seeds < 2:
        console.print("[red]segrade:[/] --seeds must be at least 2 (a band needs a spread)")
        return 2
    try:
        assignment = load_spec(args.spec)
        options = GradeOptions(vgg16_weights=args.vgg16_weights, device=args.device, profile=args.profile)
        profile, reason = resolve_profile(assignment, options)
        pretrained = profile.pretrained and find_vgg16_weights(args.vgg16_weights).available
    except (SpecError, FileNotFoundError, ValueError, KeyError) as exc:
        console.print(f"[red]segrade:[/] {exc}")
        return 2
    folder = Path(args.out) if args.out else None
    if args.figures:
        from dataclasses import replace

        from grader.bands import reference_figures, write_figures

        result = grade_submission(reference_dir(), assignment, replace(options, profile=None))
        console.print(f"wrote {write_figures(reference_figures(result), folder)}")
        return 0
    backbone = backbone_key(pretrained)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    console.print(f"{reason}; backbone start: {backbone}; seeds {seeds}; writing {bands_path(profile.id, folder)}")

    def grade(seed: int):
        from dataclasses import replace

        result = grade_submission(reference_dir(), assignment, replace(options, profile=profile.id, seed=seed),
                                  submission_id=f"reference-seed{seed}")
        failed = [v.variant_id for v in result.variants if v.status.value != "passed"]
        if failed:
            raise RuntimeError(f"the reference failed {', '.join(failed)} with seed {seed}: fix it before measuring bands")
        return result

    try:
        entry = measure_bands(assignment, profile, seeds, grade, progress=console.print)
    except RuntimeError as exc:
        console.print(f"[red]segrade:[/] {exc}")
        return 1
    path = write_bands(assignment, profile, backbone, entry, folder)
    for vid, stats in entry["variants"].items():
        console.print(f"{vid:16s} mean {stats['mean']:.3f} std {stats['std']:.3f} band {stats['lower']:.3f}.."
                      f"{stats['upper']:.3f} untrained {stats['untrained_mean']:.3f}")
    console.print(f"wrote {path}")
    return 0
