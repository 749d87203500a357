"""`segrade bands --spec S --reference R --profile P --out DIR`: everything `grade` and `check` need
for one profile of a course, measured from its reference solution.

- the test band (`DIR/<profile>.json`): the reference graded K times on the test split, what
  `segrade grade` scores against;
- the val band (`DIR/<profile>.val.json`): the same on the public validation split, what a
  student's `segrade check` scores against (on the synthetic scenes both splits are draws from
  one generator, so the test band serves both and no val band is measured);
- the reference's size and cost (`DIR/figures.json`): parameters and FLOPs per variant, from a
  checks-only grade, compared in every report.

Here, both bands come from one training per seed (its final model scored on each split) and
the figures from the first run's checks. Three files, so nothing overwrites anything, each
carrying the assignment's identity. The
reference is the spec's `[assignment] reference` (segrade's own for the default assignment)
unless `--reference DIR` names another; the bands go to `reference/bands/` (the default
assignment's) unless `--out DIR` says otherwise, and never into another assignment's file."""

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
                       "(default: the spec's [assignment] reference; segrade's reference/ for the default assignment)")
    bands.add_argument("--split", choices=("both", "test", "val"), default="both",
                       help="what the runs are evaluated on: both (default: the test band for `grade` and, on real "
                       "data, the val band for students' self-checks; on the synthetic scenes the test band serves "
                       "both), test, or val")
    bands.add_argument("--figures", action="store_true", help="only the reference's parameters and FLOPs (checks "
                       "only, no training): figures.json")
    bands.add_argument("--no-figures", action="store_true", help="measure the bands only, not figures.json")
    add_backend_arguments(bands, "the runs one after the other in this process; slurm: one Slurm array task per "
                                 "seed (the full profile asks for a GPU per task); figures.json is measured here")
    bands.add_argument("--work", metavar="DIR", help="with --backend slurm: where the tasks write their runs, on a "
                       "filesystem the nodes share (default: the bands folder's runs/)")
    bands.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from rich.markup import escape

    from grader.data.check import require_dataset
    from grader.grading.bands import BandsError, backbone_key, check_writable, reference_figures, write_figures
    from grader.grading.pipeline import GradeOptions, grade_submission, resolve_profile
    from grader.grading.weights import find_vgg16_weights
    from grader.report import make_console
    from grader.shared.errors import BatchError
    from grader.commands import load_spec_of
    from grader.spec import SpecError

    console = make_console()
    if args.seeds < 2:
        console.print("[red]segrade:[/] --seeds must be at least 2 (a band needs a spread)")
        return 2
    try:
        assignment = load_spec_of(args)
        synthetic = assignment.dataset.kind == "synthetic"
        splits = [] if args.figures else \
            (["test"] if synthetic else ["test", "val"]) if args.split == "both" else [args.split]
        require_dataset(assignment.dataset, ("train", "val", "test") if "test" in splits or args.figures
                        else ("train", "val"), Path(args.spec) if args.spec else None)
        options = GradeOptions(vgg16_weights=args.vgg16_weights, device=args.device, profile=args.profile)
        backend = None
        if args.backend != "local" and splits:
            from grader.batch.backends import make_backend

            # The runs' request, checked against the partition before anything runs; the
            # profile is then resolved for the tasks' device (auto: full on a GPU task).
            backend = make_backend(args.backend, **backend_settings(args))
            backend.prepare(options, lambda message: console.print(f"[cyan]•[/] {escape(message)}"))
            options = replace(options, device=backend.device(options))
        profile, reason = resolve_profile(assignment, options)
        pretrained = profile.pretrained and assignment.has_family_with_pretrained_backbone() \
            and find_vgg16_weights(args.vgg16_weights).available
        folder = Path(args.out) if args.out else None
        reference = Path(args.reference) if args.reference else assignment.reference_dir()
        if reference is not None and not reference.exists():
            raise FileNotFoundError(f"--reference {reference}: no such file or folder")
        paths = {split: check_writable(assignment, profile, folder, split) for split in splits}  # before training
        if folder is None and not assignment.is_default:
            raise BandsError(f"reference/bands/ holds the default assignment's bands, not {assignment.id!r}'s: "
                             f"pass --out DIR (a folder of this course's bands), then `--bands DIR` to grade and check")
        if reference is None:
            raise FileNotFoundError(f"{assignment.path} names no reference solution: pass --reference DIR (a folder "
                                    "shaped like a submission that solves this assignment), or set [assignment] "
                                    "reference = \"DIR\" in the spec")
    except (SpecError, BandsError, BatchError, FileNotFoundError, ValueError, KeyError) as exc:
        console.print(f"[red]segrade:[/] {escape(str(exc))}")
        return 2
    # The figures come from the checks of the first training run here; from a checks-only grade
    # when they are all that is asked (--figures) or the runs are a backend's tasks.
    figures_from_runs = splits and backend is None and not args.no_figures
    if (not args.no_figures or args.figures) and not figures_from_runs:
        console.print(f"measuring the reference's parameters and FLOPs: checks of {reference}")
        result = grade_submission(reference, assignment, replace(options, profile=None, device=args.device))
        failed = _failures(result)
        if failed:
            console.print(f"[red]segrade:[/] the reference {escape(str(reference))} fails its checks ({escape(failed)}): "
                          "fix it before measuring anything from it")
            return 1
        console.print(f"wrote {write_figures(reference_figures(result), folder, assignment)}")
    if synthetic and args.split == "both" and not args.figures:
        console.print("synthetic scenes: the validation and test splits are draws from one generator, so the test "
                      "band serves the self-checks too (no val band)")
    if not splits:
        return 0
    backbone = backbone_key(pretrained)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    return _measure(console, assignment, profile, options, reference, seeds, backbone, folder, splits, paths,
                    f"{reason}; backbone start: {backbone}; seeds {seeds}; {' and '.join(splits)} split"
                    + (" (one training per seed, scored on both)" if len(splits) > 1 else "")
                    + f"; grading {reference}; writing " + ", ".join(str(paths[split]) for split in splits)
                    + (f"; as {backend.name} tasks" if backend else ""), backend,
                    Path(args.work) if args.work else None, figures=bool(figures_from_runs))


def _failures(result) -> str:
    """Why the reference's variants that did not pass failed ("" when all passed)."""
    return "; ".join(f"{v.variant_id} {v.status.value}: " + (", ".join(
        f"{c.id}: {c.message}" for c in v.checks if c.status.value == "fail") or "no check failed")
        for v in result.variants if v.status.value != "passed")


def _measure(console, assignment, profile, options, reference: Path, seeds: list[int], backbone: str,
             folder: Path | None, splits: list[str], paths: dict[str, Path], intro: str, backend=None,
             work: Path | None = None, figures: bool = False) -> int:
    """Grade the reference once per seed and write each split's bands file, both splits from
    one training per seed (grader.grading.pipeline.grade_on_test_and_val): here, or as tasks of
    `backend` (grader.batch.reference_runs) writing their runs to `work`. `figures`:
    figures.json from the first run's checks."""
    from dataclasses import replace

    from rich.markup import escape

    from grader.grading.bands import BandsError, measure_bands, reference_figures, write_bands, write_figures
    from grader.grading.pipeline import grade_on_test_and_val, grade_submission
    from grader.shared.errors import BatchError
    from grader.submission.load import fingerprint

    console.print(escape(intro))

    def grade(seed: int):
        run = replace(options, profile=profile.id, seed=seed)
        sid = f"reference-seed{seed}"
        if len(splits) > 1:
            results = grade_on_test_and_val(reference, assignment, run, submission_id=sid)
        else:
            results = (grade_submission(reference, assignment, replace(run, evaluation_split=splits[0]),
                                        submission_id=sid),)
        failed = _failures(results[0])   # the checks and the training are the same for every split
        if failed:
            raise RuntimeError(f"the reference failed with seed {seed} ({failed}): fix it before measuring bands")
        if figures and seed == seeds[0]:
            console.print(f"wrote {write_figures(reference_figures(results[0]), folder, assignment)} (the "
                          "reference's parameters and FLOPs, from this run's checks)")
        return results

    try:
        if backend is not None:
            entries = _on_backend(console, backend, assignment, profile, options, reference, seeds, folder,
                                  tuple(splits), work)
        else:
            entries = measure_bands(assignment, profile, seeds, grade, tuple(splits), progress=console.print)
        reference_sha256 = fingerprint(reference)
        for split, entry in entries.items():
            entry["provenance"] |= {"reference": str(reference.resolve()), "reference_sha256": reference_sha256,
                                    "split": split}
    except RuntimeError as exc:  # a run failed (reference_runs.ReferenceFailed is one)
        console.print(f"[red]segrade:[/] {escape(str(exc))}")
        return 1
    except BatchError as exc:  # the backend refused, or a task can never start
        console.print(f"[red]segrade:[/] {escape(str(exc))}")
        return 2
    for split, entry in entries.items():
        try:
            path = write_bands(assignment, profile, backbone, entry, folder, split)
        except BandsError as exc:  # the file changed hands while the runs went on
            console.print(f"[red]segrade:[/] {escape(str(exc))}")
            return 1
        if len(entries) > 1:
            console.print(f"{split} split:")
        for vid, stats in entry["variants"].items():
            untrained, highest = stats["untrained_mean"], stats.get("untrained_max")
            # The band's lower edge should clear the highest untrained figure, or `learns` cannot tell them apart
            clear = "" if highest is None else " (max {:.3f}{})".format(
                highest, "" if stats["lower"] > highest else ": the band's lower edge does not clear it")
            console.print(f"{vid:16s} mean {stats['mean']:.3f} std {stats['std']:.3f} band {stats['lower']:.3f}.."
                          f"{stats['upper']:.3f} untrained {'-' if untrained is None else f'{untrained:.3f}'}{clear}")
        console.print(f"wrote {path}")
    return 0


def _on_backend(console, backend, assignment, profile, options, reference: Path, seeds: list[int],
                folder: Path | None, splits: tuple[str, ...], work: Path | None) -> dict[str, dict]:
    """The runs as tasks of `backend` (one Slurm array task per seed, scored on every split
    of `splits`), summarised like the in-process runs; the bands entry of each split."""
    from dataclasses import replace

    from rich.markup import escape

    from grader.batch.backends.base import BatchEvents
    from grader.batch.backends.slurm_pending import describe
    from grader.batch.reference_runs import measure_reference_runs
    from grader.grading.bands import bands_folder

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

    runs = measure_reference_runs(backend, assignment, replace(options, profile=profile.id), seeds=seeds,
                                  reference=reference, work=work or bands_folder(folder) / "runs",
                                  label="-".join((profile.id, *splits)), splits=splits,
                                  events=BatchEvents(on_done=on_done, on_note=note, on_wait=on_wait))
    return runs.entries
