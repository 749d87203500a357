"""The class summary (summary.html) and the index of a results folder (index.html).

Both are computed from the submissions' typed records (grader.records.files.read_record):
a SubmissionResult per graded submission and an ErrorRecord per submission that could not
be graded at all: one row per submission with totals and per-variant points, a histogram of
totals, each variant's mIoU over the class against the reference band, the most frequent
failed checks, and a flagged list (crashes, timeouts, above-band results, missing variants)
for a human look.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import Any

from grader import __version__
from grader.report import figures
from grader.records.files import ErrorRecord
from grader.records.results import PROBLEM_STATUSES, Band, SubmissionResult
from grader.records.view import in_student_process
from grader.spec import Assignment


def summary_context(records: list[SubmissionResult | ErrorRecord], assignment: Assignment,
                    links: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    """What summary.html shows. `links`: per submission id, its files relative to the summary."""
    links = links or {}
    graded = [r for r in records if isinstance(r, SubmissionResult)]
    titles = {v.id: v.title for v in assignment.variants}
    rows, flagged, failed_checks = [], [], Counter()
    in_student = 0   # variants measured beside student code (grader.records.view.in_student_process)
    for r in sorted(records, key=lambda r: str(r.id)):
        sid = str(r.id)
        if isinstance(r, ErrorRecord):
            rows.append({"id": sid, "error": r.error, "total": None, "points": {}, "links": links.get(sid, {})})
            flagged.append({"id": sid, "what": f"not graded: {r.error}"})
            continue
        points = {v.variant_id: (v.points, v.max_points, v.status.value) for v in r.variants}
        rows.append({"id": sid, "error": None, "total": r.total, "passed": r.grade.passed_variants,
                     "of": r.grade.total_variants, "points": points, "links": links.get(sid, {})})
        if r.environment.get("worker_problem"):
            flagged.append({"id": sid, "what": f"worker: {r.environment['worker_problem']}"})
        student = in_student_process(r)
        if student:
            in_student += len(student)
            flagged.append({"id": sid, "what": "measured in the student's process (not captured): "
                                               + ", ".join(titles.get(v, v) for v in student)})
        for v in r.variants:
            if v.status in PROBLEM_STATUSES:
                failure = v.first_problem
                flagged.append({"id": sid, "what": f"{titles.get(v.variant_id, v.variant_id)}: "
                                                   f"{v.status.value}{': ' + failure.message if failure and failure.message else ''}"})
            for flag in v.points_detail.get("flags", []):
                flagged.append({"id": sid, "what": f"{titles.get(v.variant_id, v.variant_id)}: {flag}"})
            for c in v.checks:
                if c.status == "fail":
                    failed_checks[(v.variant_id, c.id)] += 1
    totals = [r.total for r in graded if r.total is not None]
    automatic_max = assignment.automatic_marks
    mious = {v.id: [m for r in graded for x in r.variants if x.variant_id == v.id and (m := x.miou) is not None]
             for v in assignment.variants}
    bands: dict[str, Band | None] = {}
    for r in graded:
        for x in r.variants:
            if not (bands.get(x.variant_id) and bands[x.variant_id].measured):  # the first measured band wins
                bands[x.variant_id] = x.band
    return {
        "assignment": assignment, "segrade_version": __version__,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "variants": assignment.variants, "rows": rows, "count": len(records), "graded": len(graded),
        "mean_total": sum(totals) / len(totals) if totals else None, "automatic_max": automatic_max,
        "histogram": figures.histogram_chart(totals, automatic_max, "automatic points"),
        "distribution": figures.distribution_chart(mious, bands, titles),
        "failed_checks": [{"variant": titles.get(vid, vid), "check": cid, "count": n}
                          for (vid, cid), n in failed_checks.most_common(12)],
        "flagged": flagged,
        "in_student_process": in_student,
        "profiles": sorted({r.environment.get("profile") or "checks only" for r in graded}),
        # bands measured for this batch on the grader's hardware (grader.batch.bands), said once
        "bands_notes": sorted({n for r in graded if (n := r.environment.get("bands_note"))}),
    }
