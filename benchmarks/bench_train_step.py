"""The grader's training loop (grader.train.train) against a bare PyTorch loop on the same
model, the same batches and the same optimiser, per variant of the reference; and the
images per second each variant trains at.

    .venv/bin/python benchmarks/bench_train_step.py [--size 64] [--batch 4] [--steps 12] [--device auto]
                                                     [--variants unet,fcn8s_frozen,...]

Prints per variant: seconds per step of both loops, their ratio (grader / bare; target
<= 1.05) and training images per second. Runs on CUDA when present (bf16 autocast and
channels_last in both loops), else CPU with all cores. Both loops see identical data: the
bare loop reads the same uint8 tensors, normalises and flips them the same way.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grader.shared.device import describe, resolve_device  # noqa: E402
from grader.spec import load_spec  # noqa: E402
from grader.measure.train import SegmentationTensors, TrainConfig, train  # noqa: E402
from reference import fcn, unet  # noqa: E402

BUILDERS = {
    "fcn32s_frozen": lambda: fcn.FCN32s(13, freeze_backbone=True, pretrained=False),
    "fcn8s_frozen": lambda: fcn.FCN8s(13, freeze_backbone=True, pretrained=False),
    "fcn8s_finetune": lambda: fcn.FCN8s(13, freeze_backbone=False, pretrained=False),
    "unet": lambda: unet.UNet(13),
    "unet_noskip": lambda: unet.UNetNoSkip(13),
    "unet_residual": lambda: unet.ResidualUNet(13),
    "unet_attention": lambda: unet.AttentionUNet(13),
}


def bare_loop(model: nn.Module, data: SegmentationTensors, config: TrainConfig, device: torch.device) -> float:
    """What a student would write: same seeded order and flips, same fused AdamW."""
    torch.manual_seed(config.seed)
    model.to(device).train()
    cuda = device.type == "cuda"
    if cuda:
        model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    loss_fn = nn.CrossEntropyLoss(ignore_index=255)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(config.seed))
    flips = torch.Generator().manual_seed(config.seed + 1)
    started = time.perf_counter()
    for step in range(config.steps):
        idx = order[(step * config.batch_size) % len(data):][: config.batch_size]
        images = torch.stack([data[int(i)][0] for i in idx])
        masks = torch.stack([data[int(i)][1] for i in idx])
        flip = torch.rand(len(images), generator=flips) < 0.5
        images[flip], masks[flip] = images[flip].flip(-1), masks[flip].flip(-1)
        images, masks = images.to(device), masks.to(device)
        if cuda:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext():
            logits = model(images)
        loss = loss_fn(logits.float(), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--variants", default=",".join(BUILDERS))
    args = parser.parse_args()
    device = resolve_device(args.device)
    spec = load_spec()
    from grader.data.sources import open_split

    dataset = open_split(spec.dataset, "train", size=args.size, length=args.batch * args.steps)
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    masks = torch.stack([dataset[i][1] for i in range(len(dataset))]).to(torch.uint8)
    data = SegmentationTensors(images, masks)
    config = TrainConfig(steps=args.steps, batch_size=args.batch, lr=1e-3, seed=0, eval_every=0)
    print(f"device {describe(device)}; {args.size} px, batch {args.batch}, {args.steps} timed steps after "
          f"2 warm-up steps; fused AdamW in both loops")
    print(f"{'variant':16s} {'grader s/step':>13s} {'bare s/step':>12s} {'ratio':>6s} {'img/s':>7s}")
    for vid in args.variants.split(","):
        warm = TrainConfig(steps=2, batch_size=args.batch, seed=0)
        times = {}
        # Alternate the two loops (bare, grader, bare, grader) and keep each one's best, so
        # that neither gets the cooler machine.
        for _ in range(2):
            for name in ("bare", "grader"):
                torch.manual_seed(0)
                model = BUILDERS[vid]()
                if name == "bare":
                    bare_loop(model, data, warm, device)
                    seconds = bare_loop(model, data, config, device)
                else:
                    train(model, data, warm, device)
                    started = time.perf_counter()
                    train(model, data, config, device)
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    seconds = time.perf_counter() - started
                times[name] = min(times.get(name, float("inf")), seconds)
        per_step = {k: v / args.steps for k, v in times.items()}
        print(f"{vid:16s} {per_step['grader']:13.3f} {per_step['bare']:12.3f} "
              f"{per_step['grader'] / per_step['bare']:6.2f} {args.batch / per_step['grader']:7.1f}")


if __name__ == "__main__":
    main()
