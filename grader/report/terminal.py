"""The terminal view of one result: a rich table with what to fix first."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from grader.grading.reuse import since
from grader.records.results import CheckStatus, SubmissionResult, VariantStatus, band_text
from grader.records.view import package_notes, problem_text, verdict

STATUS_STYLE = {VariantStatus.PASSED: "green", VariantStatus.MISSING: "yellow", VariantStatus.AMBIGUOUS: "yellow",
                VariantStatus.HELD: "yellow"}


def make_console() -> Console:
    # Wide enough for the table when output goes to a file or a CI log.
    return Console(width=None if Console().is_terminal else 140)


def print_summary(result: SubmissionResult, console: Console) -> None:
    env = result.environment
    console.print(f"[bold]segrade {result.segrade_version}[/] · {result.assignment_id} · "
                  f"submission [bold]{escape(result.submission.id)}[/] · device {escape(str(env.get('device', '?')))}")
    console.print(f"[dim]{env.get('profile_reason', '')} · {env['backbone_weights']}[/]")
    console.print(f"[dim]isolation: {env['isolation']}[/]")
    measured = env.get("measured_in") or {}
    if measured:
        console.print("[dim]measured: " + ", ".join(f"{n} in the {where}" for where, n in sorted(measured.items()))
                      + "[/]")
    for v in result.variants:
        if (v.program or {}).get("measured_in") == "student process":
            console.print(f"[yellow]{escape(v.variant_id)}: measured in the student's process, not captured: "
                          f"{escape(str(v.program.get('reason')))}[/]")
    for note in result.submission.notes:
        console.print(f"[dim]{note}[/]")
    for line in package_notes(env):
        console.print(f"[yellow]{escape(line)}[/]")
    for path, lines in result.submission.skipped.items():
        console.print(f"[dim]{path}: {len(lines)} top-level statement(s) not run (training, plotting...): "
                      f"{lines[0]}{' ...' if len(lines) > 1 else ''}[/]")
    for module in result.failed_imports(blocking=True):
        console.print(f"[red]import failed[/] {escape(module['path'])}: {escape(module['error'])}")
    for module in result.failed_imports(blocking=False):
        console.print(f"[dim]import failed (informational: defines no model, no model file imports it) "
                      f"{escape(module['path'])}: {escape(module['error'])}[/]")
    if env.get("worker_problem"):
        console.print(f"[red]worker:[/] {escape(env['worker_problem'])}")
        tail = result.worker_log.strip().splitlines()[-12:]
        if tail:
            console.print("[dim]last lines of the worker log:[/]")
            console.print("\n".join(tail), markup=False, highlight=False)

    table = Table(show_lines=False)
    table.add_column("variant", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("class", overflow="fold")
    table.add_column("output", no_wrap=True)
    trained = result.grade.total is not None and env.get("profile") is not None
    self_check = env.get("evaluation_split") == "val"
    if trained:
        table.add_column("val mIoU" if self_check else "test mIoU", no_wrap=True, justify="right")
        table.add_column("band", no_wrap=True)
    table.add_column("points", no_wrap=True, justify="right")
    reused = any(v.reused_since for v in result.variants)
    if reused:   # segrade check kept these from an earlier self-check (grader.grading.reuse)
        table.add_column("this run", no_wrap=True)
    table.add_column("what to fix", overflow="fold", ratio=1)
    for variant in sorted(result.variants, key=lambda v: v.status is VariantStatus.PASSED):
        failing = variant.first_problem
        # A variant the code's import failure left unbuilt: said once, above the table.
        fix = ("not built: the code did not import (above)" if failing and failing.details.get("import_failed")
               else problem_text(variant, headline=True) or "; ".join(variant.points_detail.get("flags", [])))
        shape = variant.check("forward_shape")
        seen = shape.details.get("seen") if shape else None
        miou = variant.miou
        cells = [variant.variant_id, f"[{STATUS_STYLE.get(variant.status, 'red')}]{variant.status.value}[/]",
                 _class_and_file(variant), "x".join(map(str, seen)) if seen else "-"]
        if trained:
            cells += ["-" if miou is None else f"{miou:.3f}", band_text(variant.band, "..", absent="not measured")]
        cells += ["-" if variant.points is None else f"{round(variant.points, 2):g}/{round(variant.max_points, 2):g}"]
        if reused:
            cells += [f"[dim]reused: unchanged since {since(variant.reused_since)}[/]" if variant.reused_since
                      else "checked"]
        cells += [escape(fix)]
        table.add_row(*cells)
    console.print(table)
    if reused:
        console.print("[dim]reused: the variant's code and everything that decides its result are unchanged since "
                      "that self-check, so its result was kept (--fresh checks everything again)[/]")
    for variant in result.variants:   # said in the results too (variant notes) and in the report
        for note in variant.notes:
            if "random-init weights instead of a download" in note:
                console.print(f"[dim]{variant.variant_id}: {escape(note)}[/]")
    if env.get("not_checked"):
        console.print(f"[yellow]not checked this time (--variant), and no result kept for them:[/] "
                      f"{', '.join(env['not_checked'])}")
    if trained and self_check:
        console.print("[dim]self-check: val mIoU on the public validation split, scored against the reference band "
                      "with the same rule as the grade; the instructor's grade uses the hidden test labels[/]")
    fixes = what_to_fix_first(result)
    if fixes:
        console.print("[bold]What to fix first[/] (most points at stake first):")
        for number, line in enumerate(fixes, start=1):
            console.print(f"  {number}. {escape(line)}", highlight=False)
    for check in result.checks:
        colour = "green" if check.status is CheckStatus.PASS else "yellow"
        console.print(f"[{colour}]{check.id}[/]: {escape(check.message)}")
    console.print(escape(f"{verdict(result.grade, result.duration_s)} {result.grade.note}".rstrip()))


def what_to_fix_first(result: SubmissionResult, limit: int = 5) -> list[str]:
    """What a student should read before anything else, most points at stake first: each
    failing variant with its first failing check, and each import error of a file a variant
    depends on, at stake the points of the variants it left unbuilt; then warnings."""
    problems, warnings = [], []
    not_imported = [v for v in result.variants if (failed := v.first_problem) is not None
                    and failed.details.get("import_failed")]
    # A variant nothing builds may be defined in a file that did not import: at stake there too.
    unbuilt = not_imported + [v for v in result.variants if v.status is VariantStatus.MISSING]
    blocking = result.failed_imports(blocking=True)
    for module in blocking:
        # Variants not built because nothing imported are said once, by the import lines.
        lost = round(sum((v.max_points or 0) - (v.points or 0) for v in unbuilt) / len(blocking), 2)
        problems.append((-lost, 0, module["path"], f"{module['path']} did not import ({module['error']}): the "
                         f"variants defined in it cannot be built{f', {lost:g} points at stake' if lost else ''}"))
    for variant in result.variants:
        failed = variant.first_problem
        warned = variant.first_check(CheckStatus.WARN)
        lost = round((variant.max_points or 0) - (variant.points or 0), 2)
        if variant.status is not VariantStatus.PASSED:
            if variant in not_imported and blocking:
                continue
            why = problem_text(variant, headline=True) if failed else variant.status.value
            problems.append((-lost, 1, variant.variant_id, f"{variant.variant_id} ({variant.status.value}"
                             f"{f', {lost:g} points at stake' if lost else ''}): {why}"))
        elif warned:
            warnings.append((variant.variant_id, f"{variant.variant_id} (warning, {warned.id}): {warned.message}"))
    lines = [line for *_, line in sorted(problems)] + [line for _, line in sorted(warnings)]
    return lines[:limit]


def _class_and_file(variant) -> str:
    """The short form of the mapping: 'UNet (model.py), flags'; the full sentence is in results.json."""
    if not variant.mapping:
        return "-"
    call = variant.mapping.split("←", 1)[-1].strip()
    name = call.split("(", 1)[0]
    source = call.rpartition(" from ")[2].split(",", 1)[0] if " from " in call else ""
    adapter = f", {variant.adapter}" if variant.adapter and variant.adapter != "contract" else ""
    return f"{name} ({source}){adapter}" if source else f"{name}{adapter}"


def print_batch_summary(summary, console: Console) -> None:
    """The table at the end of `segrade grade`: one row per submission (grader.batch.grade.BatchSummary)."""
    table = Table(title=f"{len(summary.outcomes)} submission(s) in {summary.seconds:.0f} s")
    table.add_column("submission", no_wrap=True)
    table.add_column("graded", no_wrap=True)
    table.add_column("variants", justify="right", no_wrap=True)
    table.add_column("points", justify="right", no_wrap=True)
    table.add_column("seconds", justify="right", no_wrap=True)
    table.add_column("first problem", overflow="fold", ratio=1)
    for o in summary.outcomes:
        state = {"graded": "[green]now[/]", "resumed": "[dim]before[/]", "error": "[red]not graded[/]"}[o.state]
        variants = "-" if o.total_variants is None else f"{o.passed_variants}/{o.total_variants}"
        points = "-" if o.points is None else f"{o.points:g}/{o.automatic_max:g}"
        table.add_row(escape(o.id), state, variants, points, f"{o.seconds:.0f}", escape(o.message))
    console.print(table)
    for problem in summary.problems:
        console.print(f"[red]cannot report on[/] {problem}")
    if summary.errors:
        console.print(f"[red]{len(summary.errors)} submission(s) could not be graded[/]: each has its message in "
                      "its report and the class summary")
    console.print(f"open {summary.index} (class summary {summary.summary.name}, gradebook {summary.gradebook.name})")
