"""Joint image/mask transforms: resizing to a profile's size, augmentation, normalisation.

Datasets (`grader.data`) give ``(uint8 image C x H x W, int64 mask H x W)`` at their own
size, C = 3 (RGB) or 1 (a grayscale course, `[dataset] channels = 1`). A transform here takes
that pair and returns ``(float32 image C x h x w, normalised as the course's models receive
images (grader.shared.conventions.normalisation); int64 mask h x w)`` as plain tensors:

* `eval_transform(size)`: resize (image bilinear with antialiasing, mask nearest),
  normalise. Deterministic; used for validation, test and hidden-label evaluation.
* `train_transform(size)`: random scale, random crop (padding: image with the mean
  colour, mask with `IGNORE_INDEX`, never a class id), horizontal flip, colour jitter
  (image only; brightness and contrast alone for grayscale), normalise.

Both take `channels=` (3 unless the course is grayscale).

Both are built from `torchvision.transforms.v2` acting on `tv_tensors.Image` and
`tv_tensors.Mask` together, so geometric operations apply identically to both.

Masks are resized with NEAREST_EXACT (PIL's nearest: the source pixel whose centre is
nearest), not torch's legacy NEAREST (which picks the top-left source pixel and shifts
the mask by up to half a source pixel against the bilinear image: at 600x800 -> 256x256,
about 5x more mask pixels disagree with the image). Either way no new ids appear.

Randomness comes from torch's global RNG, which `torch.utils.data.DataLoader` reseeds
for each worker and each epoch; `torch.manual_seed(s)` before building the loader's
iterator makes a run reproducible. (A transform holding its own seeded generator would
repeat the same augmentations in every worker and, with non-persistent workers, every
epoch, so there is no per-transform seed.)
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from grader.shared.conventions import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD, normalisation

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PairTransform",
    "JointResize",
    "RandomScaleResize",
    "eval_transform",
    "train_transform",
    "denormalize",
    "TransformedDataset",
]


def _mean_fill(channels: int) -> tuple[int, ...]:
    """The mean colour in 0..255: padding the uint8 image with it gives ~0 after normalising."""
    return tuple(round(255 * m) for m in normalisation(channels)[0])


Size = int | Sequence[int]


def _hw(size: Size) -> list[int]:
    """(h, w) from an int (a square: 224 -> 224 x 224) or an (h, w) pair."""
    if isinstance(size, numbers.Integral):
        h = w = size
    else:
        if len(size) != 2:
            raise ValueError(f"size must be an int or (height, width), got {size!r}")
        h, w = (int(s) for s in size)
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return [h, w]


def _resize(inpt: Any, size: list[int]) -> Any:
    if isinstance(inpt, tv_tensors.Mask):
        return F.resize(inpt, size, interpolation=InterpolationMode.NEAREST_EXACT)
    return F.resize(inpt, size, interpolation=InterpolationMode.BILINEAR, antialias=True)


class JointResize(v2.Transform):
    """Resize to exactly (h, w) (an int means a square; the aspect ratio is not kept):
    images bilinear with antialiasing, masks nearest (NEAREST_EXACT)."""

    def __init__(self, size: Size) -> None:
        super().__init__()
        self.size = _hw(size)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return _resize(inpt, self.size)


class RandomScaleResize(v2.Transform):
    """Resize to (h * s, w * s), s drawn uniformly from `scale` once per sample, from the
    input's own size directly (one resampling). With s = 1 this is `JointResize(size)`."""

    def __init__(self, size: Size, scale: tuple[float, float] = (0.75, 1.5)) -> None:
        super().__init__()
        self.size = _hw(size)
        lo, hi = (float(s) for s in scale)
        if not 0 < lo <= hi:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale!r}")
        self.scale = (lo, hi)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        s = torch.empty(()).uniform_(*self.scale).item()
        return {"size": [max(1, round(self.size[0] * s)), max(1, round(self.size[1] * s))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return _resize(inpt, params["size"])


class PairTransform:
    """Applies a v2 pipeline to an (image, mask) pair of plain tensors.

    The image (uint8 or float, `channels` x H x W: 3 for RGB, 1 for grayscale) is wrapped as
    `tv_tensors.Image` and the mask (integer, H x W) as `tv_tensors.Mask`; the result is
    (plain float32 tensor, plain int64 tensor). `mask` may be None (inference on unlabelled
    images): the result's mask is then None. An image of other channels is refused: the
    pipeline's normalisation would broadcast it to its own channel count without a word.
    """

    def __init__(self, pipeline: Callable[..., Any], channels: int = 3) -> None:
        self.pipeline, self.channels = pipeline, channels

    def __call__(self, image: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if image.ndim != 3 or image.shape[0] != self.channels:
            hint = " (channels=1 for a grayscale course)" if image.ndim == 3 and image.shape[0] == 1 else ""
            raise ValueError(f"image must be {self.channels} x H x W for this transform{hint}, "
                             f"got shape {tuple(image.shape)}")
        if mask is None:
            out = self.pipeline(tv_tensors.Image(image))
            return out.as_subclass(torch.Tensor), None
        if mask.shape != image.shape[1:]:
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match image size {tuple(image.shape[1:])}")
        out_image, out_mask = self.pipeline(tv_tensors.Image(image), tv_tensors.Mask(mask))
        return out_image.as_subclass(torch.Tensor), out_mask.as_subclass(torch.Tensor).to(torch.int64)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.pipeline!r})"


def _to_normalised_float(channels: int) -> list[v2.Transform]:
    mean, std = normalisation(channels)
    return [
        v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
        v2.Normalize(mean=list(mean), std=list(std)),
    ]


def eval_transform(size: Size, *, channels: int = 3) -> PairTransform:
    """Resize to `size` (int: square; or (h, w)) and normalise; no randomness."""
    return PairTransform(v2.Compose([JointResize(size), *_to_normalised_float(channels)]), channels)


def train_transform(size: Size, *, scale: tuple[float, float] = (0.75, 1.5), hflip: bool = True,
                    color_jitter: bool = True, channels: int = 3) -> PairTransform:
    """Augmenting transform for training at `size`.

    1. resize to ``size * s``, s ~ U(`scale`) (image bilinear, mask nearest);
    2. random crop of `size`; where the scaled sample is smaller it is padded, the image
       with the mean colour and the mask with `IGNORE_INDEX` (255);
    3. horizontal flip with probability 0.5 (if `hflip`);
    4. colour jitter, image only (brightness, contrast, saturation 0.3, hue 0.02; for
       grayscale brightness and contrast only; if `color_jitter`);
    5. float conversion and normalisation, as in `eval_transform`.
    """
    hw = _hw(size)
    steps: list[v2.Transform] = [
        RandomScaleResize(hw, scale),
        v2.RandomCrop(hw, pad_if_needed=True, fill={tv_tensors.Image: _mean_fill(channels),
                                                    tv_tensors.Mask: IGNORE_INDEX}),
    ]
    if hflip:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    if color_jitter:
        colour = {"saturation": 0.3, "hue": 0.02} if channels == 3 else {}   # no colour in grayscale
        steps.append(v2.ColorJitter(brightness=0.3, contrast=0.3, **colour))
    return PairTransform(v2.Compose([*steps, *_to_normalised_float(channels)]), channels)


def denormalize(image: torch.Tensor) -> torch.Tensor:
    """Undo the normalisation of a float image (C x H x W or N x C x H x W, C = 3 or 1):
    a uint8 tensor of the same shape, for previews."""
    if image.ndim not in (3, 4) or image.shape[-3] not in (1, 3):
        raise ValueError(f"image must be C x H x W or N x C x H x W with C = 3 or 1, got shape {tuple(image.shape)}")
    channels = image.shape[-3]
    mean, std = (torch.tensor(v, dtype=torch.float32, device=image.device).view(channels, 1, 1)
                 for v in normalisation(channels))
    pixels = image.detach().float() * std + mean
    return (pixels * 255).round_().clamp_(0, 255).to(torch.uint8)


class TransformedDataset(Dataset):
    """`dataset` with `transform(image, mask)` applied to each item."""

    def __init__(self, dataset: Dataset, transform: Callable[[torch.Tensor, torch.Tensor], tuple[Any, Any]]) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image, mask = self.dataset[index]
        return self.transform(image, mask)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.dataset!r}, {self.transform!r})"
