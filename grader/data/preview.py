"""The assignment's dataset visualisation: one sample as image, coloured mask and one
binary mask per class (titled with the class name), then a grid of samples with a legend."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from grader.data import IGNORE_INDEX

IGNORE_COLOUR = (255, 255, 255)


def binary_masks(mask: torch.Tensor | np.ndarray, num_classes: int) -> np.ndarray:
    """Split an H x W class-id mask into num_classes binary H x W masks (C x H x W, bool)."""
    mask = np.asarray(mask)
    return mask[None, :, :] == np.arange(num_classes)[:, None, None]


def colorize(mask: torch.Tensor | np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """H x W ids -> H x W x 3 uint8 in the palette; ignored pixels white."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(palette)] = np.asarray(palette, dtype=np.uint8)
    lut[IGNORE_INDEX] = IGNORE_COLOUR
    return lut[np.asarray(mask).astype(np.uint8)]


def _rgb(image: torch.Tensor) -> np.ndarray:
    """H x W x 3 for display, from a 3 x H x W image or a grayscale course's 1 x H x W one."""
    return image.expand(3, -1, -1).permute(1, 2, 0).numpy()


def render_preview(samples: Sequence[tuple[torch.Tensor, torch.Tensor]], class_names: Sequence[str],
                   palette: Sequence[Sequence[int]], out: str | Path, title: str = "") -> Path:
    """Write a PNG: samples[0] in detail (image, coloured mask, binary masks), then every
    sample as image over coloured mask, and a legend. Items are (uint8 3xHxW or 1xHxW, HxW ids)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    num_classes = len(class_names)
    image, mask = samples[0]
    columns = max(7, len(samples))
    mask_rows = -(-num_classes // columns)
    rows = 1 + mask_rows + 2
    fig, axes = plt.subplots(rows, columns, figsize=(2.0 * columns, 2.1 * rows + 0.8), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")

    axes[0, 0].imshow(_rgb(image))
    axes[0, 0].set_title("image", fontsize=9)
    axes[0, 1].imshow(colorize(mask, palette), interpolation="nearest")
    axes[0, 1].set_title("mask", fontsize=9)
    present = set(np.unique(np.asarray(mask)).tolist())
    axes[0, 2].text(0, 0.5, "\n".join(f"{c}: {name}" + ("" if c in present else " (absent)")
                                      for c, name in enumerate(class_names)),
                    fontsize=7, va="center", transform=axes[0, 2].transAxes)
    for c, binary in enumerate(binary_masks(mask, num_classes)):
        ax = axes[1 + c // columns, c % columns]
        ax.imshow(binary, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{c} {class_names[c]}", fontsize=8)
        # A frame, no ticks: a class that fills the image (a binary course's background) is a
        # white panel, which on the white figure would look like a missing one.
        ax.axis("on")
        ax.set_xticks([]), ax.set_yticks([])
        for spine in ax.spines.values():   # all four, whatever rcParams hide (the report's figures hide two)
            spine.set_visible(True)
            spine.set_edgecolor("0.6")

    for i, (img, msk) in enumerate(samples[:columns]):
        axes[rows - 2, i].imshow(_rgb(img))
        axes[rows - 1, i].imshow(colorize(msk, palette), interpolation="nearest")
    handles = [Patch(facecolor=np.asarray(colour) / 255, edgecolor="black", label=name)
               for name, colour in zip(class_names, palette)]
    fig.legend(handles=handles, loc="lower center", ncol=min(num_classes, 7), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out
