"""Bands measured on the grader's own hardware, as jobs of the batch (`segrade grade`).

When the bands of the chosen profile do not apply (missing, measured for another profile
version or other data) and no `--bands DIR` was given, the batch grades the reference K
times (seeds 1..K, default 3) as ordinary jobs beside the submissions (local processes or
Slurm tasks alike), into OUT/bands/runs/<profile>-seed<k>/. When they are done it writes
OUT/bands/<profile>.json (grader.grading.bands.write_bands, with full provenance: device and GPU
model, torch, segrade, seeds, host, date, that it was measured for this batch), and every
submission is rescored against it from its saved results (grader.batch.rescore): the grades do
not wait for the reference, and nothing is trained twice. A re-run finds the file and
reuses it; `--bands DIR` reuses one from elsewhere; `--no-measure-bands` keeps the old
behaviour (performance unscored, "no band").

The reference runs are evaluated on the batch's own hidden test split, the one every
submission is scored on.
"""

from __future__ import annotations

import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_SEEDS = 3
BANDS_DIR = "bands"


@dataclass
class BandsPlan:
    folder: Path | None                 # the bands folder the batch scores against (None: reference/bands)
    entries: list = field(default_factory=list)  # reference runs to grade in this batch (BatchEntry)
    message: str = ""
    measured_here: bool = False         # OUT/bands: measured for this batch (now or by an earlier run)
    profile: Any = None
    backbone: str = ""
    seeds: list[int] = field(default_factory=list)
    reference: Path | None = None


def _applies(assignment, profile, folder: Path | None, backbone: str) -> tuple[bool, str]:
    """Whether the bands in `folder` can score this batch, and if not why: grader.grading.bands.load_bands
    decides (assignment, measured, profile version); the data's identity is compared when
    each grade is scored, so here a band measured on another kind of dataset is refused early."""
    from grader.grading.bands import BandIdentity, bands_path, load_bands, read_bands_file

    path = bands_path(profile.id, folder)
    if not path.is_file():
        return False, "no bands file"
    # The data is not prepared yet: its fingerprint and evaluation distribution are compared
    # when each grade is scored.
    identity = BandIdentity(assignment.id, profile.id, profile.training_sha256, "", "")
    bands = load_bands(profile, backbone, [v.id for v in assignment.variants], folder, identity=identity)
    measured = [b for b in bands.values() if b.measured]
    if not measured:
        return False, next(iter(bands.values())).source if bands else "no variants"
    entry = (read_bands_file(path).get("backbones") or {}).get(backbone) or {}
    kind = (entry.get("provenance") or {}).get("dataset")
    if kind not in (None, assignment.dataset.kind):
        return False, f"measured on the {kind!r} dataset, not {assignment.dataset.kind!r}"
    return True, ""


def plan_bands(assignment, options, out: Path, device: str, *, measure: bool = True, seeds: int = DEFAULT_SEEDS,
               reference: str | Path | None = None) -> BandsPlan:
    """Which bands the batch scores against, and the reference runs to add when they must be
    measured here."""
    from grader.grading.bands import FIGURES_FILE, backbone_key, bands_folder, bands_path
    from grader.batch.job import BatchEntry
    from grader.grading.pipeline import resolve_profile
    from grader.shared.resources import reference_dir
    from grader.grading.weights import find_vgg16_weights

    profile, _ = resolve_profile(assignment, options)
    if profile is None or options.weights:
        return BandsPlan(options.bands_folder)
    if options.bands_folder is not None:
        return BandsPlan(options.bands_folder, message=f"bands from {bands_path(profile.id, options.bands_folder)}")
    backbone = backbone_key(profile.pretrained and assignment.has_family_with_pretrained_backbone()
                            and find_vgg16_weights(options.vgg16_weights).available)
    own = Path(out).resolve() / BANDS_DIR
    ok, _ = _applies(assignment, profile, own, backbone)
    if ok:
        return BandsPlan(own, message=f"scoring against the bands measured for this batch: "
                                      f"{bands_path(profile.id, own)}", measured_here=True)
    ok, why = _applies(assignment, profile, None, backbone)
    if ok:
        return BandsPlan(None)
    base = f"the {profile.id!r} bands do not apply here ({why})"
    if not measure:
        return BandsPlan(None, message=f"{base}: performance marks are not scored (--no-measure-bands)")
    if reference is None and not assignment.is_default:
        reference = assignment.reference_dir()   # the spec's [assignment] reference
        if reference is None:
            return BandsPlan(None, message=f"{base}, and this course's reference solution was not given: performance "
                                           "marks are not scored; pass --reference DIR to measure them in the batch")
    elif reference is None:
        reference = reference_dir()
        # The reference's parameters and FLOPs (compared in every report) stay where the jobs look.
        figures = bands_folder() / FIGURES_FILE
        if figures.is_file() and not (own / FIGURES_FILE).is_file():
            own.mkdir(parents=True, exist_ok=True)
            shutil.copy2(figures, own / FIGURES_FILE)
    reference = Path(reference).resolve()
    seed_list = list(range(1, seeds + 1))
    entries = [BatchEntry(f"reference-seed{s}", reference, seed=s, folder=f"{BANDS_DIR}/runs/{profile.id}-seed{s}")
               for s in seed_list]
    return BandsPlan(own, entries, f"{base}: grading the reference {seeds} times (seeds {seed_list[0]}.."
                                   f"{seed_list[-1]}) as jobs of this batch, then scoring every submission against "
                                   f"the bands measured from them ({bands_path(profile.id, own)})",
                     measured_here=True, profile=profile, backbone=backbone, seeds=seed_list, reference=reference)


def finish_bands(plan: BandsPlan, out: Path, assignment, options) -> str:
    """Summarise the reference runs of the batch into OUT/bands/<profile>.json; one line
    saying what was written, or why not (then the performance marks stay unscored)."""
    from grader.grading.bands import bands_path, provenance, summarise_runs, write_bands
    from grader.batch.job import read_done
    from grader.submission.load import fingerprint
    from grader.records.files import ResultsError, read_results

    out = Path(out)
    results, problems = [], []
    for entry in plan.entries:
        folder = out / entry.target
        if not read_done(folder) or not (folder / "results.json").is_file():
            problems.append(f"{entry.id} was not graded")
            continue
        try:
            result = read_results(folder)
        except ResultsError as exc:
            problems.append(str(exc))
            continue
        failed = [v.variant_id for v in result.variants if v.status != "passed"]
        if failed:
            problems.append(f"{entry.id} failed {', '.join(failed)} (see {folder}/report.html)")
        results.append(result)
    if problems:
        return ("bands NOT measured for this batch: " + "; ".join(problems)
                + ". Performance marks are not scored; fix the reference and run again")
    try:
        variants = summarise_runs(results, assignment.class_names)
    except RuntimeError as exc:
        return f"bands NOT measured for this batch: {exc}"
    devices = sorted({str(r.environment.get("device")) for r in results})
    entry = {"measured": True, "variants": variants, "provenance": provenance(
        assignment, plan.profile, results, plan.seeds, statistics.fsum(float(r.duration_s) for r in results),
        measured_for="this batch (segrade grade measured the reference as jobs of the batch)",
        batch=str(out.resolve()), devices=devices, reference=str(plan.reference),
        reference_sha256=fingerprint(plan.reference), runs=[str((out / e.target).resolve()) for e in plan.entries])}
    path = write_bands(assignment, plan.profile, plan.backbone, entry, plan.folder)
    assert path == bands_path(plan.profile.id, plan.folder)
    means = ", ".join(f"{vid} {s['mean']:.3f}±{s['std']:.3f}" for vid, s in variants.items())
    return f"bands measured for this batch on {results[0].environment.get('device')}: wrote {path} ({means})"
