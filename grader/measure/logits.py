"""The logits in what a model's forward returned."""

from __future__ import annotations

from typing import Any


def to_logits(output: Any) -> Any:
    """The logits tensor in what forward returned: a tensor; a dict's "out" (torchvision) or
    "logits" (Hugging Face) or its only tensor; a tuple/list's first 4-D tensor, else its
    first tensor (so `(loss, pred)` gives pred when pred is 4-D)."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        for key in ("out", "logits"):
            if isinstance(output.get(key), torch.Tensor):
                return output[key]
        tensors = [v for v in output.values() if isinstance(v, torch.Tensor)]
        if len(tensors) == 1:
            return tensors[0]
        raise TypeError(f"forward returned a dict with keys {list(output)[:8]}, and segrade cannot tell which is "
                        "the logits: return the N x C x H x W logits tensor (or a dict with 'out')")
    if isinstance(output, (tuple, list)):
        tensors = [v for v in output if isinstance(v, torch.Tensor)]
        four_d = [t for t in tensors if t.dim() == 4]
        if four_d or tensors:
            return (four_d or tensors)[0]
        kinds = ", ".join(type(v).__name__ for v in output[:6])
        raise TypeError(f"forward returned a {type(output).__name__} of ({kinds}) with no tensor in it: "
                        "return the N x C x H x W logits tensor")
    raise TypeError(f"forward returned {type(output).__name__}, not a tensor: return the N x C x H x W logits "
                    "tensor (a dict with 'out' or a tuple whose first tensor is the logits is also accepted)")
