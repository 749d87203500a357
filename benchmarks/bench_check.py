"""Where a student's self-check (`segrade check SUBMISSION`, with training) spends its time, and
the whole of it against a baseline measured in the same run.

    .venv/bin/python benchmarks/bench_check.py [--submission reference] [--no-baseline]

Runs the README's self-check path (grade_submission on the validation split, smoke profile on
CPU, then the HTML + PDF report) on a copy of SUBMISSION and times each phase from the
worker's own progress messages (grader.grading.progress): start-up, import, and per variant build,
forward, checks, untrained evaluation, training, final evaluation; then the report.

Baseline: the bare work the self-check cannot avoid, measured here: every reference variant
built and trained for the profile's steps in this process with a plain PyTorch loop (no
worker, no checks, no predictions). The ratio self-check / baseline is the overhead of
everything else. Target (issue 18): the whole self-check within 120 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grader.grading.pipeline import GradeOptions, grade_submission  # noqa: E402
from grader.grading.progress import ProgressState  # noqa: E402
from grader.report.outputs import ReportOptions, write_submission_report  # noqa: E402
from grader.records.files import write_results  # noqa: E402
from grader.shared.resources import reference_dir  # noqa: E402
from grader.spec import load_spec  # noqa: E402


class PhaseClock:
    """Seconds spent in each (variant, phase), from the progress states' arrival times."""

    def __init__(self) -> None:
        self.spent: dict[tuple[str | None, str], float] = defaultdict(float)
        self.last: tuple[float, str | None, str] | None = None
        self.began = time.perf_counter()

    def __call__(self, state: ProgressState) -> None:
        now = time.perf_counter()
        if self.last is None:
            self.spent[(None, "start")] += now - self.began
        else:
            self.spent[self.last[1:]] += now - self.last[0]
        self.last = (now, state.variant, state.phase)


def bare_training(spec, profile) -> float:
    """Every reference variant built and trained with a plain loop: the irreducible work."""
    import torch
    from torch import nn

    sys.path.insert(0, str(reference_dir().parent))
    from reference import fcn, unet

    builders = {"fcn32s": fcn.FCN32s, "fcn16s": fcn.FCN16s, "fcn8s": fcn.FCN8s}
    started = time.perf_counter()
    for variant in spec.variants:
        torch.manual_seed(0)
        size = int(profile.image_size[variant.family.id])
        if variant.family.id == "fcn":
            model = builders[variant.id.split("_")[0]](13, freeze_backbone=variant.id.endswith("frozen"),
                                                        pretrained=False)
        else:
            model = {"unet": unet.UNet, "unet_noskip": unet.UNetNoSkip, "unet_residual": unet.ResidualUNet,
                     "unet_attention": unet.AttentionUNet}[variant.id](13)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-3, fused=True)
        loss_fn = nn.CrossEntropyLoss()
        batch = int(profile.get("batch_size", variant.family.id))
        for _ in range(int(profile.get("steps", variant.family.id))):
            images = torch.randn(batch, 3, size, size)
            masks = torch.randint(0, 13, (batch, size, size))
            loss = loss_fn(model(images), masks)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submission", type=Path, default=reference_dir())
    parser.add_argument("--no-baseline", action="store_true", help="skip the baseline (half the time)")
    parser.add_argument("--no-pdf", action="store_true")
    args = parser.parse_args()
    spec = load_spec()
    profile = spec.profile("smoke")
    with tempfile.TemporaryDirectory() as tmp:
        submission = Path(tmp) / "submission"
        shutil.copytree(args.submission, submission, ignore=shutil.ignore_patterns("bands", "__pycache__"))
        clock = PhaseClock()
        started = time.perf_counter()
        result = grade_submission(submission, spec, GradeOptions(profile="smoke", device="cpu",
                                                                 evaluation_split="val"), on_progress=clock)
        graded = time.perf_counter()
        write_results(result, Path(tmp) / "out")
        write_submission_report(Path(tmp) / "out", spec, ReportOptions(pdf=not args.no_pdf), workers=os.cpu_count() or 1)
        ended = time.perf_counter()
    by_phase: dict[str, float] = defaultdict(float)
    for (_, phase), seconds in clock.spent.items():
        by_phase[phase] += seconds
    by_phase["grading process (data, checks, scoring)"] = (graded - started) - sum(clock.spent.values())
    print(f"self-check of {args.submission.name}: {result.grade.total:g}/{result.grade.automatic_max:g} points, "
          f"{sum(v.status.value == 'passed' for v in result.variants)}/{len(result.variants)} variants pass")
    for phase, seconds in sorted(by_phase.items(), key=lambda kv: -kv[1]):
        print(f"  {phase:42s} {seconds:7.1f} s")
    print(f"grade (worker and grading process):        {graded - started:7.1f} s")
    print(f"report (HTML{'' if args.no_pdf else ' + PDF'}):                        {ended - graded:7.1f} s")
    total = ended - started
    line = f"self-check total:                          {total:7.1f} s  (target <= 120 s)"
    if not args.no_baseline:
        baseline = bare_training(spec, profile)
        print(f"baseline (bare training of every variant): {baseline:7.1f} s")
        line += f"; {total / baseline:.1f}x the baseline"
    print(line)


if __name__ == "__main__":
    main()
