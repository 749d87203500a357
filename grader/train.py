"""The grader's training loop and prediction, the same for every model.

Plain PyTorch on purpose: the optimiser, learning rate, batch size, steps and seed
are the grader's, not the student's, so that variants are compared on equal terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from grader.data import IGNORE_INDEX


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 200
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0


@dataclass
class TrainLog:
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def train(model: nn.Module, dataset: Dataset, config: TrainConfig, device: torch.device | str = "cpu") -> TrainLog:
    """Train on (normalised image, mask) items for config.steps steps, cycling the data in a
    seeded order. Only parameters with requires_grad are optimised."""
    import time

    torch.manual_seed(config.seed)
    device = torch.device(device)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(config.seed))
    log = TrainLog()
    started = time.perf_counter()
    step = 0
    while step < config.steps:
        for images, masks in loader:
            images, masks = images.to(device), masks.to(device)
            loss = loss_fn(model(images), masks)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            log.losses.append(loss.item())
            step += 1
            if step >= config.steps:
                break
    log.seconds = time.perf_counter() - started
    return log


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, batch_size: int = 16, device: torch.device | str = "cpu") -> torch.Tensor:
    """Class ids (uint8, N x H x W) for every item's image, in dataset order."""
    model.to(device).eval()
    out = []
    for images, _ in DataLoader(dataset, batch_size=batch_size):
        out.append(model(images.to(device)).argmax(1).to(torch.uint8).cpu())
    return torch.cat(out)
