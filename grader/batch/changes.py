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

CHANGES_FILE = "changes.json"
CHANGES_CSV = "changes.csv"
CSV_COLUMNS = ("submission", "variant", "old_points", "new_points", "delta", "old_status", "new_status", "checks",
               "reasons")


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _short(value: Any) -> str:
    return str(value)[:12] if value else "none"


def _points(value: Any) -> float | None:
    return None if value is None else round(float(value), 4)


def _band_text(band: dict | None) -> str:
    if not band or not band.get("measured"):
        return "no band"
    return f"{band.get('lower', 0):.3f}–{band.get('upper', 0):.3f}"


def reasons(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What the two grades were made from, where it differs, in words."""
    out = []
    old_sub, new_sub = old.get("submission") or {}, new.get("submission") or {}
    if old_sub.get("sha256") != new_sub.get("sha256"):
        out.append(f"the submission's content changed (sha256 {_short(old_sub.get('sha256'))} → "
                   f"{_short(new_sub.get('sha256'))})")
    if old.get("spec_sha256") != new.get("spec_sha256"):
        out.append(f"the assignment spec changed (sha256 {_short(old.get('spec_sha256'))} → "
                   f"{_short(new.get('spec_sha256'))})")
    old_env, new_env = old.get("environment") or {}, new.get("environment") or {}
    profile = ("profile", "profile_sha256")
    if [old_env.get(k) for k in profile] != [new_env.get(k) for k in profile]:
        out.append(f"the training profile changed ({old_env.get('profile') or 'checks only'} "
                   f"{_short(old_env.get('profile_sha256'))} → {new_env.get('profile') or 'checks only'} "
                   f"{_short(new_env.get('profile_sha256'))})")
    old_bands = {v["variant_id"]: v.get("band") for v in old.get("variants", [])}
    moved = [f"{v['variant_id']} {_band_text(old_bands.get(v['variant_id']))} → {_band_text(v.get('band'))}"
             for v in new.get("variants", []) if v["variant_id"] in old_bands
             and _band_text(old_bands[v["variant_id"]]) != _band_text(v.get("band"))]
    if moved:
        out.append("the reference bands changed: " + "; ".join(moved))
    if old.get("segrade_version") != new.get("segrade_version"):
        out.append(f"segrade {old.get('segrade_version')} → {new.get('segrade_version')}")
    for name, what in (("device", "the device"), ("backbone_weights", "the FCN backbone's start"),
                       ("training_seed", "the training seed"), ("evaluation_split", "the evaluation split")):
        if old_env.get(name) != new_env.get(name):
            out.append(f"{what} changed ({old_env.get(name)} → {new_env.get(name)})")
    return out


def compare(old: dict[str, Any] | None, new: dict[str, Any], old_error: dict[str, Any] | None = None
            ) -> dict[str, Any] | None:
    """changes.json's data, from the replaced results (`old`) or error (`old_error`) and the new
    results; None when there was no previous grade."""
    if old is None and old_error is None:
        return None
    new_total = _points(new.get("total"))
    if old is None:
        return {"schema": "segrade.changes/1",
                "previous": {"started_at": None, "segrade_version": old_error.get("segrade_version"), "total": None,
                             "error": old_error.get("error")},
                "reasons": [f"it could not be graded before: {old_error.get('error')}"],
                "total": {"old": None, "new": new_total, "delta": None},
                "variants": [{"variant_id": v["variant_id"], "title": v.get("title", v["variant_id"]),
                              "old_points": None, "new_points": _points(v.get("points")), "delta": None,
                              "old_status": None, "new_status": v["status"], "checks": [], "old_miou": None,
                              "new_miou": (v.get("metrics") or {}).get("miou")} for v in new.get("variants", [])]}
    old_total = _points(old.get("total"))
    old_variants = {v["variant_id"]: v for v in old.get("variants", [])}
    variants = []
    for v in new.get("variants", []):
        before = old_variants.get(v["variant_id"], {})
        old_checks = {c["id"]: c["status"] for c in before.get("checks", [])}
        new_checks = {c["id"]: c["status"] for c in v.get("checks", [])}
        checks = [f"{cid}: {old_checks.get(cid, 'not run')} → {new_checks.get(cid, 'not run')}"
                  for cid in dict.fromkeys([*old_checks, *new_checks]) if old_checks.get(cid) != new_checks.get(cid)]
        old_points, new_points = _points(before.get("points")), _points(v.get("points"))
        if old_points == new_points and before.get("status") == v["status"] and not checks:
            continue
        variants.append({"variant_id": v["variant_id"], "title": v.get("title", v["variant_id"]),
                         "old_points": old_points, "new_points": new_points,
                         "delta": None if old_points is None or new_points is None
                         else round(new_points - old_points, 4),
                         "old_status": before.get("status"), "new_status": v["status"], "checks": checks,
                         "old_miou": (before.get("metrics") or {}).get("miou"),
                         "new_miou": (v.get("metrics") or {}).get("miou")})
    return {"schema": "segrade.changes/1",
            "previous": {"started_at": old.get("started_at"), "segrade_version": old.get("segrade_version"),
                         "total": old_total, "error": None},
            "reasons": reasons(old, new) or ["nothing segrade records differs (the same inputs graded again)"],
            "total": {"old": old_total, "new": new_total,
                      "delta": None if old_total is None or new_total is None else round(new_total - old_total, 4)},
            "variants": variants}


def note_changes(previous: Path, staging: Path) -> dict[str, Any] | None:
    """Compare the grade in `previous` (the folder being replaced) with the new one in
    `staging`; write staging/changes.json when there was a previous grade."""
    new = _read(staging / "results.json")
    if new is None or not previous.is_dir():
        return None
    changes = compare(_read(previous / "results.json"), new,
                      None if (previous / "results.json").is_file() else _read(previous / "error.json"))
    if changes is not None:
        from grader.records.files import write_atomic

        write_atomic(staging / CHANGES_FILE, json.dumps(changes, indent=1) + "\n")
    return changes


def read_changes(folder: Path) -> dict[str, Any] | None:
    return _read(Path(folder) / CHANGES_FILE)


def write_changes_csv(root: Path, ids: list[str]) -> Path:
    """changes.csv: per regraded submission of `ids` with a previous grade, one `total` row and
    one row per changed variant (old -> new points and status, checks that changed, and why)."""
    from grader.records.files import write_atomic

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
