"""The values a captured program computes with that the standardised training cannot change.

A network trained elsewhere can be kept in tensors no optimiser reaches (lifted constants,
buffers, parameters without requires_grad) and switched in by arithmetic once the trainable
parameters move (a gate on their drift): the program loads, captures faithfully, predicts like
an untrained model before the training and like the smuggled network after it. Finding the gate
is a game without end; seeing the store is not: an honest model computes with few fixed values
besides a frozen backbone and BatchNorm's running statistics. The verifier counts them here; the
grading side judges the count (grader.grading.score.FIXED_VALUES_LIMIT).

What is not counted: the backbone's tensors (grader.verifier.provenance.identify), buffers a
graph uses only as a batch norm's running statistics, integer scalars (num_batches_tracked), and
in an FCN, frozen parameters of VGG16's fc6/fc7 shapes.
A tensor counts its information, not its size: one value repeated counts 1, and a 4-D kernel
whose every (out, in) slice is zero or one same k x l kernel (a fixed bilinear upsampling, a blur
per channel) counts k x l.
"""

from __future__ import annotations

from typing import Any

import torch

# Larger tensors count their size without the repetition tests (time and memory in the verifier).
_MAX_EXAMINED = 50_000_000


def fixed_values(programs, model, backbone: set[str], fcn: bool = False) -> dict[str, Any]:
    """{"values": the count, "largest": "name (N values)" for the largest few} over the distinct
    `programs` (train and eval mode) of `model` (grader.measure.captured.as_model). `fcn`: an FCN
    variant, whose frozen parameters of fc6's and fc7's shapes are not counted (an FCN's own
    randomly initialised fc6/fc7, frozen with the backbone, is honest; the grader's fingerprint,
    which names copied ones, can be stripped in the student's process: docs/security.md)."""
    from grader.measure.captured import program_tensors
    from grader.measure.probes import VGG16_FC_SHAPES

    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    fc_shaped = {name for name, p in model.named_parameters()
                 if fcn and (tuple(p.shape) in VGG16_FC_SHAPES or tuple(p.shape) == (4096,))}
    counted: dict[str, int] = {}
    for program in {id(p): p for p in programs}.values():
        statistics = running_statistics(program)
        for placeholder, (name, kind, tensor) in program_tensors(program).items():
            if name in counted or name in backbone or placeholder in statistics \
                    or (kind == "PARAMETER" and name in trainable | fc_shaped):
                continue
            counted[name] = information(tensor)
    largest = sorted(counted.items(), key=lambda item: -item[1])[:8]
    return {"values": sum(counted.values()), "largest": [f"{name} ({n:,} values)" for name, n in largest if n]}


def running_statistics(program) -> set[str]:
    """Placeholders a graph uses only as the running mean or variance of batch norms (their
    values come from the data the model sees, as a BatchNorm's do)."""
    as_statistics: set[str] = set()
    other_uses: set[str] = set()
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        is_norm = "batch_norm" in str(node.target)
        for position, arg in enumerate(node.args):
            if getattr(arg, "op", None) != "placeholder":
                continue
            (as_statistics if is_norm and position in (3, 4) else other_uses).add(arg.name)
        for arg in node.kwargs.values():
            if getattr(arg, "op", None) == "placeholder":
                other_uses.add(arg.name)
    return as_statistics - other_uses


def information(tensor: torch.Tensor) -> int:
    """How many values `tensor` holds, repetitions not counted (see the module's docstring)."""
    n = tensor.numel()
    if n == 0 or (n == 1 and not tensor.is_floating_point()):
        return 0
    if n == 1 or n > _MAX_EXAMINED:
        return n
    flat = tensor.detach().reshape(-1)
    if bool((flat == flat[0]).all()):
        return 1
    if tensor.dim() == 4:
        kernels = tensor.detach().reshape(-1, tensor.shape[2] * tensor.shape[3])
        nonzero = kernels[kernels.abs().amax(1) > 0]
        if len(nonzero) and bool((nonzero == nonzero[0]).all()):
            return int(kernels.shape[1])
    return n
