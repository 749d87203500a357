"""Re-measuring a kept grade on its captured programs, without the submission (issue 26: appeals).

A grade keeps the programs it graded (`OUT/<id>/programs/`, `segrade check`'s `<out>/programs/`),
each named in results.json by its sha256. `reverify(folder, assignment, options)` runs the
verifier on them again, in the same sandbox, and judges what it measures with the same checks
(grader.grading.checks): build (the program loads and its hash is the recorded one), forward
shapes, logits, gradients, the frozen or fine-tuned backbone and the architecture. Training and
evaluation are not re-run (their figures stand as recorded; `segrade grade` trains again). The
student's code is never needed, nor imported.

`segrade verify FOLDER` prints each variant's re-measured checks beside the recorded ones and
writes FOLDER/verified.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from grader.grading.checks import check_variant
from grader.grading.sandbox import run_worker
from grader.grading.weights import find_vgg16_weights
from grader.records.files import read_results
from grader.records.results import CAPTURED_PROGRAM
from grader.shared.protocol import Observation, VerifierVariant, WorkerRequest
from grader.spec import Assignment

VERIFIED_NAME = "verified.json"


@dataclass(frozen=True)
class Reverified:
    """One variant: its checks' statuses as recorded and as re-measured now (check id -> status),
    or why it could not be re-measured (`not_measured`)."""
    variant_id: str
    recorded: dict[str, str]
    measured: dict[str, str] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)   # the re-measured checks' messages
    not_measured: str | None = None

    @property
    def changed(self) -> dict[str, tuple[str | None, str]]:
        """The re-measured checks whose status is not the recorded one: id -> (recorded, now)."""
        return {cid: (self.recorded.get(cid), status) for cid, status in self.measured.items()
                if self.recorded.get(cid) != status}

    def to_json(self) -> dict[str, Any]:
        return {"variant_id": self.variant_id, "recorded": self.recorded, "measured": self.measured,
                "messages": self.messages, "not_measured": self.not_measured,
                "changed": {k: list(v) for k, v in self.changed.items()}}


class ReverifyError(ValueError):
    """The folder cannot be re-verified; the message says why and what to do."""


def reverify(folder: Path, assignment: Assignment, options) -> list[Reverified]:
    """Re-measure the checks of the grade in `folder` (a results.json beside its programs/).
    `options`: a grader.grading.pipeline.GradeOptions (isolation, limits, device, weights)."""
    from grader.grading.pipeline import variant_request, verifier_limits

    result = read_results(folder)
    if result.assignment_id != assignment.id:
        raise ReverifyError(f"{folder} was graded for assignment {result.assignment_id!r}, not {assignment.id!r}: "
                            "pass that assignment's spec with --spec")
    programs = folder / "programs"
    weights = find_vgg16_weights(options.vgg16_weights)
    pretrained = bool(result.environment.get("pretrained_backbone")) and weights.available
    out: dict[str, Reverified] = {}
    targets = []
    for v in result.variants:
        recorded = {c.id: c.status.value for c in v.checks}
        program = v.program or {}
        spec_variant = next((s for s in assignment.variants if s.id == v.variant_id), None)
        files = [(info or {}).get("file") for info in (program.get("programs") or {}).values()]
        if spec_variant is None:
            why = "the spec has no such variant now"
        elif program.get("measured_in") != CAPTURED_PROGRAM:
            why = ("it was measured in the student's process: no program was kept"
                   if program else "no program was captured (it did not build, or was graded before capture)")
        elif not all(files) or not all((programs / f).is_file() for f in files):
            why = f"its programs are not in {programs} (segrade grade keeps them in OUT/<id>/programs/)"
        else:
            why = None
        if why:
            out[v.variant_id] = Reverified(v.variant_id, recorded, not_measured=why)
            continue
        request = variant_request(assignment, spec_variant, pretrained)
        targets.append(VerifierVariant(request, program["programs"], None, None, train=False))
        out[v.variant_id] = Reverified(v.variant_id, recorded)
    if targets:
        # The programs' build seed (older results: 0, the seed checks were built with then).
        seed = next((int(v.program.get("build_seed") or 0) for v in result.variants if v.program), 0)
        base = WorkerRequest(modules=(), variants=(), batch_size=options.batch_size, seed=seed, device=options.device,
                             threads=options.threads, cuda_memory_fraction=options.cuda_memory_fraction)
        request = base.for_verifier(tuple(targets), str(weights.path) if weights.available else None)
        run = run_worker(programs, request, limits=verifier_limits(options.limits), isolation=options.isolation,
                         readable=(weights.path,) if weights.available else (), entry="grader.verifier", link=True)
        for target in targets:
            observed = run.variants.get(target.id) or Observation.unfinished(
                target.id, "error", run.problem or "the verifier did not report on it")
            judged = check_variant(assignment.variant(target.id), observed, assignment, batch_size=options.batch_size)
            out[target.id] = Reverified(target.id, out[target.id].recorded,
                                        {c.id: c.status.value for c in judged.checks},
                                        {c.id: c.headline for c in judged.checks})
    order = [v.variant_id for v in result.variants]
    return [out[vid] for vid in order]


def write_verified(folder: Path, verified: list[Reverified]) -> Path:
    path = folder / VERIFIED_NAME
    path.write_text(json.dumps({"schema": "segrade.verified/1",
                                "verified_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                "variants": [v.to_json() for v in verified]}, indent=1))
    return path
