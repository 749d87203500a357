"""The score step: checks and hidden-test mIoU to points, by the rubric in the spec.

Rule (also in the spec's comments and docs/results.md). For a rubric item with
variants, each variant gets an equal share of the item's marks, split in two:

- checks: (1 - performance_share) of the share, equally over the variant's scored
  checks (grader.checks.scored_checks); a passed (or warned) check earns its part;
- performance: performance_share of the share, from the test mIoU against the
  reference band: full at or above the band's lower edge, linear down to zero at the
  reference's untrained baseline, zero below. Above the band's upper edge earns full
  marks and is flagged for a human look. A variant that fails `architecture` or
  `skip_ablation`, or
  whose training failed (`learns`: an error, a NaN loss, no better than untrained),
  earns no performance marks. Without a measured band, or with
  --checks-only, the performance part is not scored (None) and the note says so.

Items without variants are manual: their marks are listed, blank, for the grader.
"""

from __future__ import annotations

from dataclasses import replace

from grader.checks import scored_checks
from grader.results import Band, CheckStatus, Grade, ManualItem, VariantResult, VariantStatus
from grader.spec import Assignment


def performance_fraction(miou: float, band: Band) -> float:
    """0..1 of the performance marks for a test mIoU under `band` (measured)."""
    if miou >= band.lower:
        return 1.0
    floor = band.untrained if band.untrained is not None else 0.0
    if miou <= floor or band.lower <= floor:
        return 0.0
    return (miou - floor) / (band.lower - floor)


def score_variant(result: VariantResult, assignment: Assignment, band: Band | None, trained: bool) -> VariantResult:
    variant = assignment.variant(result.variant_id)
    result = replace(result, band=band)
    item = assignment.rubric_item(variant.id)
    if item is None:  # a variant the rubric gives no marks
        return replace(result, points=0.0, max_points=0.0, points_detail={"rubric_item": None})
    share = item.marks / len(item.variants)
    perf_max = share * item.performance_share
    checks_max = share - perf_max
    ids = scored_checks(variant)
    per_check = checks_max / len(ids)
    earned = {cid: (per_check if (c := result.check(cid)) is not None and c.status in (CheckStatus.PASS,
                                                                                       CheckStatus.WARN) else 0.0)
              for cid in ids}
    checks_points = sum(earned.values())

    detail: dict = {"rubric_item": item.id, "checks": {k: round(v, 4) for k, v in earned.items()},
                    "checks_points": round(checks_points, 4), "checks_max": round(checks_max, 4),
                    "performance_max": round(perf_max, 4), "flags": []}
    architecture = result.check("architecture")
    learns = result.check("learns")
    miou = (result.metrics or {}).get("miou")
    band = result.band
    if not trained:
        perf, reason = None, "not scored: no training was run (--checks-only)"
    elif architecture is not None and architecture.status is CheckStatus.FAIL:
        perf, reason = 0.0, "no performance marks: the architecture check failed, so this is not the variant asked for"
    elif (ablation := result.check("skip_ablation")) is not None and ablation.status is CheckStatus.FAIL:
        perf, reason = 0.0, "no performance marks: a skip connection carries no information (skip_ablation)"
    elif miou is None or (learns is not None and learns.status is CheckStatus.FAIL):
        why = learns.message if learns is not None else "no test predictions"
        perf, reason = 0.0, f"no performance marks: training or evaluation failed ({why})"
    elif band is None or not band.measured:
        perf, reason = None, (f"not scored: no reference band for this profile and backbone "
                              f"({band.source if band else 'none'}); test mIoU {miou:.3f}")
    else:
        fraction = performance_fraction(miou, band)
        perf = perf_max * fraction
        reason = (f"test mIoU {miou:.3f} against the band {band.lower:.3f}..{band.upper:.3f} "
                  f"(untrained {band.untrained:.3f}): {fraction:.0%} of the performance marks")
        if miou > band.upper:
            detail["flags"].append(f"test mIoU {miou:.3f} is above the reference band's upper edge "
                                   f"{band.upper:.3f}: worth a human look")
    detail["performance_points"] = None if perf is None else round(perf, 4)
    detail["performance"] = reason
    points = checks_points + (perf or 0.0)
    return replace(result, points=round(points, 4), max_points=round(share, 4), points_detail=detail)


def score(assignment: Assignment, variants: tuple[VariantResult, ...], bands: dict[str, Band] | None
          ) -> tuple[tuple[VariantResult, ...], Grade]:
    """`bands`: per variant id, the reference band (measured or not); None when nothing was
    trained (--checks-only)."""
    trained = bands is not None
    scored = tuple(score_variant(v, assignment, (bands or {}).get(v.variant_id), trained) for v in variants)
    manual = tuple(ManualItem(item.id, item.title, item.marks, item.prompts) for item in assignment.rubric
                   if item.manual)
    unscored = [v.variant_id for v in scored if v.points_detail.get("rubric_item")
                and v.points_detail.get("performance_points") is None]
    automatic_max = assignment.automatic_marks
    notes = []
    if unscored and trained:
        notes.append(f"performance not scored for {', '.join(unscored)}: no reference band was measured for "
                     "this profile; those points are not in the total")
    elif not trained:
        notes.append("checks only: performance marks are not scored without training")
    if manual:
        notes.append(f"{sum(m.max_points for m in manual):g} marks are manual "
                     f"({', '.join(m.id for m in manual)}): left blank for the grader")
    total = round(sum(v.points or 0.0 for v in scored), 2)
    passed = sum(v.status is VariantStatus.PASSED for v in scored)
    return scored, Grade(total=total, max_total=assignment.total_marks, automatic_max=automatic_max,
                         passed_variants=passed, total_variants=len(scored), manual=manual, note="; ".join(notes))
