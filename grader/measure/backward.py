"""The grader's backward pass: on an AVX2 CPU, convolutions with large weights take their
gradients from PyTorch's own kernels rather than oneDNN's.

Measured on an AMD EPYC (Zen 3, AVX2, one thread; 2026-12-07): oneDNN's backward of a VGG16
FCN's fc6 (a 7x7 convolution, 512 -> 4096 channels, 102M weights) took 10.9 s on a 2x2 map
and 14.2 s on a 3x3 one, PyTorch's own kernels 3.0 and 2.9 s (its forward as fast or faster on
oneDNN); a fine-tuned FCN-8s's training step at the smoke profile's 96 px went from 17.5 s to
6.8 s, the same loss. For weights of 4.7M elements and more PyTorch's kernels were 0.98-5x
as fast (fc6 at 2x2 to 12x12, fc7, a U-Net's 1024-channel 3x3), for smaller ones oneDNN up to
2x faster. Only weights of 16M elements and more move (fc6 and fc7: a U-Net's largest,
1024 x 1024 x 3 x 3, is 9.4M), so a U-Net's gradients are bit for bit what they were, and a
fine-tuned FCN's the same up to rounding (`benchmarks/bench_backward.py` prints both ways).

Only where torch's CPU kernels run with AVX2 (`torch.backends.cpu.get_cpu_capability()`), the
case measured. The machine of earlier sessions (its CPU was not recorded) trained a fine-tuned
FCN in the smoke profile in 31-36 s, ~1 s a step (docs/training.md): oneDNN had no such fault
there, and PyTorch's kernels (~3 s for fc6 alone) would have been slower; elsewhere (AVX-512,
ARM) nothing changes until it is measured. The choice is the machine's, never a timing's: on
one machine the same seed gives the same numbers.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# Weights of this many elements or more (64 MB in float32) take PyTorch's kernels.
LARGE_WEIGHTS = 16_000_000
_CONVOLUTION_BACKWARD = torch.ops.aten.convolution_backward.default
SLOW_ONEDNN_BACKWARD = torch.backends.cpu.get_cpu_capability() == "AVX2"


class _LargeConvolutionsNative(TorchDispatchMode):
    """Runs each CPU convolution backward with large weights with oneDNN switched off."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is _CONVOLUTION_BACKWARD and _large_cpu_weight(args[2]):
            was = torch.backends.mkldnn.enabled
            torch.backends.mkldnn.enabled = False
            try:
                return func(*args, **kwargs)
            finally:
                torch.backends.mkldnn.enabled = was
        return func(*args, **kwargs)


def _large_cpu_weight(weight) -> bool:
    return isinstance(weight, torch.Tensor) and weight.device.type == "cpu" and weight.numel() >= LARGE_WEIGHTS


def backward(loss: torch.Tensor, model: torch.nn.Module) -> None:
    """`loss.backward()`, with the large convolutions' gradients from PyTorch's kernels on an AVX2
    CPU. `model`: what computed `loss`; one without weights that large (every U-Net) runs a plain
    backward, without the dispatch mode's Python call per operation."""
    if (loss.device.type != "cpu" or not torch.backends.mkldnn.enabled or not SLOW_ONEDNN_BACKWARD
            or not any(_large_cpu_weight(p) for p in model.parameters())):
        loss.backward()
        return
    with _LargeConvolutionsNative():
        loss.backward()
