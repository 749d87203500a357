"""The grader's training loop and prediction, the same for every model.

Plain PyTorch on purpose: the optimiser, learning rate, batch size, steps and seed
are the grader's, not the student's, so that variants are compared on equal terms.
On CUDA the loop uses bf16 autocast and channels_last; on CPU it is deterministic
(same seed, same data, same thread count -> the same weights).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from grader.measure.convolutions import backward, large_convolutions
from grader.shared.conventions import IGNORE_INDEX, OPTIMIZERS, normalisation



@dataclass(frozen=True)
class TrainConfig:
    steps: int = 200
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"   # adamw, or sgd (momentum 0.9)
    seed: int = 0
    hflip: bool = True         # flip each sample left-right with probability 0.5 (seeded)
    eval_every: int = 0        # call on_eval every this many steps (0: never) and after the last


@dataclass
class TrainLog:
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


class SegmentationTensors(Dataset):
    """(normalised float image, int64 mask) items from uint8 N x C x H x W images (C = 3, or 1
    for a grayscale course) and N x H x W masks held in memory; masks may be None (prediction only)."""

    def __init__(self, images: torch.Tensor, masks: torch.Tensor | None = None) -> None:
        self.images, self.masks = images, masks
        mean, std = normalisation(images.shape[1])
        self._mean = torch.tensor(mean).view(-1, 1, 1)
        self._std = torch.tensor(std).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = (self.images[index].float() / 255 - self._mean) / self._std
        mask = self.masks[index].long() if self.masks is not None else torch.zeros(image.shape[1:], dtype=torch.long)
        return image, mask


def _optimizer(params, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    # The fused AdamW kernel is ~6x faster on CPU for VGG-sized heads (fc6 alone has 102M
    # parameters) and gives the same update; it needs floating-point parameters.
    fused = device.type in ("cpu", "cuda") and all(p.is_floating_point() for p in params) or None
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; use one of {', '.join(OPTIMIZERS)}")


def _autocast(device: torch.device):
    # bf16 on CUDA: no loss scaling needed; CPU and MPS run in float32.
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def _images_to(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch on the device, channels_last on CUDA (where the convolutions prefer it)."""
    images = images.to(device, non_blocking=True)
    return images.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else images


def train(model: nn.Module, dataset: Dataset, config: TrainConfig, device: torch.device | str = "cpu",
          on_eval: Callable[[int, TrainLog], None] | None = None,
          on_step: Callable[[int], None] | None = None,
          on_backward: Callable[[int], None] | None = None) -> TrainLog:
    """Train on (normalised image, mask) items for config.steps steps, cycling the data in a
    seeded order. Only parameters with requires_grad are optimised. `on_eval(step, log)` is
    called every config.eval_every steps and after the last step (the model is left in
    train mode afterwards; the callback switches it to eval itself). `on_step(step)` is called
    after every step (progress display); `on_backward(step)` between the backward pass and
    the optimiser step (the checks read the gradients there)."""
    torch.manual_seed(config.seed)
    device = torch.device(device)
    model.to(device).train()
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = _optimizer(params, config, device)
    loss_fn = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, drop_last=len(dataset) >= config.batch_size,
                        generator=torch.Generator().manual_seed(config.seed))
    flips = torch.Generator().manual_seed(config.seed + 1)
    log = TrainLog()
    started = time.perf_counter()
    step = 0
    while step < config.steps:
        for images, masks in loader:
            if config.hflip:
                flip = torch.rand(len(images), generator=flips) < 0.5
                images[flip], masks[flip] = images[flip].flip(-1), masks[flip].flip(-1)
            images, masks = _images_to(images, device), masks.to(device, non_blocking=True)
            with _autocast(device), large_convolutions(model):
                logits = model(images)
            loss = loss_fn(logits.float(), masks)
            optimizer.zero_grad(set_to_none=True)
            backward(loss, model)
            if on_backward is not None:
                on_backward(step + 1)
            optimizer.step()
            log.losses.append(loss.item())
            step += 1
            if on_step is not None:
                on_step(step)
            if on_eval is not None and (step == config.steps or (config.eval_every and step % config.eval_every == 0)):
                log.seconds = time.perf_counter() - started
                on_eval(step, log)
                model.train()
            if step >= config.steps:
                break
    log.seconds = time.perf_counter() - started
    return log


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, batch_size: int = 16, device: torch.device | str = "cpu",
            to_logits: Callable[[object], torch.Tensor] | None = None) -> torch.Tensor:
    """Class ids (uint8, N x H x W) for every item's image, in dataset order."""
    device = torch.device(device)
    model.to(device).eval()
    out = []
    for images, _ in DataLoader(dataset, batch_size=batch_size):
        images = _images_to(images, device)
        with _autocast(device), large_convolutions(model):
            raw = model(images)
        logits = to_logits(raw) if to_logits is not None else raw
        out.append(logits.argmax(1).to(torch.uint8).cpu())
    return torch.cat(out)
