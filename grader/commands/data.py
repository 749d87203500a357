"""`segrade data preview|export|check`: look at the assignment's dataset, write it out, or check it."""

from __future__ import annotations

import argparse


def add_parser(commands) -> None:
    data = commands.add_parser("data", help="preview, export or check the assignment's dataset")
    actions = data.add_subparsers(dest="action", required=True, metavar="ACTION")

    preview = actions.add_parser("preview", help="the class visualisation: a sample's binary masks and a grid")
    _dataset_arguments(preview)
    preview.add_argument("--split", default="train", choices=("train", "val"))
    preview.add_argument("--index", type=int, default=0, help="the sample shown in detail (default 0)")
    preview.add_argument("--n", type=int, default=8, help="samples in the grid (default 8)")
    preview.add_argument("--size", type=int, default=256, help="synthetic image size in pixels (default 256)")
    preview.add_argument("--out", default="dataset_preview.png", metavar="FILE.png")
    preview.set_defaults(run=run_preview)

    export = actions.add_parser("export", help="write the data in the generic folder layout")
    export.add_argument("dir", help="output folder; writes DIR/SPLIT/{images,masks}/NNNNN.png")
    _dataset_arguments(export)
    export.add_argument("--split", default="train", choices=("train", "val"),
                        help="train or val (the test split is hidden)")
    export.add_argument("--n", type=int, default=200, help="number of pairs (default 200)")
    export.add_argument("--size", type=int, default=256, help="synthetic image size in pixels (default 256)")
    export.set_defaults(run=run_export)

    check = actions.add_parser("check", help="check a real dataset before grading on it: root, splits, image/mask "
                               "pairs, sizes, class ids against the spec's classes (exit 2 on any problem)")
    _dataset_arguments(check)
    check.add_argument("--split", action="append", choices=("train", "val", "test"),
                       help="a split to check (repeatable; default: train, val and test)")
    check.add_argument("--sample", type=int, metavar="N",
                       help="read the contents of at most N pairs per split, spread evenly (default: all; every "
                            "file is listed and paired either way)")
    check.set_defaults(run=run_check)


def _dataset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", metavar="TOML", help="assignment spec (default: the one shipped with segrade)")
    from grader.spec import DATASET_KINDS

    parser.add_argument("--dataset", choices=DATASET_KINDS,
                        help="override the spec's dataset kind")
    parser.add_argument("--root", help="dataset folder, for real data")


def _open(args: argparse.Namespace):
    import dataclasses
    from pathlib import Path

    from grader.data.sources import open_split
    from grader.commands import load_spec_of

    assignment = load_spec_of(args)
    config = assignment.dataset
    if args.dataset or args.root:
        kind = args.dataset or config.kind
        if kind != "synthetic" and not (args.root or config.root):
            raise ValueError(f"--dataset {kind} needs --root DIR")
        config = dataclasses.replace(config, kind=kind, root=Path(args.root) if args.root else config.root)
    dataset = open_split(config, args.split, size=args.size, length=args.n if config.kind == "synthetic" else None)
    return assignment, config, dataset


def run_preview(args: argparse.Namespace) -> int:
    from grader.data.preview import render_preview

    try:
        assignment, config, dataset = _open(args)
        indices = [args.index] + [i for i in range(len(dataset)) if i != args.index][: args.n - 1]
        samples = [dataset[i] for i in indices]
        out = render_preview(samples, assignment.class_names, assignment.palette, args.out,
                             title=f"{config.kind} dataset, {args.split} split")
    except (ValueError, OSError, IndexError) as exc:
        print(f"segrade: {exc}")
        return 2
    print(f"wrote {out}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from grader.data.sources import export_split

    try:
        _, config, dataset = _open(args)
        count = export_split(dataset, args.dir, args.split, limit=args.n)
    except (ValueError, OSError) as exc:
        print(f"segrade: {exc}")
        return 2
    print(f"wrote {count} image/mask pairs of the {config.kind} {args.split} split to {args.dir}/{args.split}/")
    return 0


def run_check(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from grader.data import SPLITS
    from grader.data.check import check_dataset
    from grader.commands import load_spec_of
    from grader.spec import SpecError

    try:
        assignment = load_spec_of(args)
    except SpecError as exc:
        print(f"segrade: {exc}")
        return 2
    config = assignment.dataset
    if args.dataset or args.root:
        config = dataclasses.replace(config, kind=args.dataset or config.kind,
                                     root=Path(args.root) if args.root else config.root)
    if args.sample is not None and args.sample < 1:
        print("segrade: --sample must be at least 1")
        return 2
    report = check_dataset(config, tuple(args.split or SPLITS), sample=args.sample)
    if config.kind == "synthetic":
        print("the synthetic scenes are generated by segrade: nothing on disk to check")
        return 0
    names = assignment.class_names
    for split in report.splits:
        if not split.pairs and split.problems:
            continue
        sizes = ", ".join(f"{size} ({n})" for size, n in sorted(split.sizes.items(), key=lambda kv: -kv[1]))
        present = [names[i] for i in split.class_pixels if i < len(names)]
        print(f"{split.split}: {split.pairs} image/mask pairs ({split.read} read); sizes {sizes or '-'}; "
              f"{len(present)} of {len(names)} classes present")
    if not report.ok:
        print(report.message(Path(args.spec) if args.spec else None))
        return 2
    print(f"ok: the {config.kind} dataset at {report.root} matches the spec ({len(names)} classes)")
    return 0
