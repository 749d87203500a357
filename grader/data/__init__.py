"""Datasets: the built-in synthetic road scenes and loaders for real data.

Every dataset here is a `torch.utils.data.Dataset` whose items are

    (image, mask) = (uint8 tensor 3 x H x W, int64 tensor H x W)

(images read as RGB; `grader.data.sources.open_split` makes them 1 x H x W for a spec with
`channels = 1`) at the dataset's own size (real data) or the requested size (synthetic), with class
ids in the mask and IGNORE_INDEX for pixels that carry no label. Loaders never resize or
normalise: a grade resizes to the profile's size in `grader.grading.evaluation` and normalises
in `grader.measure.train`; `grader.data.transforms` holds augmentation helpers for your own
loops.
"""

from grader.shared.conventions import IGNORE_INDEX  # noqa: F401  (re-exported)

SPLITS = ("train", "val", "test")
