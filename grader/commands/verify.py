"""`segrade verify FOLDER`: re-measure a kept grade's checks on its captured programs (appeals)."""

from __future__ import annotations

import argparse


def add_parser(commands) -> None:
    verify = commands.add_parser(
        "verify", help="re-measure a grade's checks on the programs it kept, without the submission (appeals)",
        description="Runs the verifier again on the captured programs a grade kept (FOLDER/programs/, named by "
                    "their sha256 in FOLDER/results.json) and judges them with the same checks: build, shapes, "
                    "logits, gradients, the frozen or fine-tuned backbone, the architecture. Training and "
                    "evaluation are not re-run. Prints each check as recorded and as measured now, writes "
                    "FOLDER/verified.json; exit 0 when every re-measured check agrees, 1 when one does not.")
    verify.add_argument("folder", metavar="FOLDER", help="one submission's grade: OUT/<id> of `segrade grade`, or "
                        "the output folder of `segrade check`")
    verify.add_argument("--spec", metavar="TOML", help="assignment spec (default: the one shipped with segrade)")
    verify.add_argument("--vgg16-weights", metavar="FILE", help="ImageNet VGG16 weights (torchvision state dict), "
                        "as in the grade: copied backbones are recognised by their values")
    verify.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    verify.add_argument("--isolation", choices=("auto", "bubblewrap", "process"), default="auto",
                        help="auto (default): bubblewrap when installed, else a plain process")
    verify.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.table import Table

    from grader.grading.pipeline import GradeOptions
    from grader.grading.reverify import ReverifyError, reverify, write_verified
    from grader.records.files import ResultsError
    from grader.report import make_console
    from grader.commands import load_spec_of
    from grader.spec import SpecError

    console = make_console()
    folder = Path(args.folder)
    try:
        assignment = load_spec_of(args)
        options = GradeOptions(vgg16_weights=args.vgg16_weights, device=args.device, profile=None,
                               isolation=None if args.isolation == "auto" else args.isolation)
        with console.status("re-measuring the kept programs..."):
            verified = reverify(folder, assignment, options)
    except (SpecError, ResultsError, ReverifyError, FileNotFoundError) as exc:
        console.print(f"[red]segrade:[/] {exc}")
        return 2
    table = Table(show_lines=False)
    for column in ("variant", "check", "recorded", "now", ""):
        table.add_column(column, overflow="fold")
    for v in verified:
        if v.not_measured:
            table.add_row(v.variant_id, "-", "-", "-", f"not re-measured: {v.not_measured}")
            continue
        for cid, status in v.measured.items():
            recorded = v.recorded.get(cid, "-")
            mark = "[green]agrees[/]" if recorded == status else f"[red]differs:[/] {v.messages.get(cid, '')}"
            table.add_row(v.variant_id, cid, recorded, status, mark)
    console.print(table)
    path = write_verified(folder, verified)
    changed = {v.variant_id: v.changed for v in verified if v.changed}
    measured = sum(1 for v in verified if not v.not_measured)
    if changed:
        console.print(f"[red]{len(changed)} of {measured} re-measured variant(s) differ from the record[/] "
                      f"({', '.join(changed)}); written to {path}")
        return 1
    console.print(f"every re-measured check agrees with the record ({measured} variant(s) re-measured, "
                  f"{len(verified) - measured} not); written to {path}")
    return 0
