"""Does a profile's training separate a trained model from an untrained one? For every reference
variant and every initialisation seed: the mIoU of the model as built (untrained) and after the
profile's training, both on the profile's validation images (issue 28).

    nice -n 10 .venv/bin/python benchmarks/smoke_separation.py [--profile smoke] [--seeds 10] [--first-seed 1]
        [--variants fcn8s_frozen,unet] [--untrained-only] [--set fcn.lr=1e-4 --set unet.image_size=96]
        [--log FILE.jsonl]

The work is the grader's own: the profile's data (grader.grading.pipeline.prepare_evaluation_data),
the reference models built the way the worker builds them (seeded with the training seed,
pretrained=False), the grader's training loop and prediction (grader.measure.train) and metric
(grader.grading.metrics), in this process without the sandbox or the checks. `--set` tries a
change to the profile without editing the spec (FAMILY.FIELD=VALUE; fields: steps, batch_size, lr,
weight_decay, optimizer, image_size). Each (variant, seed) is appended to the log as it ends, so
a long run can be read while it goes.

The criterion (issue 28), per variant: the band's lower edge (mean - 3*max(std, 0.01) of the
trained mIoU, grader.grading.bands.band_edges) lies above the highest untrained mIoU over the
seeds, and the trained mean exceeds that highest untrained value by at least 3 trained standard
deviations.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from grader.grading.bands import band_edges  # noqa: E402
from grader.grading.evaluation import prepare_data  # noqa: E402
from grader.grading.metrics import confusion_matrix, scores_from_confusion  # noqa: E402
from grader.shared.resources import reference_dir  # noqa: E402
from grader.spec import load_spec  # noqa: E402
from grader.measure.train import SegmentationTensors, TrainConfig, predict, train  # noqa: E402

FIELDS = {"steps": int, "batch_size": int, "lr": float, "weight_decay": float, "optimizer": str, "image_size": int}


def build(variant_id: str, num_classes: int):
    sys.path.insert(0, str(reference_dir().parent))
    from reference import fcn, unet

    if variant_id.startswith("fcn"):
        cls = {"fcn32s": fcn.FCN32s, "fcn16s": fcn.FCN16s, "fcn8s": fcn.FCN8s}[variant_id.split("_")[0]]
        return cls(num_classes, freeze_backbone=variant_id.endswith("frozen"), pretrained=False)
    return {"unet": unet.UNet, "unet_noskip": unet.UNetNoSkip, "unet_residual": unet.ResidualUNet,
            "unet_attention": unet.AttentionUNet}[variant_id](num_classes)


def settings(profile, family: str, overrides: dict[tuple[str, str], str]) -> dict:
    out = {f: FIELDS[f](overrides.get((family, f), profile.get(f, family) if f != "image_size"
                                     else profile.image_size[family])) for f in FIELDS}
    return out


def miou(model, images, masks, num_classes: int) -> float:
    pred = predict(model, SegmentationTensors(images), batch_size=16)
    return scores_from_confusion(confusion_matrix(pred.long(), masks.long(), num_classes)).miou


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec")
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--seeds", type=int, default=10, help="initialisation seeds 1..N (default 10)")
    parser.add_argument("--first-seed", type=int, default=1, help="start at this seed (to extend a logged run)")
    parser.add_argument("--variants", help="comma-separated variant ids (default: all)")
    parser.add_argument("--untrained-only", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="FAMILY.FIELD=VALUE")
    parser.add_argument("--log", type=Path, help="append one JSON line per (variant, seed)")
    args = parser.parse_args()
    spec = load_spec(args.spec)
    profile = spec.profile(args.profile)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        family, _, name = key.partition(".")
        if family not in spec.families or name not in FIELDS:
            parser.error(f"--set {item}: use FAMILY.FIELD=VALUE, FAMILY in {list(spec.families)}, FIELD in {list(FIELDS)}")
        overrides[(family, name)] = value
    variants = [v for v in spec.variants if not args.variants or v.id in args.variants.split(",")]
    per_family = {fid: settings(profile, fid, overrides) for fid in spec.families}
    print(f"profile {profile.id} with {per_family}", flush=True)
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        sizes = {fid: s["image_size"] for fid, s in per_family.items()}
        counts = {"train": profile.train_images, "val": max(profile.val_images, profile.test_images)}
        counts["test"] = counts["val"]
        data = prepare_data(spec, sizes, counts, Path(tmp), None, "val")
        for variant in variants:
            s = per_family[variant.family.id]
            split = data.splits[s["image_size"]]
            train_set = SegmentationTensors(split["train"].images, split["train"].masks)
            for seed in range(args.first_seed, args.seeds + 1):
                started = time.perf_counter()
                torch.manual_seed(seed)
                model = build(variant.id, spec.num_classes)
                row = {"variant": variant.id, "seed": seed, "settings": s,
                       "untrained": miou(model, split["val"].images, split["val"].masks, spec.num_classes)}
                if not args.untrained_only:
                    config = TrainConfig(steps=s["steps"], batch_size=s["batch_size"], lr=s["lr"],
                                         weight_decay=s["weight_decay"], optimizer=s["optimizer"], seed=seed)
                    train(model, train_set, config)
                    row["trained"] = miou(model, split["val"].images, split["val"].masks, spec.num_classes)
                row["seconds"] = round(time.perf_counter() - started, 1)
                runs.setdefault(variant.id, []).append(row)
                print(json.dumps(row), flush=True)
                if args.log:
                    with args.log.open("a") as log:
                        log.write(json.dumps(row) + "\n")
    print(summary(runs))


def summary(runs: dict[str, list[dict]]) -> str:
    lines = [f"{'variant':16s} {'untrained max':>13s} {'trained mean':>12s} {'std':>6s} {'lower':>6s} "
             f"{'(mean-umax)/std':>15s}  separates"]
    for vid, rows in runs.items():
        umax = max(r["untrained"] for r in rows)
        trained = [r["trained"] for r in rows if "trained" in r]
        if len(trained) < 2:
            lines.append(f"{vid:16s} {umax:13.3f}")
            continue
        mean, std = statistics.fmean(trained), statistics.stdev(trained)
        lower, _ = band_edges(mean, std)
        margin = (mean - umax) / std if std else float("inf")
        ok = lower > umax and margin >= 3
        lines.append(f"{vid:16s} {umax:13.3f} {mean:12.3f} {std:6.3f} {lower:6.3f} {margin:15.1f}  {'yes' if ok else 'NO'}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
