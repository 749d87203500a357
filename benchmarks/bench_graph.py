"""Time the `architecture` fingerprint per reference variant: torch.export (what `segrade check`
tries first) against the dispatch recording (the fallback), measured in the same run.

    .venv/bin/python benchmarks/bench_graph.py [--repeats 3] [--size 64]

The reference models are built at the assignment's widths (FCNs without ImageNet weights:
the graph does not depend on them). Prints, per variant, the best of REPEATS for each method,
the ratio export / dispatch, and whether the two fingerprints agree.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import torch

from grader.measure.graph import fingerprint

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", ROOT / "reference" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def best_of(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    torch.manual_seed(0)
    unet, fcn = _load("unet"), _load("fcn")
    builders = {
        "fcn32s": lambda: fcn.FCN32s(13, pretrained=False),
        "fcn16s": lambda: fcn.FCN16s(13, pretrained=False),
        "fcn8s": lambda: fcn.FCN8s(13, pretrained=False),
        "unet": lambda: unet.UNet(13),
        "unet_noskip": lambda: unet.UNetNoSkip(13),
        "unet_residual": lambda: unet.ResidualUNet(13),
        "unet_attention": lambda: unet.AttentionUNet(13),
    }
    fingerprint(builders["unet_noskip"](), args.size, method="export")  # first-export import cost
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.size} px, best of {args.repeats}")
    print(f"{'variant':16} {'export s':>9} {'dispatch s':>11} {'ratio':>7}  agree")
    totals = [0.0, 0.0]
    for name, build in builders.items():
        model = build()
        t_export, exported = best_of(lambda: fingerprint(model, args.size, method="export"), args.repeats)
        t_dispatch, recorded = best_of(lambda: fingerprint(model, args.size, method="dispatch"), args.repeats)
        agree = exported.same_architecture(recorded)
        totals[0] += t_export
        totals[1] += t_dispatch
        print(f"{name:16} {t_export:9.2f} {t_dispatch:11.2f} {t_export / t_dispatch:7.1f}  {agree}")
    print(f"{'all seven':16} {totals[0]:9.2f} {totals[1]:11.2f} {totals[0] / totals[1]:7.1f}")


if __name__ == "__main__":
    main()
