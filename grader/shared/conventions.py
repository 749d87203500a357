"""Conventions both sides of the trust boundary follow (neutral: imports nothing from segrade).

The grading side uses them to build datasets and parse specs; the worker's training loop
uses the same values, so they are defined here once rather than imported across the boundary.
"""

IGNORE_INDEX = 255  # mask value of pixels that carry no label: never trained on, never scored
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the normalisation every backbone was pretrained with
IMAGENET_STD = (0.229, 0.224, 0.225)
OPTIMIZERS = ("adamw", "sgd")  # the optimisers the grader's training loop knows
