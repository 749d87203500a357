"""Time grader.grading.metrics on a 64 x 256 x 256 batch against torchmetrics on the same data.

    .venv/bin/python benchmarks/bench_metrics.py

Prints both times and the ratio (segrade / torchmetrics; below 1 is faster), and checks the
two agree. torchmetrics is a test dependency (installed by .ci/setup).
"""

import time

import torch
from torchmetrics.classification import MulticlassJaccardIndex

from grader.grading.metrics import ConfusionMatrix

C, N, SIZE, REPEATS = 13, 64, 256, 10


def best_of(fn, repeats=REPEATS):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, C, (N, SIZE, SIZE), generator=g)
    target[:, :8] = 255
    logits = torch.randn(N, C, SIZE, SIZE, generator=g)
    pred = logits.argmax(1)

    def ours():
        cm = ConfusionMatrix(C)
        cm.update(pred, target)
        return cm.compute().miou

    def oracle():
        metric = MulticlassJaccardIndex(num_classes=C, average="macro", ignore_index=255)
        metric.update(pred, target)
        return float(metric.compute())

    assert abs(ours() - oracle()) < 1e-6, (ours(), oracle())
    t_ours, t_oracle = best_of(ours), best_of(oracle)
    print(f"threads={torch.get_num_threads()} batch={N}x{SIZE}x{SIZE} classes={C} (best of {REPEATS})")
    print(f"segrade ConfusionMatrix   {t_ours * 1e3:8.1f} ms")
    print(f"torchmetrics Jaccard      {t_oracle * 1e3:8.1f} ms")
    print(f"ratio segrade/torchmetrics {t_ours / t_oracle:.2f}")


if __name__ == "__main__":
    main()
