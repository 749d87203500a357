"""Expected mIoU bands, measured by grading the reference solution several times.

`measure_bands` grades a reference solution (the bundled `reference/` unless told otherwise)
once per seed under one profile (each run also draws its own secret test split) and
summarises the test mIoU of every variant (on real data the same runs, scored on the
validation split, give the val band: `splits`); `write_bands` stores it, with its provenance, in
`<bands folder>/<profile>.json` (default `reference/bands/`) under the backbone start
("imagenet" or "random_init"). A bands file belongs to one assignment: `write_bands` refuses
to write into another assignment's file. `load_bands` reads the bands for scoring; a band
applies only to what it was measured under (`BandIdentity`: assignment, profile version,
training data, evaluation distribution); anything else comes back with measured=False and
the reason it does not apply, never invented.

Band edges (the documented rule, `band_edges`): lower = mean - 3 * max(std, 0.01),
upper = mean + 3 * max(std, 0.01). Three standard deviations, because std comes from a
handful of runs and each run also draws a fresh test split: with two, the reference itself
fell just below its own lower edge on one variant in one run of ten variants. The floor on
std keeps seeds that happened to agree from making the band razor-thin. Edges are derived
from the stored mean and std when a band is loaded, so the rule lives here only.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from grader import __version__
from grader.records.files import write_atomic
from grader.shared.resources import DEFAULT_SPEC, reference_dir
from grader.records.results import Band, SubmissionResult
from grader.spec import Assignment, Profile

BANDS_SCHEMA = "segrade.bands/1"
MIN_STD = 0.01
EDGE_STDS = 3.0
RULE = f"lower = mean - {EDGE_STDS:g}*max(std, {MIN_STD}), upper = mean + {EDGE_STDS:g}*max(std, {MIN_STD})"


def band_edges(mean: float, std: float) -> tuple[float, float]:
    spread = EDGE_STDS * max(std, MIN_STD)
    return round(mean - spread, 6), round(mean + spread, 6)


BACKBONES = ("imagenet", "random_init")


def backbone_key(pretrained: bool) -> str:
    return "imagenet" if pretrained else "random_init"


def bands_folder(folder: Path | None = None) -> Path:
    """Where bands and figures live: `folder`, else the reference's own bands/."""
    return folder or reference_dir() / "bands"


def bands_path(profile_id: str, folder: Path | None = None, split: str = "test") -> Path:
    """`<profile>.json` holds the band measured on the test split (grading); `<profile>.val.json`
    the one measured on the public validation split (students' self-checks on real data)."""
    return bands_folder(folder) / (f"{profile_id}.val.json" if split == "val" else f"{profile_id}.json")


def scoring_bands_path(profile_id: str, folder: Path | None = None, split: str = "test") -> Path:
    """The file a grade evaluated on `split` is scored against: a self-check reads the val band
    when one was measured, else the test band (which applies on the synthetic scenes, where
    both splits are draws from one generator; on real data its identity refuses it)."""
    if split == "val":
        val = bands_path(profile_id, folder, "val")
        if val.is_file():
            return val
    return bands_path(profile_id, folder)


def bands_command(assignment: Assignment, profile_id: str, folder: Path | None = None,
                  reference: Path | None = None, split: str | None = None) -> str:
    """The exact `segrade bands` command that measures what a grade of `assignment` needs, with the
    user's own spec, reference and bands folder (the default assignment's need none of them)."""
    parts = ["segrade bands"]
    if not assignment.is_default or assignment.path.resolve() != DEFAULT_SPEC.resolve():
        parts.append(f"--spec {assignment.path}")
    reference = reference or assignment.reference
    if reference is not None:
        parts.append(f"--reference {reference}")
    elif not assignment.is_default:
        parts.append("--reference REFERENCE_DIR")
    parts.append(f"--profile {profile_id}")
    if split:
        parts.append(f"--split {split}")
    if folder is not None:
        parts.append(f"--out {folder}")
    elif not assignment.is_default:
        parts.append("--out BANDS_DIR")
    return " ".join(parts)


def _summary(values: list[float]) -> dict[str, float]:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": round(mean, 6), "std": round(std, 6), "min": round(min(values), 6), "max": round(max(values), 6)}


class BandsError(ValueError):
    """A bands file cannot be written where it was asked to go."""


def _short(digest: str | None) -> str:
    return f"{digest[:12]}…" if digest else "unknown"


@dataclass(frozen=True)
class BandIdentity:
    """What determines a band's figures, and so which grades it applies to: the assignment,
    the profile and its training version (what shapes the trained model), the training data,
    and the distribution the mIoU is measured on. Not the number of validation or test
    images: those change how precisely the mIoU is measured, not what it is. So a student's
    self-check on the public validation split of the synthetic scenes is scored against the
    band measured on the hidden test split (both are draws from one generator), while on
    real data, whose splits are different images, a validation band is measured separately
    (`segrade bands --split val`)."""

    assignment: str
    profile: str
    profile_training_sha256: str
    training_data: str   # sha256 of the training images and masks at every size ("": not known yet)
    evaluation: str      # grader.grading.evaluation.evaluation_distribution ("": not known yet)

    def to_json(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def of_grade(cls, assignment: Assignment, profile: Profile, environment: dict[str, Any]) -> BandIdentity:
        """The identity of a grade from its results' environment (what a band measured from
        it applies to)."""
        return cls(assignment.id, profile.id, profile.training_sha256, environment.get("dataset_fingerprint") or "",
                   environment.get("evaluation_distribution") or "")


IDENTITY_FIELDS = tuple(f.name for f in fields(BandIdentity))


def _refusal(path: Path, identity: BandIdentity, measured: dict[str, Any], profile: Profile,
             command: str | None = None) -> str | None:
    """Why a band measured under `measured` (its provenance identity) does not apply to a
    grade under `identity`, with what to run (`command`: the exact `segrade bands` command for
    this grade, grader.grading.bands.bands_command); None when it applies."""
    run = command or f"segrade bands --profile {profile.id}"
    if not measured or set(measured) != set(IDENTITY_FIELDS):
        return f"{path.name} was measured before segrade recorded what identifies a band: run `{run}` again"
    # A field the caller left empty is not known yet (a batch plans before any data is prepared).
    if identity.profile_training_sha256 and measured["profile_training_sha256"] != identity.profile_training_sha256:
        return (f"{path.name} was measured under another version of the {profile.id!r} profile (its training "
                f"settings differ from this spec's): run `{run}` again")
    if identity.training_data and measured["training_data"] != identity.training_data:
        return (f"{path.name} was measured on other training data (dataset {_short(measured['training_data'])}, "
                f"this grade's {_short(identity.training_data)}): run `{run}` on this data")
    if identity.evaluation and measured["evaluation"] != identity.evaluation:
        if command is None:
            run = f"segrade bands --profile {profile.id} --split val --out DIR` and pass `--bands DIR"
        return (f"{path.name} was measured on {measured['evaluation']}, and this grade evaluates on "
                f"{identity.evaluation}: measure the bands there with `{run}`")
    return None


def load_bands(profile: Profile, backbone: str, variant_ids: list[str], folder: Path | None = None, *,
               identity: BandIdentity | None = None, split: str = "test",
               command: str | None = None) -> dict[str, Band]:
    """Each variant's band under `profile` and `backbone`, from one read of the profile's file.
    Given the grade's `identity`, a band measured for another assignment, profile version,
    training data or evaluation distribution does not apply: it comes back measured=False
    with the `refusal` saying why and what to run (`command`, when the caller knows the exact
    one). measured=False without a refusal: no band was measured. `split`: what the grade is
    evaluated on ("val" for a self-check reads `<profile>.val.json` when there is one)."""
    path = scoring_bands_path(profile.id, folder, split)
    missing = Band(measured=False, profile=profile.id, backbone=backbone, source=f"{path.name}: not measured")
    data = read_bands_file(path)
    entry = (data.get("backbones") or {}).get(backbone) or {}
    prov = entry.get("provenance", {})
    refusal = None
    if identity is not None and data.get("assignment") not in (None, identity.assignment):
        run = command or "segrade bands --spec FILE --reference DIR --out DIR"
        refusal = (f"{path} was measured for assignment {data['assignment']!r}, not {identity.assignment!r}: "
                   f"measure this assignment's bands with `{run}` and grade with `--bands DIR`")
    elif not entry.get("measured"):
        reason = entry.get('reason') or 'not measured'
        missing = replace(missing, source=f"{path.name}: {reason}" + (f"; measure them with `{command}`"
                                                                      if command and not data else ""))
    elif identity is not None:
        refusal = _refusal(path, identity, prov.get("identity") or {}, profile, command)
    if refusal is None and entry.get("measured"):
        measured = entry.get("variants") or {}
        return {vid: _band(profile, backbone, measured[vid], prov, path) if measured.get(vid) else missing
                for vid in variant_ids}
    if refusal is not None:
        missing = replace(missing, source=f"{path.name}: does not apply", refusal=refusal)
    return dict.fromkeys(variant_ids, missing)


def load_band(profile: Profile, backbone: str, variant_id: str, folder: Path | None = None, *,
              identity: BandIdentity | None = None) -> Band:
    return load_bands(profile, backbone, [variant_id], folder, identity=identity)[variant_id]


def _band(profile: Profile, backbone: str, stats: dict[str, Any], prov: dict[str, Any], path: Path) -> Band:
    lower, upper = band_edges(stats["mean"], stats["std"])
    runs = len(stats.get("runs", []))
    return Band(measured=True, profile=profile.id, backbone=backbone, mean=stats["mean"], std=stats["std"],
                min=stats["min"], max=stats["max"], lower=lower, upper=upper, untrained=stats.get("untrained_mean"),
                untrained_max=stats.get("untrained_max"),
                runs=runs, source=f"{path.name}: {runs} runs on {prov.get('device', '?')}, {prov.get('date', '?')[:10]}",
                per_class_iou={name: s["mean"] for name, s in (stats.get("per_class_iou") or {}).items() if s} or None)


def summarise_runs(results: list[SubmissionResult], class_names: tuple[str, ...]) -> dict[str, Any]:
    """Per variant: test mIoU statistics over the runs, the edges, the untrained baseline
    and per-class IoU statistics."""
    variants: dict[str, Any] = {}
    for vid in [v.variant_id for v in results[0].variants]:
        runs = [next(v for v in r.variants if v.variant_id == vid) for r in results]
        mious = [v.metrics["miou"] for v in runs if v.metrics and v.metrics.get("miou") is not None]
        if len(mious) < len(runs):
            raise RuntimeError(f"the reference's {vid} was not evaluated in every run: "
                               + "; ".join(c.message for v in runs for c in v.checks if c.status.value == "fail"))
        stats = _summary(mious)
        lower, upper = band_edges(stats["mean"], stats["std"])
        untrained = [v.metrics.get("untrained_miou") for v in runs if v.metrics.get("untrained_miou") is not None]
        per_class = {}
        for name in class_names:
            values = [v.metrics["per_class_iou"].get(name) for v in runs]
            values = [x for x in values if x is not None]
            per_class[name] = _summary(values) if values else None
        variants[vid] = stats | {
            "lower": lower, "upper": upper,
            "untrained_mean": round(statistics.fmean(untrained), 6) if untrained else None,
            # The spread of untrained models across initialisations (the runs' seeds, in provenance):
            # a trained model must beat the highest of them to count as learning (checks.check_learning)
            "untrained_max": round(max(untrained), 6) if untrained else None,
            "untrained_runs": [round(x, 6) for x in untrained],
            "runs": [round(x, 6) for x in mious], "per_class_iou": per_class,
        }
    return variants


def run_scores(by_split: dict[str, SubmissionResult]) -> str:
    """One run's mIoU per variant, for the progress line (split by split when there are two)."""
    return "; ".join((f"{split}: " if len(by_split) > 1 else "") + ", ".join(
        f"{v.variant_id} {v.metrics['miou']:.3f}" for v in result.variants
        if v.metrics and v.metrics.get("miou") is not None) for split, result in by_split.items())


def measure_bands(assignment: Assignment, profile: Profile, seeds: list[int],
                  grade: Callable[[int], tuple[SubmissionResult, ...]], splits: tuple[str, ...] = ("test",),
                  progress: Callable[[str], None] = print) -> dict[str, dict[str, Any]]:
    """Grade the reference once per seed (`grade(seed)`: one result per split of `splits`,
    the same training scored on each) and summarise; returns split -> the entry for one
    backbone start, provenance included."""
    started, results = time.perf_counter(), {split: [] for split in splits}
    for i, seed in enumerate(seeds, 1):
        t = time.perf_counter()
        graded = grade(seed)
        for split, result in zip(splits, graded, strict=True):
            results[split].append(result)
        progress(f"run {i}/{len(seeds)} (seed {seed}) took {time.perf_counter() - t:.0f} s: "
                 + run_scores(dict(zip(splits, graded))))
    seconds = time.perf_counter() - started
    return {split: {"measured": True, "variants": summarise_runs(runs, assignment.class_names),
                    "provenance": provenance(assignment, profile, runs, seeds, seconds)}
            for split, runs in results.items()}


def provenance(assignment: Assignment, profile: Profile, results: list[SubmissionResult], seeds: list[int],
               duration_s: float, **extra: Any) -> dict[str, Any]:
    """Where, when and from what a band was measured (the runs' `results`, the first one's
    environment), for `segrade bands` and for bands measured in a batch (`extra`: what the
    batch adds, e.g. its folder and runs)."""
    env = results[0].environment
    return {
        "device": env.get("device"), "torch": env.get("torch"), "python": env.get("python"),
        "segrade": __version__, "host": platform.node() or None, "platform": platform.platform(),
        "profile": profile.id, "profile_sha256": profile.sha256, "spec_sha256": assignment.sha256,
        "identity": BandIdentity.of_grade(assignment, profile, env).to_json(),
        "dataset": assignment.dataset.kind, "dataset_fingerprint": env.get("dataset_fingerprint"),
        "test_split": env.get("test_split"), "seeds": list(seeds),
        "pretrained_backbone": env.get("pretrained_backbone"), "backbone_weights": env.get("backbone_weights"),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "duration_s": round(duration_s, 1),
        **extra,
        "rule": RULE,
    }


def read_bands_file(path: Path) -> dict[str, Any]:
    """A bands file's data; {} when it is absent or unreadable (nothing measured)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _refuse_another_assignments(path: Path, data: dict[str, Any], assignment: Assignment) -> None:
    owner = data.get("assignment")
    if owner not in (None, assignment.id):
        raise BandsError(f"{path} holds the bands of assignment {owner!r}, not {assignment.id!r}: write this "
                         "assignment's bands to another folder with --out DIR, and grade with --bands DIR")


def check_writable(assignment: Assignment, profile: Profile, folder: Path | None = None, split: str = "test") -> Path:
    """The profile's bands file, after making sure it is not another assignment's (which
    `write_bands` would overwrite): raises BandsError naming the way out."""
    path = bands_path(profile.id, folder, split)
    _refuse_another_assignments(path, read_bands_file(path), assignment)
    return path


def write_bands(assignment: Assignment, profile: Profile, backbone: str, entry: dict[str, Any],
                folder: Path | None = None, split: str = "test") -> Path:
    """Store one backbone start's entry in the profile's file for `split` (the test and the val
    bands are two files), keeping the other backbone start's."""
    path = bands_path(profile.id, folder, split)
    data = read_bands_file(path)
    _refuse_another_assignments(path, data, assignment)
    data = {"schema": BANDS_SCHEMA, "assignment": assignment.id, "profile": profile.id,
            **({"split": "val"} if split == "val" else {}),
            "backbones": {key: {"measured": False, "reason": "not measured"} for key in BACKBONES}
            | data.get("backbones", {})}
    data["backbones"][backbone] = entry
    return write_atomic(path, json.dumps(data, indent=1, allow_nan=False) + "\n")



FIGURES_FILE = "figures.json"
FIGURE_KEYS = ("flops",)  # latency is left out: it depends on the machine and its load


def reference_figures(result: SubmissionResult) -> dict[str, Any]:
    """Per variant: parameters (total, trainable) and FLOPs at the family's size,
    from a grade of the reference, with where and when they were measured."""
    variants = {}
    for v in result.variants:
        params = v.figures.get("parameters") or {}
        variants[v.variant_id] = {"parameters": params.get("total"), "trainable": params.get("trainable"),
                                  **{k: v.figures.get(k) for k in FIGURE_KEYS}}
    return {"variants": variants, "provenance": {
        "device": result.environment.get("device"), "torch": result.environment.get("torch"),
        "segrade": __version__, "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}}


def write_figures(figures: dict[str, Any], folder: Path | None = None, assignment: Assignment | None = None) -> Path:
    """figures.json, with the assignment it belongs to (a course's figures are never read for another)."""
    owner = {"assignment": assignment.id} if assignment is not None else {}
    return write_atomic(bands_folder(folder) / FIGURES_FILE,
                        json.dumps({"schema": "segrade.figures/1", **owner, **figures}, indent=1) + "\n")


def figures_owner(data: dict[str, Any]) -> str:
    """The assignment a figures file belongs to; a file from before figures carried one was
    written for the default assignment (the only one segrade measured then)."""
    from grader.spec import DEFAULT_ASSIGNMENT_ID

    return data.get("assignment") or DEFAULT_ASSIGNMENT_ID


def load_figures(folder: Path | None = None, assignment_id: str | None = None) -> dict[str, dict[str, Any]]:
    """The reference's figures per variant id; empty when never measured, or (given
    `assignment_id`) measured for another assignment: another course's reference is no
    yardstick ("not measured" instead)."""
    try:
        data = json.loads((bands_folder(folder) / FIGURES_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or (assignment_id is not None and figures_owner(data) != assignment_id):
        return {}
    return data.get("variants", {})


def compare_figures(figures: dict[str, Any], reference: dict[str, Any] | None) -> dict[str, Any] | None:
    """Submission / reference ratios of parameters and FLOPs (informational)."""
    if not reference:
        return None
    params = (figures.get("parameters") or {}).get("total")
    out: dict[str, Any] = {"parameters": reference.get("parameters"), "flops": reference.get("flops")}
    if params and reference.get("parameters"):
        out["parameters_ratio"] = round(params / reference["parameters"], 3)
    if figures.get("flops") and reference.get("flops"):
        out["flops_ratio"] = round(figures["flops"] / reference["flops"], 3)
    return out
