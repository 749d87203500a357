"""The report's figures, each returned as a `data:` URI so that a report is one
self-contained file: charts from matplotlib (Agg) as PNG at print resolution (SVG with
text as outlines made the PDF twice as slow to render), prediction grids as PNG composed
directly from the arrays (pixels, not a plot).

Every function takes plain data from results.json / samples.npz and returns a string;
none of them reads files or knows about templates.
"""

from __future__ import annotations

import base64
import io
import multiprocessing
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # no display; must come before pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from grader.records.results import Band  # noqa: E402

plt.rcParams.update({
    "font.size": 8, "axes.titlesize": 9, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.3, "figure.dpi": 100,
})
SUBMISSION = "#1f5fa8"
REFERENCE = "#9a9a9a"
BAND = "#cfe3cf"
BAD = "#c0392b"
THIN = "#e67e22"
IGNORE = 255
DPI = 150


Chart = tuple[Callable[..., "str | None"], tuple]   # a chart function and its arguments
MAX_DRAWING_PROCESSES = 8   # ~25 charts of ~60 ms each: more processes would cost more than they save


def draw_all(charts: Sequence[Chart], workers: int = 1) -> list[str | None]:
    """Each chart function called with its arguments, results in order. matplotlib draws on
    one core and a report has ~25 charts, so with `workers` > 1 they are drawn in that many
    forked processes (which only run matplotlib: nothing of the parent's threads is used)."""
    if workers <= 1 or len(charts) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [_draw(chart) for chart in charts]
    try:
        with warnings.catch_warnings():   # Python >= 3.12 warns about fork in a threaded process
            warnings.simplefilter("ignore", DeprecationWarning)
            processes = min(workers, len(charts), MAX_DRAWING_PROCESSES)
            with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork")) as pool:
                return list(pool.map(_draw, charts))
    except BrokenProcessPool:   # a drawing process died (out of memory...): draw here instead
        return [_draw(chart) for chart in charts]


def _draw(chart: Chart) -> str | None:
    function, args = chart
    return function(*args)


def _chart(fig) -> str:
    buf = io.BytesIO()
    # zlib level 1: a third of the encoding time of the default for a few % more bytes
    # (benchmarks/bench_report.py); the PDF re-encodes the pixels anyway.
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None}, pil_kwargs={"compress_level": 1})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _png(array: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=False, compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def curves_chart(curves: dict, miou: float | None = None, band: Band | None = None, split: str = "test") -> str | None:
    """Three panels: training loss per step; validation mIoU and pixel accuracy per interval;
    the final mIoU on `split` (diamond) on the reference band (shaded, with its mean and the
    untrained baseline) when a band applies."""
    if not curves or not curves.get("loss"):
        return None
    with_band = miou is not None and band is not None and band.measured
    fig, axes = plt.subplots(1, 3 if with_band else 2, figsize=(7.2, 2.0),
                             width_ratios=[3, 3, 1.1] if with_band else [1, 1])
    # Fixed margins rather than a layout engine: one draw per figure instead of two.
    fig.subplots_adjust(left=0.08, right=0.99, bottom=0.2, top=0.88, wspace=0.28)
    left, right = axes[0], axes[1]
    steps, loss = curves.get("loss_steps") or list(range(1, len(curves["loss"]) + 1)), curves["loss"]
    pairs = [(s, v) for s, v in zip(steps, loss) if v is not None]
    if pairs:
        left.plot(*zip(*pairs), color=SUBMISSION, lw=1)
    left.set(title="training loss", xlabel="step", ylabel="cross-entropy")
    val = [(s, m) for s, m in zip(curves.get("val_steps", []), curves.get("val_miou", [])) if m is not None]
    acc = [(s, a) for s, a in zip(curves.get("val_steps", []), curves.get("val_pixel_accuracy", [])) if a is not None]
    if val:
        right.plot(*zip(*val), "o-", color=SUBMISSION, lw=1.2, ms=3, label="mIoU")
    if acc:
        right.plot(*zip(*acc), "s--", color=REFERENCE, lw=1, ms=2.5, label="pixel acc.")
    top = max([v for _, v in val + acc] or [0.5])
    right.set(title="validation", xlabel="step", ylim=(0, min(1.0, top * 1.15 + 0.02)))
    if val or acc:
        right.legend(loc="lower right", frameon=False, fontsize=7)
    if with_band:
        _band_panel(axes[2], miou, band, split)
    return _chart(fig)


def _band_panel(ax, miou: float, band: Band, split: str) -> None:
    lower, upper, untrained = band.lower, band.upper, band.untrained
    values = [miou, lower, upper, *([untrained] if untrained is not None else [])]
    ax.axhspan(lower, upper, color=BAND)
    ax.axhline(band.mean, color=REFERENCE, lw=1.5)
    if untrained is not None:
        ax.plot(0, untrained, "x", color=REFERENCE, ms=6)
    ax.plot(0, miou, "D", color=SUBMISSION if miou >= lower else BAD, ms=7)
    ax.set(title=f"{split} vs band", xlim=(-1, 1), xticks=[], ylim=(max(0.0, min(values) - 0.03), max(values) + 0.03))
    ax.grid(axis="x", visible=False)


def per_class_chart(per_class: dict[str, float | None], reference: dict[str, float] | None,
                    thin: Sequence[str] = (), split: str = "test") -> str | None:
    """IoU per class (bars) against the reference's mean per class (ticks); thin classes in orange."""
    if not per_class:
        return None
    names = list(per_class)
    y = np.arange(len(names))
    values = [per_class[n] if per_class[n] is not None else 0.0 for n in names]
    height = 0.2 * len(names) + 0.7
    fig, ax = plt.subplots(figsize=(3.6, height))
    fig.subplots_adjust(left=0.27, right=0.97, bottom=0.45 / height, top=1 - 0.08 / height)
    ax.barh(y, values, color=[THIN if n in thin else SUBMISSION for n in names], height=0.6, label="submission")
    if reference:
        ax.plot([reference.get(n, np.nan) for n in names], y, "|", color="black", ms=11, mew=2,
                label="reference mean")
        ax.legend(loc="lower right", frameon=False)
    for i, n in enumerate(names):
        if per_class[n] is None:
            ax.text(0.01, i, f"absent from the {split} images", va="center", color=REFERENCE, fontsize=7)
    ax.set(yticks=y, yticklabels=names, xlim=(0, 1), xlabel=f"{split} IoU")
    ax.invert_yaxis()
    for label in ax.get_yticklabels():
        if label.get_text() in thin:
            label.set_color(THIN)
    return _chart(fig)


def comparison_chart(per_class: dict[str, dict[str, float | None]], titles: dict[str, str],
                     thin: Sequence[str] = (), split: str = "test") -> str | None:
    """Grouped bars: IoU per class for each variant of a comparison."""
    variants = [v for v, values in per_class.items() if values]
    if len(variants) < 2:
        return None
    names = list(per_class[variants[0]])
    x = np.arange(len(names))
    width = 0.8 / len(variants)
    fig, ax = plt.subplots(figsize=(7.2, 2.6))
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.3, top=0.8)
    colours = plt.get_cmap("tab10")
    for i, vid in enumerate(variants):
        ax.bar(x + (i - (len(variants) - 1) / 2) * width,
               [per_class[vid].get(n) or 0.0 for n in names], width, label=titles.get(vid, vid), color=colours(i))
    ax.set(xticks=x, ylim=(0, 1), ylabel=f"{split} IoU")
    ax.set_xticklabels(names, rotation=40, ha="right")
    for label in ax.get_xticklabels():
        if label.get_text() in thin:
            label.set_color(THIN)
            label.set_fontweight("bold")
    ax.legend(ncol=min(3, len(variants)), fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(0, 1.25))
    return _chart(fig)


def histogram_chart(values: Sequence[float], maximum: float, xlabel: str) -> str | None:
    if not values:
        return None
    fig, ax = plt.subplots(figsize=(7.2, 2.0))
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.22, top=0.95)
    ax.hist(values, bins=np.linspace(0, maximum, 21), color=SUBMISSION, edgecolor="white")
    ax.set(xlabel=xlabel, ylabel="submissions", xlim=(0, maximum))
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    return _chart(fig)


def distribution_chart(mious: dict[str, list[float]], bands: dict[str, Band | None], titles: dict[str, str],
                       label: str = "test mIoU") -> str | None:
    """Per variant: every submission's mIoU (dots) over the reference band (shaded)."""
    variants = list(mious)
    if not any(mious.values()):
        return None
    height = 0.32 * len(variants) + 0.8
    fig, ax = plt.subplots(figsize=(7.2, height))
    fig.subplots_adjust(left=0.3, right=0.98, bottom=0.5 / height, top=1 - 0.1 / height)
    rng = np.random.default_rng(0)  # jitter only, fixed so the chart is stable
    for i, vid in enumerate(variants):
        band = bands.get(vid)
        if band is not None and band.measured:
            ax.fill_betweenx([i - 0.35, i + 0.35], band.lower, band.upper, color=BAND)
            ax.plot([band.mean] * 2, [i - 0.35, i + 0.35], color=REFERENCE, lw=1.5)
        values = mious[vid]
        if values:
            ax.plot(values, i + rng.uniform(-0.2, 0.2, len(values)), "o", color=SUBMISSION, ms=3.5, alpha=0.8)
    ax.set(yticks=range(len(variants)), yticklabels=[titles.get(v, v) for v in variants], xlim=(0, 1),
           xlabel=f"{label} (shaded: reference band)")
    ax.invert_yaxis()
    return _chart(fig)


def colourise(mask: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """H x W class ids -> H x W x 3 colours; ignored or out-of-range ids are white."""
    out = np.full((*mask.shape, 3), 255, np.uint8)
    valid = mask < len(palette)
    out[valid] = palette[mask[valid]]
    return out


def prediction_grid(images: np.ndarray, masks: np.ndarray, predictions: np.ndarray,
                    palette: Sequence[Sequence[int]]) -> str:
    """One row per test image: image | ground truth | prediction | errors (wrong pixels red
    over a dimmed image, ignored pixels black). Small images are enlarged (nearest) so that
    thin structures stay visible."""
    palette = np.asarray(palette, np.uint8)
    n, _, h, w = images.shape
    scale = max(1, 160 // max(h, w))
    gap = 4
    rows = []
    for i in range(n):
        image = images[i].transpose(1, 2, 0)
        if image.shape[2] == 1:   # a grayscale course's image, shown as such
            image = np.repeat(image, 3, axis=2)
        truth, pred = masks[i].astype(np.int64), predictions[i].astype(np.int64)
        errors = (image * 0.3 + 178).astype(np.uint8)  # correct pixels: the image, washed out
        errors[(pred != truth) & (truth != IGNORE)] = (220, 30, 30)
        errors[truth == IGNORE] = 0
        tiles = [image, colourise(truth, palette), colourise(pred, palette), errors]
        spacer = np.full((h, gap // scale or 1, 3), 255, np.uint8)
        row = np.concatenate([part for tile in tiles for part in (tile, spacer)][:-1], axis=1)
        rows.append(row)
        rows.append(np.full((gap // scale or 1, row.shape[1], 3), 255, np.uint8))
    grid = np.concatenate(rows[:-1], axis=0)
    grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    return _png(grid)
