"""Why a grade changed: a re-run of `segrade grade` that regrades a submission compares the
new results with the ones it replaces (OUT/<id>/results.json, or error.json) and writes
OUT/<id>/changes.json; the submission's report shows it, and the batch's `changes.csv` lists
every regraded submission variant by variant (old -> new).

changes.json (schema `segrade.changes/1`): `previous` (when it was graded, its segrade
version, total, or the error that stopped it), `reasons` (what differs in what the grade
depends on: the submission's content, the assignment spec, the profile, the bands of a
variant, segrade's version, the device, the backbone weights, the training seed),
`total` (`old`, `new`, `delta`), and `variants[]`, one per variant whose points, status or checks
changed: `variant_id`, `title`, `old_points`, `new_points`, `delta`, `old_status`,
`new_status`, `checks` ("architecture: pass -> fail"), `old_miou`, `new_miou`.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from grader.records.files import ErrorRecord, ResultsError, read_record, write_atomic
from grader.records.results import Band, SubmissionResult

CHANGES_FILE = "changes.json"
CHANGES_CSV = "changes.csv"
CSV_COLUMNS = ("submission", "variant", "old_points", "new_points", "delta", "old_status", "new_status", "checks",
               "reasons")


def _short(value: Any) -> str:
    return str(value)[:12] if value else "none"


def _points(value: Any) -> float | None:
    return None if value is None else round(float(value), 4)


def _band_text(band: Band | None) -> str:
    return band.range_text("–") if band is not None and band.measured else "no band"


def reasons(old: SubmissionResult, new: SubmissionResult) -> list[str]:
    """What the two grades were made from, where it differs, in words."""
    out = []
    if old.submission.sha256 != new.submission.sha256:
        out.append(f"the submission's content changed (sha256 {_short(old.submission.sha256)} → "
                   f"{_short(new.submission.sha256)})")
    if old.spec_sha256 != new.spec_sha256:
        out.append(f"the assignment spec changed (sha256 {_short(old.spec_sha256)} → {_short(new.spec_sha256)})")
    old_env, new_env = old.environment, new.environment
    profile = ("profile", "profile_sha256")
    if [old_env.get(k) for k in profile] != [new_env.get(k) for k in profile]:
        out.append(f"the training profile changed ({old_env.get('profile') or 'checks only'} "
                   f"{_short(old_env.get('profile_sha256'))} → {new_env.get('profile') or 'checks only'} "
                   f"{_short(new_env.get('profile_sha256'))})")
    old_bands = {v.variant_id: v.band for v in old.variants}
    moved = [f"{v.variant_id} {_band_text(old_bands[v.variant_id])} → {_band_text(v.band)}"
             for v in new.variants if v.variant_id in old_bands
             and _band_text(old_bands[v.variant_id]) != _band_text(v.band)]
    if moved:
        out.append("the reference bands changed: " + "; ".join(moved))
    if old.segrade_version != new.segrade_version:
        out.append(f"segrade {old.segrade_version} → {new.segrade_version}")
    for name, what in (("device", "the device"), ("backbone_weights", "the FCN backbone's start"),
                       ("training_seed", "the training seed"), ("evaluation_split", "the evaluation split")):
        if old_env.get(name) != new_env.get(name):
            out.append(f"{what} changed ({old_env.get(name)} → {new_env.get(name)})")
    return out


def compare(old: SubmissionResult | None, new: SubmissionResult, old_error: ErrorRecord | None = None
            ) -> dict[str, Any] | None:
    """changes.json's data, from the replaced grade (`old`) or error (`old_error`) and the new
    grade; None when there was no previous grade."""
    if old is None and old_error is None:
        return None
    new_total = _points(new.total)
    if old is None:
        return {"schema": "segrade.changes/1",
                "previous": {"started_at": None, "segrade_version": old_error.segrade_version, "total": None,
                             "error": old_error.error},
                "reasons": [f"it could not be graded before: {old_error.error}"],
                "total": {"old": None, "new": new_total, "delta": None},
                "variants": [{"variant_id": v.variant_id, "title": v.title, "old_points": None,
                              "new_points": _points(v.points), "delta": None, "old_status": None,
                              "new_status": v.status.value, "checks": [], "old_miou": None, "new_miou": v.miou}
                             for v in new.variants]}
    old_total = _points(old.total)
    variants = []
    for v in new.variants:
        before = old.variant(v.variant_id)
        old_checks = {c.id: c.status.value for c in before.checks} if before else {}
        new_checks = {c.id: c.status.value for c in v.checks}
        checks = [f"{cid}: {old_checks.get(cid, 'not run')} → {new_checks.get(cid, 'not run')}"
                  for cid in dict.fromkeys([*old_checks, *new_checks]) if old_checks.get(cid) != new_checks.get(cid)]
        old_points, new_points = _points(before.points if before else None), _points(v.points)
        old_status = before.status.value if before else None
        if old_points == new_points and old_status == v.status and not checks:
            continue
        variants.append({"variant_id": v.variant_id, "title": v.title, "old_points": old_points,
                         "new_points": new_points,
                         "delta": None if old_points is None or new_points is None
                         else round(new_points - old_points, 4),
                         "old_status": old_status, "new_status": v.status.value, "checks": checks,
                         "old_miou": before.miou if before else None, "new_miou": v.miou})
    return {"schema": "segrade.changes/1",
            "previous": {"started_at": old.started_at, "segrade_version": old.segrade_version,
                         "total": old_total, "error": None},
            "reasons": reasons(old, new) or ["nothing segrade records differs (the same inputs graded again)"],
            "total": {"old": old_total, "new": new_total,
                      "delta": None if old_total is None or new_total is None else round(new_total - old_total, 4)},
            "variants": variants}


def note_changes(previous: Path, new: SubmissionResult, staging: Path) -> dict[str, Any] | None:
    """Compare the grade in `previous` (the folder being replaced) with the `new` one; write
    staging/changes.json when there was a previous grade it can read."""
    if not previous.is_dir():
        return None
    try:
        record = read_record(previous)
    except ResultsError:  # nothing readable to compare with: said nowhere, as for a first grade
        return None
    changes = compare(*((None, new, record) if isinstance(record, ErrorRecord) else (record, new)))
    if changes is not None:
        write_atomic(staging / CHANGES_FILE, json.dumps(changes, indent=1) + "\n")
    return changes


def read_changes(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(folder) / CHANGES_FILE).read_text())
    except (OSError, ValueError):
        return None


def write_changes_csv(root: Path, ids: list[str]) -> Path:
    """changes.csv: per regraded submission of `ids` with a previous grade, one `total` row and
    one row per changed variant (old -> new points and status, checks that changed, and why)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    num = lambda v: "" if v is None else f"{v:g}"  # noqa: E731
    for sid in ids:
        changes = read_changes(root / sid)
        if not changes:
            continue
        why = "; ".join(changes["reasons"])
        total = changes["total"]
        writer.writerow([sid, "total", num(total["old"]), num(total["new"]), num(total["delta"]), "", "", "", why])
        for v in changes["variants"]:
            writer.writerow([sid, v["variant_id"], num(v["old_points"]), num(v["new_points"]), num(v["delta"]),
                             v["old_status"] or "", v["new_status"], "; ".join(v["checks"]), why])
    return write_atomic(root / CHANGES_CSV, buffer.getvalue())
