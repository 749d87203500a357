"""What the self-check benchmarks share: the phase clock and the bare-training baseline
(bench_check.py, bench_capture.py)."""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grader.grading.progress import ProgressState  # noqa: E402
from grader.shared.resources import reference_dir  # noqa: E402


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

    from grader.measure.convolutions import backward

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
            backward(loss, model)   # the grader's (grader.measure.convolutions), as in the training it is compared with
            optimizer.step()
    return time.perf_counter() - started
