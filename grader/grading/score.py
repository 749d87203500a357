"""The score step: checks and the evaluated mIoU to points, by the rubric in the spec.

Rule (also in docs/results.md and docs/spec.md). For a rubric item with variants, each
variant gets an equal share of the item's marks, split in two:

- checks: (1 - performance_share) of the share, over the variant's scored checks
  (`Variant.scored_checks`) in proportion to the item's `check_weights`; a passed (or
  warned) check earns its part;
- performance: performance_share of the share, from the mIoU (hidden test split in a
  grade, public validation split in a self-check) against the reference band: full at
  or above the band's lower edge, linear down to zero at the reference's untrained
  baseline, zero below. Above the band's upper edge earns full marks and is flagged for
  a human look. A variant that fails a check that makes it *that* variant
  (`Variant.identity_checks`: architecture, skip_ablation, the frozen or fine-tuned
  backbone) earns no performance marks: its mIoU is another model's. Neither does one
  whose training failed (`learns`: an error, a NaN loss, no better than untrained).
  Without a band that applies, or with --checks-only, the performance part is not
  scored (None) and the note says why.

Trust (issue 26): a check that makes a variant *that* variant, measured where submitted code
could forge it, earns nothing until a person has looked. A variant measured in the student's
process (its model could not be captured) has its identity checks and `learns` that passed or
warned there HELD; one only trained there (its training build could not be captured) has
`learns` and `skip_ablation` held. A captured program that computes with more than
FIXED_VALUES_LIMIT values no training changes, outside its backbone and BatchNorm statistics
(grader.verifier.fixed: a network kept in constants), has `learns` held. A held check earns no
marks, and a variant with one earns no performance marks; its status is `held`. Failures stay failures (a forged failure only costs its
forger). `--trust-student-process` (grade, check, rescore) grades those measurements as they
came, after a person has reviewed them; a held check keeps its first status to return to.

Items without variants are manual: their marks are listed, blank, for the grader.
"""

from __future__ import annotations

from dataclasses import replace

from grader.records.results import (STUDENT_PROCESS, Band, CheckResult, CheckStatus, Grade, ManualItem, VariantResult,
                                    VariantStatus)
from grader.spec import Assignment, RubricItem, Variant


def performance_fraction(miou: float, band: Band) -> float:
    """0..1 of the performance marks for an mIoU under `band` (measured)."""
    if miou >= band.lower:
        return 1.0
    floor = band.untrained if band.untrained is not None else 0.0
    if miou <= floor or band.lower <= floor:
        return 0.0
    return (miou - floor) / (band.lower - floor)


def split_label(split: str) -> str:
    """How an mIoU is called where it is shown: by the split it was measured on."""
    return "val mIoU" if split == "val" else "test mIoU"


def check_marks(variant: Variant, item: RubricItem, checks_max: float) -> dict[str, float]:
    """Each scored check's part of `checks_max`, by the item's weights."""
    weights = {cid: item.check_weights[cid] for cid in variant.scored_checks}
    total = sum(weights.values())
    return {cid: (checks_max * w / total if total else 0.0) for cid, w in weights.items()}


# Values a captured program computes with that no training changes, outside its backbone and
# BatchNorm statistics (grader.verifier.fixed). Honest models hold a few hundred (normalisation
# constants; a fixed bilinear kernel counts its k x k); a network trained elsewhere and switched
# in once the parameters move needs its weights there. Above this, the mIoU waits for a person.
FIXED_VALUES_LIMIT = 10_000

_TRUST = "an instructor who accepts it runs `segrade rescore OUT --trust-student-process`"
_CAPTURABLE = f"Make the model capturable by torch.export (docs/security.md: the fallback), or {_TRUST}."


def held_checks(result: VariantResult, variant: Variant) -> tuple[set[str], str, str]:
    """The checks of `result` that a person must look at before they earn marks, why, and what
    to do (see the rule above)."""
    program = result.program or {}
    if program.get("measured_in") == STUDENT_PROCESS:
        return ({*variant.identity_checks, "learns"},
                f"measured in the student's process, because the model could not be captured "
                f"({program.get('reason') or 'no reason given'}), where the submission's own code could have "
                "forged it", _CAPTURABLE)
    if program.get("training_measured_in") == STUDENT_PROCESS:
        return ({"learns", "skip_ablation"},
                f"trained in the student's process, because the training build could not be captured "
                f"({program.get('training_reason') or 'no reason given'}), where the submission's own code could "
                "have forged it", _CAPTURABLE)
    fixed = program.get("fixed") or {}
    if isinstance(fixed.get("values"), int) and fixed["values"] > FIXED_VALUES_LIMIT:
        largest = ", ".join((fixed.get("largest") or [])[:3]) or "not named"
        return ({"learns"},
                f"the captured program computes with {fixed['values']:,} values that the training cannot change, "
                f"outside its backbone and BatchNorm statistics (the largest: {largest}); a network trained "
                "elsewhere and kept in constants would score like this", "Keep the model's weights in trainable "
                f"parameters (a frozen backbone and fixed normalisation or bilinear kernels are fine), or {_TRUST}.")
    return set(), "", ""


def hold_unverified(result: VariantResult, variant: Variant, trust: bool) -> VariantResult:
    """`result` with the checks that rest on the student's process held (trust False) or given
    back their first status (trust True). Idempotent either way."""
    held, why, remedy = held_checks(result, variant)
    checks = []
    for c in result.checks:
        first = c.details.get("held_from")
        if first and trust:
            details = {k: v for k, v in c.details.items() if k not in ("held_from", "held_message")}
            c = CheckResult(c.id, CheckStatus(first), c.details.get("held_message", c.message), details)
        elif c.id in held and not first and not trust and c.status.passes:
            c = CheckResult(c.id, CheckStatus.HELD,
                            f"held for review: it {'passed' if c.status is CheckStatus.PASS else 'passed with a warning'}, "
                            f"but {why}; no marks until a person has looked. What was seen: {c.message}\n\n{remedy}",
                            {**c.details, "held_from": c.status.value, "held_message": c.message})
        checks.append(c)
    status = result.status
    if any(c.status is CheckStatus.HELD for c in checks):
        status = VariantStatus.HELD if status in (VariantStatus.PASSED, VariantStatus.HELD) else status
    elif status is VariantStatus.HELD:
        status = VariantStatus.PASSED
    return replace(result, checks=tuple(checks), status=status)


def score_variant(result: VariantResult, assignment: Assignment, band: Band | None, trained: bool,
                  split: str = "test", trust: bool = False) -> VariantResult:
    variant = assignment.variant(result.variant_id)
    result = replace(hold_unverified(result, variant, trust), band=band)
    item = assignment.rubric_item(variant.id)
    if item is None:  # a variant the rubric gives no marks
        return replace(result, points=0.0, max_points=0.0, points_detail={"rubric_item": None})
    share = item.marks / len(item.variants)
    perf_max = share * item.performance_share
    marks = check_marks(variant, item, share - perf_max)
    earned = {cid: (most if (c := result.check(cid)) is not None and c.status.passes else 0.0)
              for cid, most in marks.items()}
    checks_points = sum(earned.values())

    detail: dict = {"rubric_item": item.id, "checks": {k: round(v, 4) for k, v in earned.items()},
                    "checks_max_each": {k: round(v, 4) for k, v in marks.items()},
                    "checks_points": round(checks_points, 4), "checks_max": round(share - perf_max, 4),
                    "performance_max": round(perf_max, 4), "flags": []}
    label = split_label(split)
    learns = result.check("learns")
    miou = (result.metrics or {}).get("miou")
    not_this = next((c for cid in variant.identity_checks
                     if (c := result.check(cid)) is not None and c.status is CheckStatus.FAIL), None)
    held = next((c for c in result.checks if c.status is CheckStatus.HELD), None)
    # An identity check never judged (a forward pass failed at another size first, so the
    # architecture was not checked) proves nothing either way: the mIoU may be another model's.
    # Not skip_ablation: it needs a model trained here, and checkpoint mode (--weights) has none.
    unjudged = next((cid for cid in variant.identity_checks if cid != "skip_ablation"
                     and ((c := result.check(cid)) is None or c.status is CheckStatus.SKIP)), None)
    if not trained:
        perf, reason = None, "not scored: no training was run (--checks-only)"
    elif not_this is not None:
        perf, reason = 0.0, (f"no performance marks: the {not_this.id} check failed, so this model is not "
                             f"{variant.title} and its {label} says nothing about that variant "
                             f"({not_this.headline.split('. ')[0].rstrip('.')})")
    elif held is not None and miou is not None:
        why = held_checks(result, variant)[1]
        perf, reason = 0.0, f"no performance marks until reviewed: the {held.id} check is held ({why})"
        detail["flags"].append(f"held for review: {why}")
    elif unjudged is not None and miou is not None:
        first = result.first_problem
        why = f"{first.id} failed first" if first is not None else "not measured"
        perf, reason = 0.0, (f"no performance marks: the {unjudged} check was not run ({why}), so nothing shows "
                             f"this model is {variant.title}")
    elif miou is None or (learns is not None and learns.status is CheckStatus.FAIL):
        why = learns.message if learns is not None else f"no {label.split()[0]} predictions"
        perf, reason = 0.0, f"no performance marks: training or evaluation failed ({why})"
    elif band is None or not band.measured:
        perf, reason = None, f"not scored: {band_problem(band)}; {label} {miou:.3f}"
    else:
        fraction = performance_fraction(miou, band)
        perf = perf_max * fraction
        reason = (f"{label} {miou:.3f} against the band {band.range_text()} "
                  f"(untrained {band.untrained:.3f}): {fraction:.0%} of the performance marks")
        if miou > band.upper:
            detail["flags"].append(f"{label} {miou:.3f} is above the reference band's upper edge "
                                   f"{band.upper:.3f}: worth a human look")
    detail["performance_points"] = None if perf is None else round(perf, 4)
    detail["performance"] = reason
    points = checks_points + (perf or 0.0)
    return replace(result, points=round(points, 4), max_points=round(share, 4), points_detail=detail)


def band_problem(band: Band | None) -> str:
    """Why no band applies, in one clause: none was measured, or one was and does not apply."""
    if band is None:
        return "no reference band was measured for this variant"
    if band.refusal:
        return f"the reference band does not apply: {band.refusal}"
    return f"no reference band was measured ({band.source})"


def score(assignment: Assignment, variants: tuple[VariantResult, ...], bands: dict[str, Band] | None,
          split: str = "test", trust: bool = False) -> tuple[tuple[VariantResult, ...], Grade]:
    """`bands`: per variant id, the reference band (measured or not); None when nothing was
    trained (--checks-only). `split`: what the mIoU was measured on ("test" or "val").
    `trust`: grade what was measured in the student's process as it came (--trust-student-process)."""
    trained = bands is not None
    scored = tuple(score_variant(v, assignment, (bands or {}).get(v.variant_id), trained, split, trust)
                   for v in variants)
    manual = tuple(ManualItem(item.id, item.title, item.marks, item.prompts) for item in assignment.rubric
                   if item.manual)
    unscored = [v for v in scored if v.points_detail.get("rubric_item")
                and v.points_detail.get("performance_points") is None]
    notes = []
    if unscored and trained:
        # One sentence per distinct reason: "none was measured" only when none was.
        reasons: dict[str, list[str]] = {}
        for v in unscored:
            reasons.setdefault(band_problem(v.band), []).append(v.variant_id)
        notes += [f"performance not scored for {', '.join(ids)}: {why}; those points are not in the total"
                  for why, ids in reasons.items()]
    elif not trained:
        notes.append("checks only: performance marks are not scored without training")
    if manual:
        notes.append(f"{sum(m.max_points for m in manual):g} marks are manual "
                     f"({', '.join(m.id for m in manual)}): left blank for the grader")
    total = round(sum(v.points or 0.0 for v in scored), 2)
    passed = sum(v.status is VariantStatus.PASSED for v in scored)
    return scored, Grade(total=total, max_total=assignment.total_marks, automatic_max=assignment.automatic_marks,
                         passed_variants=passed, total_variants=len(scored), manual=manual, note="; ".join(notes))
