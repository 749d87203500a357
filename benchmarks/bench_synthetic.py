"""Throughput and class statistics of the built-in synthetic road scenes.

    .venv/bin/python benchmarks/bench_synthetic.py [--images 500] [--seconds 3]

Single-threaded (torch and numpy on one thread), it measures image/mask pairs per
second generated at 64x64 and 256x256 and served from the dataset cache, prints each
next to its target, then per-class pixel share and image presence at 64 px.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grader.data.synthetic import CLASS_NAMES, NUM_CLASSES, SyntheticRoadScenes, render_scene  # noqa: E402

TARGETS = {"generate 64x64": 1000, "generate 256x256": 100, "cached 64x64": 1000, "cached 256x256": 1000}


def _rate(fn, seconds: float) -> float:
    """Calls of fn per second, run for about `seconds` (after a short warm-up)."""
    fn(0)
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(20):
            fn(n)
            n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500, help="images for the class statistics")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per throughput figure")
    args = parser.parse_args()
    torch.set_num_threads(1)

    print(f"synthetic road scenes, one thread (torch {torch.__version__}, numpy {np.__version__})")
    rates = {}
    for size in (64, 256):
        rates[f"generate {size}x{size}"] = _rate(lambda i, s=size: render_scene(0, 100_000 + i, s, s), args.seconds)
    for size in (64, 256):
        ds = SyntheticRoadScenes(seed=0, length=200, size=size).materialize()
        rates[f"cached {size}x{size}"] = _rate(lambda i, ds=ds: ds[i % len(ds)], args.seconds / 2)
    for name, rate in rates.items():
        target = TARGETS[name]
        print(f"  {name:17s} {rate:7.0f} pairs/s (target {target}, ratio {rate / target:.2f})")

    n = args.images
    pixels = np.zeros(NUM_CLASSES, np.int64)
    present = np.zeros(NUM_CLASSES, np.int64)
    for i in range(n):
        counts = np.bincount(render_scene(0, i, 64, 64)[1].ravel(), minlength=NUM_CLASSES)
        pixels += counts
        present += counts > 0
    print(f"class statistics over {n} images at 64x64 (seed 0)")
    print(f"  {'id':>2} {'class':12s} {'pixels':>7} {'images':>7}")
    for c in range(NUM_CLASSES):
        print(f"  {c:2d} {CLASS_NAMES[c]:12s} {pixels[c] / pixels.sum():7.2%} {present[c] / n:7.1%}")


if __name__ == "__main__":
    main()
