"""The worker's capture (grader.worker.capture.capture: two torch.export traces, the
faithfulness comparison, the saves) with what torch does on the way that nothing reads left
out (each node's stack trace, the serializer's self-test of its canonical form) against
torch's defaults, per variant of the reference, at 64 px.

    .venv/bin/python benchmarks/bench_capture_lean.py [--threads 1] [--repeats 4]
                                                      [--variants unet,fcn8s_frozen,...]

Prints per variant the median seconds of a whole capture both ways (alternating, after one
warm-up capture), their ratio (lean / torch's defaults), and whether both ways' programs
compute the same logits on one input.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_train_step import BUILDERS  # noqa: E402  (the reference's variants, built as the benchmarks do)
from grader.worker import capture as capturing  # noqa: E402


def one_capture(model, folder: Path, lean: bool) -> float:
    lean_parts = (capturing._lean_export, capturing._lean_save)
    if not lean:   # torch's defaults: the two contexts do nothing
        capturing._lean_export = capturing._lean_save = contextlib.nullcontext
    try:
        started = time.perf_counter()
        result = capturing.capture(model, 64, folder, "bench", probe_size=32)
        seconds = time.perf_counter() - started
    finally:
        capturing._lean_export, capturing._lean_save = lean_parts
    assert result["ok"], result
    return seconds


def logits(folder: Path) -> torch.Tensor:
    program = torch.export.load(folder / "bench.train.pt2").module()   # train mode: the same seed draws the same dropout
    torch.manual_seed(0)
    with torch.no_grad():
        return program(torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(3)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--variants", default="unet,unet_attention,fcn8s_frozen")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"capture at 64 px, {args.threads} thread(s), median of {args.repeats} (s)")
    print(f"{'variant':16s} {'torch':>7s} {'lean':>7s} {'ratio':>6s}  same logits")
    for vid in args.variants.split(","):
        torch.manual_seed(0)
        model = BUILDERS[vid]()
        with tempfile.TemporaryDirectory() as tmp:
            folders = {lean: Path(tmp) / ("lean" if lean else "torch") for lean in (False, True)}
            one_capture(model, folders[True], True)   # warm-up: torch.export's first call imports and caches
            times: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(args.repeats):
                for lean in (False, True):
                    times[lean].append(one_capture(model, folders[lean], lean))
            same = torch.equal(logits(folders[False]), logits(folders[True]))
        plain, lean = statistics.median(times[False]), statistics.median(times[True])
        print(f"{vid:16s} {plain:7.2f} {lean:7.2f} {lean / plain:6.2f}  {same}")


if __name__ == "__main__":
    main()
