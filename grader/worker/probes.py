"""Measurements the worker takes on a built model, beyond the first forward pass.

Runs inside the worker (grader.worker). Each probe returns plain data: what was
seen, never a verdict; grader.checks judges it in the grading process.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

# VGG16's convolution weights (features) and fc6/fc7 as convolutions or linear layers:
# the tensors that make up "the backbone" of an FCN, whatever the student named them.
VGG16_CONV_SHAPES = {(64, 3, 3, 3), (64, 64, 3, 3), (128, 64, 3, 3), (128, 128, 3, 3), (256, 128, 3, 3),
                     (256, 256, 3, 3), (512, 256, 3, 3), (512, 512, 3, 3)}
VGG16_FC_SHAPES = {(4096, 512, 7, 7), (4096, 25088), (4096, 4096, 1, 1), (4096, 4096)}
BACKBONE_STEPS = 3
PROBE_SIZE = 64  # small inputs for the training probes: a multiple of 32, cheap on a CPU


def shapes_at(model: nn.Module, to_logits, sizes: list[tuple[int, int, int]], device) -> list[dict[str, Any]]:
    """Forward passes in eval mode at (batch, height, width) sizes; output shape or error each."""
    seen = []
    model.eval()
    for batch, height, width in sizes:
        entry: dict[str, Any] = {"input_shape": [batch, 3, height, width]}
        try:
            with torch.no_grad():
                out = to_logits(model(torch.randn(batch, 3, height, width, device=device)))
            entry |= {"output_shape": list(out.shape), "finite": bool(torch.isfinite(out).all())}
        except Exception as exc:  # reported, judged by the grading process
            entry["error"] = f"{type(exc).__name__}: {exc}"[:300]
        seen.append(entry)
    return seen


def output_statistics(out: torch.Tensor) -> dict[str, float]:
    """Enough to tell logits from probabilities: range, and how close class sums are to 1."""
    out = out.detach().float()
    return {"min": float(out.min()), "max": float(out.max()),
            "sum_to_one": float((out.sum(dim=1) - 1).abs().mean()) if out.dim() == 4 else float("nan")}


def gradients(model: nn.Module, to_logits, num_classes: int, device) -> dict[str, Any]:
    """One real cross-entropy backward in train mode: which trainable parameters got no
    gradient, a zero one, or a non-finite one; and which parameters form the head (the
    last parameterised layer to run)."""
    order: list[str] = []
    hooks = [m.register_forward_hook(lambda mod, i, o, name=name: order.append(name))
             for name, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))]
    model.train()
    model.zero_grad(set_to_none=True)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, PROBE_SIZE, PROBE_SIZE, generator=g).to(device)
    y = torch.randint(0, num_classes, (2, PROBE_SIZE, PROBE_SIZE), generator=g).to(device)
    try:
        nn.functional.cross_entropy(to_logits(model(x)), y).backward()
    finally:
        for hook in hooks:
            hook.remove()
    none, zero, nonfinite = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.grad is None:
            none.append(name)
        elif not torch.isfinite(p.grad).all():
            nonfinite.append(name)
        elif not p.grad.any():
            zero.append(name)
    head = order[-1] if order else None
    head_params = [f"{head}.{n}" if head else n for n, _ in model.get_submodule(head).named_parameters(recurse=False)] \
        if head is not None else []
    model.zero_grad(set_to_none=True)
    return {"none": none, "zero": zero, "nonfinite": nonfinite, "head": head, "head_params": head_params}


def backbone_tensors(model: nn.Module) -> list[str]:
    """State-dict names of the VGG16 part: VGG-shaped convolutions and fc6/fc7, and any
    BatchNorm right after such a convolution (vgg16_bn), statistics included."""
    names: list[str] = []
    previous_was_backbone = False
    for module_name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        is_backbone = isinstance(module, (nn.Conv2d, nn.Linear)) and weight is not None and (
            tuple(weight.shape) in VGG16_CONV_SHAPES | VGG16_FC_SHAPES)
        is_bn = isinstance(module, nn.modules.batchnorm._BatchNorm)
        if is_backbone or (is_bn and previous_was_backbone):
            prefix = f"{module_name}." if module_name else ""
            names += [prefix + n for n, _ in module.state_dict().items()]
        if not is_bn:
            previous_was_backbone = is_backbone
    return names


def backbone_training(model: nn.Module, num_classes: int, device) -> dict[str, Any]:
    """A few real steps of the grader's training loop; which tensors changed."""
    from torch.utils.data import TensorDataset

    from grader.worker.train import TrainConfig, train

    backbone = set(backbone_tensors(model))
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randn(2 * BACKBONE_STEPS, 3, PROBE_SIZE, PROBE_SIZE, generator=g),
                         torch.randint(0, num_classes, (2 * BACKBONE_STEPS, PROBE_SIZE, PROBE_SIZE), generator=g))
    started = time.perf_counter()
    train(LogitsOnly(model), data, TrainConfig(steps=BACKBONE_STEPS, batch_size=2, lr=1e-3), device)
    after = model.state_dict()
    changed = [k for k, v in before.items() if not torch.equal(v, after[k].detach().to(v.device))]
    return {"backbone_tensors": len(backbone), "steps": BACKBONE_STEPS,
            "backbone_changed": [k for k in changed if k in backbone],
            "head_changed": [k for k in changed if k not in backbone],
            "seconds": round(time.perf_counter() - started, 3)}


class LogitsOnly(nn.Module):
    """Lets the training loop train models whose forward returns a dict or tuple."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        from grader.worker.adapters import to_logits

        return to_logits(self.model(x))


def figures(model: nn.Module, to_logits, size: int, device) -> dict[str, Any]:
    """FLOPs (torch.utils.flop_counter) and eval latency at the family's size, batch 1."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    x = torch.randn(1, 3, size, size, device=device)
    with torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            to_logits(model(x))
        times = []
        for _ in range(3):
            started = time.perf_counter()
            to_logits(model(x))
            times.append(time.perf_counter() - started)
    return {"flops": int(counter.get_total_flops()), "latency_ms": round(1000 * sorted(times)[1], 1)}
