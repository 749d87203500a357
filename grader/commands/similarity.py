"""`segrade similarity DIR`: code similarity across a graded folder (also run by `segrade grade`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_similarity_arguments(parser, *, in_grade: bool = False) -> None:
    """What `similarity` and `grade` share: the boilerplate, earlier terms and thresholds."""
    if in_grade:
        parser.add_argument("--no-similarity", action="store_true",
                            help="do not compare the submissions' code with each other (similarity.html)")
    parser.add_argument("--starter", metavar="DIR", action="append", default=[],
                        help="starter code given to the students (a folder, .py, .ipynb or .zip): never counts as a "
                             "match (repeatable)")
    parser.add_argument("--compare-with", metavar="DIR", nargs="+", action="extend", default=[],
                        help="earlier terms: graded folders (segrade grade --out) or folders of submissions")
    parser.add_argument("--similarity-threshold", metavar="X", type=float, default=0.5,
                        help="textual score (0-1) from which a pair is listed as similar (default 0.5)")
    parser.add_argument("--structural-threshold", metavar="X", type=float, default=0.6,
                        help="per-variant structural score (0-1) from which a variant counts as similar (default 0.6)")


def similarity_options(args: argparse.Namespace):
    from grader.similarity import SimilarityOptions

    for name in ("similarity_threshold", "structural_threshold"):
        if not 0 < getattr(args, name) <= 1:
            raise ValueError(f"--{name.replace('_', '-')} must be in (0, 1]")
    for folder in (*args.starter, *args.compare_with):
        if not Path(folder).exists():
            raise FileNotFoundError(f"{folder}: no such file or folder")
    return SimilarityOptions(threshold=args.similarity_threshold, structural_threshold=args.structural_threshold,
                             starter=tuple(Path(s) for s in args.starter),
                             compare_with=tuple(Path(c) for c in args.compare_with))


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "similarity", help="compare the code of a graded folder's submissions (similarity.html, similarity.csv)",
        description="Compares every pair of submissions graded under DIR (by `segrade grade --out DIR`): textually "
                    "(copydetect's winnowing on the code segrade extracted, the reference and --starter code "
                    "excluded) and structurally (the layers and dataflow of each variant's built model). Writes "
                    "DIR/similarity.html (ranked pairs, side-by-side matches, groups) and DIR/similarity.csv, and "
                    "links the page from the class summary. Nothing leaves the machine. Similarity is evidence "
                    "for a person to weigh, not a verdict.")
    parser.add_argument("folder", metavar="DIR", help="a folder written by segrade grade")
    add_similarity_arguments(parser)
    parser.add_argument("--spec", metavar="TOML", help="the assignment spec the folder was graded with (to refresh "
                        "the class summary's link)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from grader.report import make_console
    from grader.report.outputs import write_class_outputs
    from grader.report.similarity import write_similarity
    from grader.similarity import run_similarity
    from grader.commands import load_spec_of
    from grader.spec import SpecError

    console = make_console()
    root = Path(args.folder)
    if not root.is_dir() or not any(root.glob("*/results.json")):
        console.print(f"[red]segrade:[/] {root} holds no graded submission (DIR/<id>/results.json): run "
                      "`segrade grade SUBMISSIONS --out DIR` first")
        return 2
    try:
        options = similarity_options(args)
        assignment = load_spec_of(args)
    except (ValueError, FileNotFoundError, SpecError) as exc:
        console.print(f"[red]segrade:[/] {exc}")
        return 2
    result = write_similarity(root, run_similarity(root, options, assignment=assignment), options, assignment)
    print_similarity(result, console)
    try:
        write_class_outputs(root, assignment, reports=False)  # the summary links the page
    except Exception as exc:  # noqa: BLE001 (the similarity files are written; the link can wait)
        console.print(f"[yellow]the class summary was not refreshed ({exc}): run `segrade report {root}`[/]")
    return 0


def print_similarity(result, console) -> None:
    from rich.markup import escape

    console.print(f"similarity: {result.submissions} submission(s)"
                  + (f" and {result.earlier} from earlier terms" if result.earlier else "")
                  + f", {len(result.flagged)} pair(s) above a threshold, {len(result.pairs)} listed "
                  f"({result.seconds:.1f} s)")
    for p in result.flagged[:10]:
        structural = "–" if p.structural is None else f"{p.structural:.2f}"
        console.print(f"  {escape(p.a)} ~ {escape(p.b)}: textual {p.textual:.2f}, structural {structural}")
    if result.page:
        console.print(f"  {result.page} (evidence for a person to weigh, not a verdict)")
