"""The grader's large convolutions on an AVX2 CPU: forward and backward as one matrix product.

A VGG16 FCN's fc6 (a 7x7 convolution, 512 -> 4096 channels, 102M weights) and fc7 (1x1, 4096
-> 4096, 16.8M) run on the small maps of the grader's sizes (2x2 to 7x7), where torch's
convolution kernels are slow for weights this large. Measured on an AMD EPYC (Zen 3, AVX2, one
thread; 2026-12-07): oneDNN's backward of fc6 took 10.9 s on a 2x2 map and 14.2 s on a 3x3 one,
PyTorch's own kernels 3.0 and 2.9 s; oneDNN's forward of fc6 on a 3x3 map with a batch of 2
took 0.66 s and PyTorch's 0.69 s, where the one matrix product it amounts to (the 4096 x 25088
weights times the unfolded input) takes ~0.16-0.21 s and reading the weights once 0.04 s.
So, where torch's CPU kernels run with AVX2 (`torch.backends.cpu.get_cpu_capability()`), a
convolution whose weights have LARGE_WEIGHTS elements or more is computed here as that product:
the forward (`large_convolutions`, around the grader's training and prediction passes) and its
three gradients (`backward`), the input unfolded (im2col) once per pass. Per training step at
the smoke profile (one thread, `benchmarks/bench_convolutions.py`): a frozen FCN-8s ~1.8x, a
fine-tuned one ~3x faster than before. A U-Net's largest weight (1024 x 1024 x 3 x 3, 9.4M)
stays under the threshold: its figures are bit for bit what they were. An FCN's differ by
rounding, as they would on another CPU (the products sum in another order).

Only the plain case takes the product: float32 on the CPU, 2-d, one group, no dilation, not
transposed, and an unfolded input of at most UNFOLDED_LIMIT elements. A large convolution
outside it keeps torch's forward and takes its gradients from PyTorch's kernels (oneDNN
switched off for it), as before. Elsewhere (AVX-512, ARM, CUDA) nothing changes until it is
measured: the machine of earlier sessions trained a fine-tuned FCN at ~1 s a step with oneDNN.
The choice is the machine's, never a timing's: on one machine the same seed gives the same
numbers.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

# Weights of this many elements or more (64 MB in float32) are computed as a matrix product.
LARGE_WEIGHTS = 16_000_000
# The unfolded input (channels x kernel area x batch x output positions) may hold this many
# elements (256 MB in float32); beyond, torch's kernels (a large weight on a large map).
UNFOLDED_LIMIT = 64_000_000
SLOW_ONEDNN = torch.backends.cpu.get_cpu_capability() == "AVX2"

_aten = torch.ops.aten
_CONVOLUTION = _aten.convolution.default
_CONVOLUTION_BACKWARD = _aten.convolution_backward.default


def _large_cpu_weight(weight) -> bool:
    return isinstance(weight, torch.Tensor) and weight.device.type == "cpu" and weight.numel() >= LARGE_WEIGHTS


def _as_product(x, weight, stride, padding, dilation, transposed, groups) -> bool:
    """Whether this large convolution is the plain case computed as a matrix product."""
    if not (weight.dtype == x.dtype == torch.float32 and weight.dim() == 4 and x.dim() == 4 and not transposed
            and groups == 1 and all(d == 1 for d in dilation) and len(stride) == len(padding) == 2):
        return False
    ho, wo = (_out(x.shape[2 + i], weight.shape[2 + i], stride[i], padding[i]) for i in (0, 1))
    return ho > 0 and wo > 0 and weight[0].numel() * x.shape[0] * ho * wo <= UNFOLDED_LIMIT


def _out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _unfolded(x, weight, stride, padding) -> torch.Tensor:
    """The input as (in channels x kernel area) x (batch x output positions)."""
    cols = F.unfold(x, tuple(weight.shape[2:]), padding=tuple(padding), stride=tuple(stride))
    return cols.transpose(0, 1).reshape(cols.shape[1], -1)


def _forward(x, weight, bias, stride, padding) -> torch.Tensor:
    n, out_channels = x.shape[0], weight.shape[0]
    ho, wo = (_out(x.shape[2 + i], weight.shape[2 + i], stride[i], padding[i]) for i in (0, 1))
    out = weight.reshape(out_channels, -1) @ _unfolded(x, weight, stride, padding)
    if bias is not None:
        out += bias[:, None]
    return out.view(out_channels, n, ho, wo).transpose(0, 1).contiguous()


def _backward(grad, x, weight, stride, padding, mask):
    n, out_channels = x.shape[0], weight.shape[0]
    g = grad.transpose(0, 1).reshape(out_channels, -1)   # out channels x (batch x output positions)
    grad_input = grad_weight = grad_bias = None
    if mask[0]:
        cols = (weight.reshape(out_channels, -1).t() @ g).view(-1, n, grad.shape[2] * grad.shape[3]).transpose(0, 1)
        grad_input = F.fold(cols, tuple(x.shape[2:]), tuple(weight.shape[2:]), padding=tuple(padding),
                            stride=tuple(stride))
    if mask[1]:
        grad_weight = (g @ _unfolded(x, weight, stride, padding).t()).view_as(weight)
    if mask[2]:
        grad_bias = grad.sum((0, 2, 3))
    return grad_input, grad_weight, grad_bias


class _LargeConvolutions(TorchDispatchMode):
    """CPU convolutions with large weights: the plain case as a matrix product, forward and
    backward; any other large one's backward on PyTorch's kernels (oneDNN switched off)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is _CONVOLUTION and not kwargs and _large_cpu_weight(args[1]):
            x, weight, bias, stride, padding, dilation, transposed, _, groups = args
            if _as_product(x, weight, stride, padding, dilation, transposed, groups):
                return _forward(x, weight, bias, stride, padding)
        if func is _CONVOLUTION_BACKWARD and not kwargs and _large_cpu_weight(args[2]):
            grad, x, weight, _, stride, padding, dilation, transposed, _, groups, mask = args
            if _as_product(x, weight, stride, padding, dilation, transposed, groups):
                return _backward(grad, x, weight, stride, padding, mask)
            was = torch.backends.mkldnn.enabled
            torch.backends.mkldnn.enabled = False
            try:
                return func(*args, **kwargs)
            finally:
                torch.backends.mkldnn.enabled = was
        return func(*args, **kwargs)


def _applies(model: torch.nn.Module) -> bool:
    return (SLOW_ONEDNN and torch.backends.mkldnn.enabled
            and any(_large_cpu_weight(p) for p in model.parameters()))


def large_convolutions(model: torch.nn.Module):
    """Where the forward passes of `model` run (the grader's training and prediction): its
    large CPU convolutions as matrix products on an AVX2 CPU. A model without weights that
    large (every U-Net), or another CPU: nothing, not even the dispatch mode's Python call
    per operation."""
    return _LargeConvolutions() if _applies(model) else nullcontext()


def backward(loss: torch.Tensor, model: torch.nn.Module) -> None:
    """`loss.backward()`, with the large CPU convolutions' gradients computed here on an AVX2
    CPU. `model`: what computed `loss`."""
    if loss.device.type != "cpu" or not _applies(model):
        loss.backward()
        return
    with _LargeConvolutions():
        loss.backward()
