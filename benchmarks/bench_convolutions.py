"""The grader's large convolutions (grader.measure.convolutions: on an AVX2 CPU, convolutions
with large weights computed as one matrix product, forward and backward) against torch's own
(a plain forward and `loss.backward()`), per variant of the reference, at the smoke profile's
sizes.

    .venv/bin/python benchmarks/bench_convolutions.py [--threads 1] [--steps 3]
                                                      [--variants fcn8s_finetune,unet,...]

Prints per variant: seconds per training step (forward and backward) both ways (the fastest
of --steps after one warm-up step, the same batches and weights), their ratio (grader /
plain), the largest difference between the two ways' gradients relative to the largest
gradient (rounding), and the seconds of one prediction pass of 16 images both ways.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_train_step import BUILDERS  # noqa: E402  (the reference's variants, built as the benchmarks do)
from grader.measure.convolutions import SLOW_ONEDNN, backward, large_convolutions  # noqa: E402

SMOKE = {"fcn": (96, 2), "unet": (64, 4)}   # (image size, batch): default.toml's smoke profile


def seconds_per_step(model, batches, how, forward) -> tuple[float, dict[str, torch.Tensor]]:
    best, grads = float("inf"), {}
    for k, (x, y) in enumerate(batches):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(k)   # the same dropout masks both ways
        started = time.perf_counter()
        with forward(model):
            out = model(x)
        how(F.cross_entropy(out, y), model)
        if k:   # the first step warms up
            best = min(best, time.perf_counter() - started)
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return best, grads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--variants", default="fcn8s_frozen,fcn8s_finetune,unet,unet_attention")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}: large convolutions "
          f"{'as matrix products' if SLOW_ONEDNN else 'on torch kernels (nothing to compare)'}")
    print(f"{'variant':<18}{'plain s/step':>14}{'grader s/step':>15}{'ratio':>8}{'grad diff':>12}"
          f"{'plain predict s':>17}{'grader predict s':>18}")
    for vid in args.variants.split(","):
        size, batch = SMOKE["fcn" if vid.startswith("fcn") else "unet"]
        torch.manual_seed(0)
        model = BUILDERS[vid]().train()
        g = torch.Generator().manual_seed(1)
        batches = [(torch.randn(batch, 3, size, size, generator=g), torch.randint(0, 13, (batch, size, size), generator=g))
                   for _ in range(args.steps + 1)]
        plain, plain_grads = seconds_per_step(model, batches, lambda loss, model: loss.backward(), _untouched)
        model = copy.deepcopy(model)
        graded, grader_grads = seconds_per_step(model, batches, backward, large_convolutions)
        scale = max(float(t.abs().max()) for t in plain_grads.values())
        diff = max(float((plain_grads[n] - grader_grads[n]).abs().max()) for n in plain_grads) / scale
        images = torch.randn(16, 3, size, size, generator=g)
        predict_plain, predict_grader = (seconds_to_predict(model, images, forward)
                                         for forward in (_untouched, large_convolutions))
        print(f"{vid:<18}{plain:>14.3f}{graded:>15.3f}{graded / plain:>8.2f}{diff:>12.2e}"
              f"{predict_plain:>17.3f}{predict_grader:>18.3f}", flush=True)


def _untouched(model):
    return contextlib.nullcontext()


@torch.no_grad()
def seconds_to_predict(model, images, forward) -> float:
    """One prediction pass after a warm-up, as the grader's `predict` runs it (eval mode)."""
    model.eval()
    with forward(model):
        model(images)
        started = time.perf_counter()
        model(images)
    model.train()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
