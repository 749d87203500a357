"""The class summary (summary.html) and the index of a results folder (index.html).

Both are computed from the submissions' results.json data, plus error rows
({"submission": {"id"}, "error"}) for submissions that could not be graded at all:
one row per submission with totals and per-variant points, a histogram of totals, each
variant's mIoU over the class against the reference band, the most frequent failed checks,
and a flagged list (crashes, timeouts, above-band results, missing variants) for a human look.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import Any

from grader.report.programs import in_student_process
from grader import __version__
from grader.report import figures
from grader.report.files import first_check
from grader.records.results import PROBLEM_STATUSES  # str-valued: "error" in PROBLEM_STATUSES holds
from grader.spec import Assignment


def summary_context(results_list: list[dict[str, Any]], assignment: Assignment,
                    links: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    """What summary.html shows. `links`: per submission id, its files relative to the summary."""
    links = links or {}
    graded = [r for r in results_list if "error" not in r]
    titles = {v.id: v.title for v in assignment.variants}
    rows, flagged, failed_checks = [], [], Counter()
    in_student = 0   # variants measured beside student code (grader.report.programs)
    for r in sorted(results_list, key=lambda r: str(r["submission"]["id"])):
        sid = str(r["submission"]["id"])
        if "error" in r:
            rows.append({"id": sid, "error": r["error"], "total": None, "points": {}, "links": links.get(sid, {})})
            flagged.append({"id": sid, "what": f"not graded: {r['error']}"})
            continue
        points = {v["variant_id"]: (v.get("points"), v.get("max_points"), v["status"]) for v in r["variants"]}
        rows.append({"id": sid, "error": None, "total": r.get("total"), "passed": r["grade"]["passed_variants"],
                     "of": r["grade"]["total_variants"], "points": points, "links": links.get(sid, {})})
        if r["environment"].get("worker_problem"):
            flagged.append({"id": sid, "what": f"worker: {r['environment']['worker_problem']}"})
        student = in_student_process(r)
        if student:
            in_student += len(student)
            flagged.append({"id": sid, "what": "measured in the student's process (not captured): "
                                               + ", ".join(titles.get(v, v) for v in student)})
        for v in r["variants"]:
            if v["status"] in PROBLEM_STATUSES:
                failure = first_check(v, "fail")
                flagged.append({"id": sid, "what": f"{titles.get(v['variant_id'], v['variant_id'])}: "
                                                   f"{v['status']}{': ' + failure['message'] if failure and failure['message'] else ''}"})
            for flag in (v.get("points_detail") or {}).get("flags", []):
                flagged.append({"id": sid, "what": f"{titles.get(v['variant_id'], v['variant_id'])}: {flag}"})
            for c in v.get("checks", []):
                if c["status"] == "fail":
                    failed_checks[(v["variant_id"], c["id"])] += 1
    totals = [r["total"] for r in graded if r.get("total") is not None]
    automatic_max = assignment.automatic_marks
    mious = {v.id: [m for r in graded for x in r["variants"] if x["variant_id"] == v.id
                    and (m := (x.get("metrics") or {}).get("miou")) is not None] for v in assignment.variants}
    bands = {}
    for r in graded:
        for x in r["variants"]:
            if not (bands.get(x["variant_id"]) or {}).get("measured"):  # the first measured band wins
                bands[x["variant_id"]] = x.get("band")
    return {
        "assignment": assignment, "segrade_version": __version__,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "variants": assignment.variants, "rows": rows, "count": len(results_list), "graded": len(graded),
        "mean_total": sum(totals) / len(totals) if totals else None, "automatic_max": automatic_max,
        "histogram": figures.histogram_chart(totals, automatic_max, "automatic points"),
        "distribution": figures.distribution_chart(mious, bands, titles),
        "failed_checks": [{"variant": titles.get(vid, vid), "check": cid, "count": n}
                          for (vid, cid), n in failed_checks.most_common(12)],
        "flagged": flagged,
        "in_student_process": in_student,
        "profiles": sorted({r["environment"].get("profile") or "checks only" for r in graded}),
        # bands measured for this batch on the grader's hardware (grader.batch.bands), said once
        "bands_notes": sorted({n for r in graded if (n := r["environment"].get("bands_note"))}),
    }
