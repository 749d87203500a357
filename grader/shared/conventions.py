"""Conventions both sides of the trust boundary follow (neutral: imports nothing from segrade).

The grading side uses them to build datasets and parse specs; the worker's training loop
uses the same values, so they are defined here once rather than imported across the boundary.
"""

IGNORE_INDEX = 255  # mask value of pixels that carry no label: never trained on, never scored
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the normalisation every backbone was pretrained with
IMAGENET_STD = (0.229, 0.224, 0.225)
OPTIMIZERS = ("adamw", "sgd")  # the optimisers the grader's training loop knows
CHANNELS = (1, 3)  # the image channels a course's data may have: grayscale or RGB ([dataset] channels)


def normalisation(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel of the images a model receives: ImageNet's for RGB; for
    grayscale, their averages (what a grayscale copy of ImageNet would have, near enough)."""
    if channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    if channels == 1:
        return (round(sum(IMAGENET_MEAN) / 3, 4),), (round(sum(IMAGENET_STD) / 3, 4),)
    raise ValueError(f"images with {channels} channels: segrade reads grayscale (1) or RGB (3) images")
