"""The worker's and the verifier's malloc setting (grader.grading.sandbox.ALLOCATOR_ENV) against
glibc's default, in one run: training steps of reference variants on the CPU, each in a fresh
process, the two settings alternating.

    .venv/bin/python benchmarks/bench_allocator.py [--steps 15] [--repeats 3] [--threads N]

Each run builds one reference variant at the smoke profile's image and batch size, trains it for
--steps steps (fused AdamW, as grader.measure.train does) and prints the seconds of the steps
only; the table gives the median per setting and the ratio (target: below 1.0, the setting must
not slow anything down), the kernel (system) CPU time, which is where the default loses, and
the peak resident memory, which the setting raises (freed memory stays with the process).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = {"fcn8s_frozen": ("fcn", "FCN8s", {"freeze_backbone": True, "pretrained": False}),
            "fcn32s_finetune": ("fcn", "FCN32s", {"freeze_backbone": False, "pretrained": False}),
            "unet_attention": ("unet", "AttentionUNet", {})}


def child(variant: str, steps: int) -> None:
    import torch

    from grader.spec import load_spec
    from reference import fcn, unet

    family, name, kwargs = VARIANTS[variant]
    profile = load_spec().profile("smoke")
    size, batch = int(profile.image_size[family]), int(profile.get("batch_size", family))
    torch.manual_seed(0)
    model = getattr(fcn if family == "fcn" else unet, name)(13, **kwargs)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 13, (batch, size, size))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, fused=True)
    started = time.perf_counter()
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    print(f"{time.perf_counter() - started:.3f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}")


def run(variant: str, steps: int, env: dict[str, str]) -> tuple[float, float, float]:
    """Seconds of the steps, kernel CPU seconds of the whole run, peak resident memory (GB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime
    out = subprocess.run([sys.executable, __file__, "--child", variant, "--steps", str(steps)], env=env,
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    seconds, peak_kb = out.strip().splitlines()[-1].split()
    return float(seconds), resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime - before, int(peak_kb) / 1024**2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS for the runs (default: torch's)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.steps)
        return 0

    from grader.grading.sandbox import ALLOCATOR_ENV

    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    if args.threads:
        base["OMP_NUM_THREADS"] = str(args.threads)
    settings = {"glibc default": base, "segrade's pad": base | ALLOCATOR_ENV}
    print(f"{args.steps} training steps per run, {args.repeats} runs per setting, alternating; "
          f"threads: {args.threads or 'torch default'}; setting: {ALLOCATOR_ENV}")
    for variant in VARIANTS:
        seen: dict[str, list[tuple[float, float, float]]] = {name: [] for name in settings}
        for _ in range(args.repeats):
            for name, env in settings.items():
                seen[name].append(run(variant, args.steps, env))
        medians = {name: [statistics.median(run[i] for run in runs) for i in range(3)] for name, runs in seen.items()}
        (default, default_sys, default_peak), (padded, padded_sys, padded_peak) = medians.values()
        print(f"{variant:16} default {default:6.2f} s (kernel {default_sys:5.2f} s, peak {default_peak:4.1f} GB)   "
              f"pad {padded:6.2f} s (kernel {padded_sys:5.2f} s, peak {padded_peak:4.1f} GB)   "
              f"ratio {padded / default:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
