"""The GPU check (benchmarks/gpu_check.sh): on a machine with one CUDA GPU, one `segrade grade`
batch that measures the `full` bands of the reference (3 seeds, all 10 variants) as jobs of
the batch, several sharing the GPU, and grades one example submission in `full` against
them; then prints, per variant, the reference's mIoU (mean ± std, band), the submission's
mIoU, training seconds and peak GPU memory, and the batch's wall time against its budget.

The bands land in OUT/bands/full.json with their provenance (GPU model, torch, segrade,
seeds, date). After reading them: `cp OUT/bands/full.json reference/bands/full.json`,
commit, and report the figures printed here.

The same logic runs on a CPU with a tiny profile (tests/test_slurm.py), so the script is
tested before a GPU is at hand:

    benchmarks/gpu_check.sh                                   # on the GPU machine
    .venv/bin/python benchmarks/gpu_check.py --spec S --profile tiny --device cpu --allow-cpu ...
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _mean(values):
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _fmt(value, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def run(argv: list[str] | None = None) -> dict:
    from grader.batch.grade import BatchEvents, BatchOptions, grade_batch
    from grader.report.outputs import ReportOptions
    from grader.shared.device import resolve_device
    from grader.grading.pipeline import GradeOptions
    from grader.spec import load_spec

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submission", default=str(ROOT / "submissions" / "alice_package"),
                        help="the example submission graded against the measured bands")
    parser.add_argument("--spec", help="assignment spec (default: segrade's)")
    parser.add_argument("--profile", default="full")
    parser.add_argument("--seeds", type=int, default=3, help="reference runs (default 3)")
    parser.add_argument("--jobs", type=int, default=4, help="jobs sharing the GPU (default 4: 3 reference runs and "
                        "the submission at once)")
    parser.add_argument("--reference", help="the reference solution (default: segrade's reference/)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--vgg16-weights", help="ImageNet VGG16 weights, for the full profile's FCN backbones")
    parser.add_argument("--out", help="output folder (default: a fresh one under benchmarks/out/)")
    parser.add_argument("--budget", type=float, default=480.0, help="seconds the batch should take at most (8 min)")
    parser.add_argument("--allow-cpu", action="store_true", help="run without CUDA (the CPU test of this logic)")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    if device.type != "cuda" and not args.allow_cpu:
        sys.exit(f"gpu_check: no CUDA device here ({device.type}); this check is for a GPU machine "
                 "(--allow-cpu runs the same logic anyway, with a small profile)")
    description = str(device)
    if device.type == "cuda":
        import torch

        description = f"cuda ({torch.cuda.get_device_name(device)}, "
        description += f"{torch.cuda.get_device_properties(device).total_memory / 2**30:.0f} GiB)"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "out" / f"gpu_check-{stamp}"
    assignment = load_spec(args.spec)
    with tempfile.TemporaryDirectory(prefix="segrade-gpu-check-") as tmp:
        folder = Path(tmp) / "submissions"
        source = Path(args.submission)
        name = source.stem if source.is_file() else source.name
        folder.mkdir()
        (shutil.copy2 if source.is_file() else shutil.copytree)(source, folder / source.name)
        options = GradeOptions(profile=args.profile, device=args.device, vgg16_weights=args.vgg16_weights)
        print(f"gpu_check: {description}; profile {args.profile}; {args.seeds} reference runs + 1 submission, "
              f"{args.jobs} jobs at once; output {out}", flush=True)
        started = time.perf_counter()
        summary = grade_batch(folder, out, assignment, options,
                              BatchOptions(jobs=args.jobs, report=ReportOptions(pdf=False), band_seeds=args.seeds,
                                           reference=args.reference),
                              BatchEvents(on_note=lambda m: print(f"  {m}", flush=True),
                                          on_done=lambda o: print(f"  done: {o.id} ({o.seconds:.0f} s)", flush=True)))
        wall = time.perf_counter() - started

    bands_file = out / "bands" / f"{args.profile}.json"
    bands = json.loads(bands_file.read_text()) if bands_file.is_file() else {}
    entry = next((e for e in (bands.get("backbones") or {}).values() if e.get("measured")), {})
    runs = sorted((out / "bands" / "runs").glob(f"{args.profile}-seed*/results.json"))
    reference = [json.loads(p.read_text()) for p in runs]
    submission = json.loads((out / name / "results.json").read_text()) if (out / name / "results.json").is_file() \
        else None

    def variant(data, vid):
        return next((v for v in data["variants"] if v["variant_id"] == vid), {}) if data else {}

    rows = []
    print(f"\n{'variant':18s} {'ref mIoU':>14s} {'band':>13s} {'student':>8s} {'ref s':>7s} {'stud s':>7s} "
          f"{'peak MB':>8s}")
    for v in assignment.variants:
        stats = (entry.get("variants") or {}).get(v.id) or {}
        ref_seconds = _mean([(variant(r, v.id).get("training") or {}).get("seconds") for r in reference])
        peaks = [(variant(r, v.id).get("training") or {}).get("peak_gpu_memory_mb") for r in [*reference, submission]
                 if r]
        peak = max([p for p in peaks if p is not None], default=None)
        mine = variant(submission, v.id)
        row = {"variant": v.id, "ref_mean": stats.get("mean"), "ref_std": stats.get("std"),
               "lower": stats.get("lower"), "upper": stats.get("upper"),
               "student_miou": (mine.get("metrics") or {}).get("miou"),
               "ref_seconds": ref_seconds, "student_seconds": (mine.get("training") or {}).get("seconds"),
               "peak_gpu_memory_mb": peak}
        rows.append(row)
        ref = f"{_fmt(row['ref_mean'])}±{_fmt(row['ref_std'])}" if stats else "not measured"
        band = f"{_fmt(row['lower'], '.2f')}..{_fmt(row['upper'], '.2f')}" if stats else "—"
        print(f"{v.id:18s} {ref:>14s} {band:>13s} {_fmt(row['student_miou']):>8s} {_fmt(ref_seconds, '.0f'):>7s} "
              f"{_fmt(row['student_seconds'], '.0f'):>7s} {_fmt(peak, '.0f'):>8s}")
    verdict = "within" if wall <= args.budget else "OVER"
    print(f"\nbatch wall time {wall:.0f} s: {verdict} the {args.budget:.0f} s budget; "
          f"{len(summary.errors)} submission(s) not graded")
    if submission:
        print(f"submission {name}: {submission['total']} / {submission['grade']['automatic_max']} automatic points")
    if bands_file.is_file():
        print(f"bands: {bands_file}; review, then `cp {bands_file} reference/bands/{args.profile}.json` and commit")
    else:
        print("bands: NOT measured (see the notes above)")
    report = {"device": description, "profile": args.profile, "wall_s": round(wall, 1), "budget_s": args.budget,
              "within_budget": wall <= args.budget, "bands_file": str(bands_file) if bands_file.is_file() else None,
              "rows": rows, "out": str(out)}
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    report = run()
    sys.exit(0 if report["bands_file"] and report["within_budget"] else 1)
