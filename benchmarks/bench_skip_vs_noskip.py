"""Does the synthetic dataset separate the variants? Train the reference U-Net and
U-Net-without-skips briefly on CPU, on the same data with the same settings, and compare
per-class IoU on the validation split, above all on the thin classes RoadLine, Pole and
TrafficSign. Also prints the colour-lookup and majority baselines.

    .venv/bin/python benchmarks/bench_skip_vs_noskip.py [--steps 400] [--size 64] [--width 16]
"""

import argparse
import importlib.util
import math
import time

import torch

from grader.data.baselines import fit_colour_lookup, score_colour_lookup, score_majority
from grader.data.synthetic import SyntheticRoadScenes
from grader.data.transforms import TransformedDataset, eval_transform, train_transform
from grader.grading.metrics import ConfusionMatrix
from grader.shared.resources import reference_dir
from grader.spec import load_spec
from grader.measure.train import TrainConfig, predict, train

THIN = ("RoadLine", "Pole", "TrafficSign")


def reference_unets():
    spec = importlib.util.spec_from_file_location("reference_unet", reference_dir() / "unet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--width", type=int, default=16, help="U-Net base_channels")
    parser.add_argument("--train", type=int, default=1000)
    parser.add_argument("--val", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    spec = load_spec()
    names, c = spec.class_names, spec.num_classes
    raw_train = SyntheticRoadScenes(spec.dataset.train_seed, args.train, args.size)
    raw_val = SyntheticRoadScenes(spec.dataset.val_seed, args.val, args.size)
    started = time.perf_counter()
    table = fit_colour_lookup(raw_train, c)
    colour = score_colour_lookup(table, raw_val, c)
    majority = score_majority(raw_train, raw_val, c)
    print(f"data: {args.train} train / {args.val} val synthetic images at {args.size} px "
          f"({time.perf_counter() - started:.1f} s to render and fit baselines)")

    train_set = TransformedDataset(raw_train, train_transform(args.size))
    val_set = TransformedDataset(raw_val, eval_transform(args.size))
    config = TrainConfig(steps=args.steps, batch_size=16, lr=2e-3, seed=args.seed)
    module = reference_unets()
    rows = {"majority": majority, "colour lookup": colour}
    for cls in (module.UNet, module.UNetNoSkip):
        torch.manual_seed(args.seed)
        model = cls(c, base_channels=args.width)
        log = train(model, train_set, config)
        cm = ConfusionMatrix(c)
        cm.update(predict(model, val_set), torch.stack([m for _, m in val_set]))
        rows[cls.__name__] = cm.compute()
        print(f"{cls.__name__}: {args.steps} steps in {log.seconds:.0f} s, loss {log.losses[0]:.2f} -> "
              f"{sum(log.losses[-20:]) / 20:.2f}")

    fmt = lambda v: "  n/a" if math.isnan(v) else f"{v:5.3f}"  # noqa: E731
    print(f"\nthreads={torch.get_num_threads()} steps={args.steps} batch=16 lr=2e-3 width={args.width}")
    print(f"{'class':<12}" + "".join(f"{k:>15}" for k in rows))
    for i, name in enumerate(names):
        mark = " *" if name in THIN else ""
        print(f"{name + mark:<12}" + "".join(f"{fmt(s.per_class_iou[i]):>15}" for s in rows.values()))
    print(f"{'mIoU':<12}" + "".join(f"{fmt(s.miou):>15}" for s in rows.values()))
    print(f"{'pixel acc':<12}" + "".join(f"{fmt(s.pixel_accuracy):>15}" for s in rows.values()))
    unet, noskip = rows["UNet"], rows["UNetNoSkip"]
    thin = [names.index(n) for n in THIN]
    mean = lambda s: sum(s.per_class_iou[i] for i in thin) / len(thin)  # noqa: E731
    print(f"\nthin classes (*) mean IoU: UNet {mean(unet):.3f}, UNetNoSkip {mean(noskip):.3f}, "
          f"ratio no-skip/skip {mean(noskip) / max(mean(unet), 1e-9):.2f}")
    print(f"mIoU: UNet {unet.miou:.3f} vs colour lookup {colour.miou:.3f} vs majority {majority.miou:.3f}")


if __name__ == "__main__":
    main()
