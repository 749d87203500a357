"""The assignment's dataset checked before anything runs on it.

`check_dataset(config, splits)` looks at a real dataset on disk the way the loaders will read
it (grader.data.folders): the root exists; every split a command needs is there; images and
masks pair up; image and mask sizes can be read and agree; mask ids lie within the spec's
classes (ids outside them are counted, per file and in pixels, and named). It collects every
problem instead of stopping at the first, so one run tells the instructor everything to fix.

Reading every mask of a large dataset takes a while (Cityscapes: ~3000 files), so the
commands that grade read a sample of each split (`sample`, spread evenly: frames are
sequential); `segrade data check` reads all of them unless told otherwise. The listing and
the pairing always cover every file.

The synthetic scenes have nothing on disk: they always pass.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from grader.data import IGNORE_INDEX, SPLITS
from grader.spec import DatasetConfig

_LISTED = 5  # files and ids named in one problem before "and N more"


class DataCheckError(ValueError):
    """The dataset is not usable as the spec describes it; the message says what to fix."""


@dataclass(frozen=True)
class SplitCheck:
    split: str
    pairs: int = 0                                   # image/mask pairs found
    read: int = 0                                    # pairs whose contents were read
    sizes: dict[str, int] = field(default_factory=dict)          # "WxH" -> images of that size (read ones)
    class_pixels: dict[int, int] = field(default_factory=dict)   # class id -> pixels (read masks, valid ids)
    unexpected: dict[int, int] = field(default_factory=dict)     # id outside the classes -> pixels
    unexpected_files: tuple[str, ...] = ()           # masks holding such ids
    problems: tuple[str, ...] = ()
    ignored: int = 0                                 # pixels at the ignore index (read masks)


@dataclass(frozen=True)
class DataCheck:
    kind: str
    root: Path | None
    num_classes: int
    splits: tuple[SplitCheck, ...] = ()
    problems: tuple[str, ...] = ()                   # dataset-wide (the root itself)

    @property
    def ok(self) -> bool:
        return not self.problems and not any(s.problems for s in self.splits)

    def all_problems(self) -> list[str]:
        return [*self.problems, *(p for s in self.splits for p in s.problems)]

    def message(self, spec_path: Path | None = None) -> str:
        """Every problem, then what to do."""
        where = f" of {spec_path}" if spec_path else ""
        lines = [f"the {self.kind} dataset{where} at {self.root} cannot be used:"]
        lines += [f"  - {p}" for p in self.all_problems()]
        spec = f" --spec {spec_path}" if spec_path else ""
        lines.append(f"fix the data or the [dataset] table of the spec (root, kind, class_names, options), then run "
                     f"`segrade data check{spec}` (docs/datasets.md)")
        return "\n".join(lines)


def _listing(items: list, limit: int = _LISTED) -> str:
    shown = ", ".join(str(x) for x in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _spread(n: int, count: int | None) -> list[int]:
    """`count` indices spread evenly over n (all of them when count is None or >= n)."""
    if count is None or count >= n:
        return list(range(n))
    if count <= 0:
        return []
    return sorted({round(i * (n - 1) / max(count - 1, 1)) for i in range(count)})


def _size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding the pixels."""
    with Image.open(path) as img:
        return img.size


def _check_split(dataset, split: str, num_classes: int, sample: int | None) -> SplitCheck:
    from grader.data.folders import DatasetError, _read_mask_array

    files = list(dataset.files)
    sizes: Counter[str] = Counter()
    pixels: Counter[int] = Counter()
    ignored = 0
    unexpected: Counter[int] = Counter()
    unexpected_files: list[str] = []
    problems: list[str] = []
    unreadable: list[str] = []
    mismatched: list[str] = []
    indices = _spread(len(files), sample)
    for i in indices:
        image_path, mask_path = files[i]
        try:
            width, height = _size(image_path)
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
            unreadable.append(f"{image_path} ({type(exc).__name__}: {exc})")
            continue
        try:
            raw = _read_mask_array(mask_path)
            ids = dataset.decode_mask(mask_path, raw)
        except DatasetError as exc:
            unreadable.append(str(exc))
            continue
        if raw.shape[:2] != (height, width):
            mismatched.append(f"{mask_path} is {raw.shape[1]}x{raw.shape[0]}, its image {image_path.name} "
                              f"{width}x{height}")
            continue
        remap = getattr(dataset, "_remap", None)
        if remap is not None:
            ids = remap[np.clip(ids, 0, len(remap) - 1)]
        sizes[f"{width}x{height}"] += 1
        values, counts = np.unique(ids, return_counts=True)
        bad_here = False
        for value, count in zip(values.tolist(), counts.tolist()):
            if value == IGNORE_INDEX:
                ignored += count
                continue
            if 0 <= value < num_classes:
                pixels[value] += count
            else:
                unexpected[value] += count
                bad_here = True
        if bad_here:
            unexpected_files.append(str(mask_path))
    if unreadable:
        problems.append(f"{split}: {len(unreadable)} file(s) cannot be read or decoded: {_listing(unreadable, 3)}")
    if mismatched:
        problems.append(f"{split}: {len(mismatched)} mask(s) differ in size from their image: {_listing(mismatched, 3)}")
    if unexpected:
        ids = sorted(unexpected)
        named = _listing([f"{v} ({unexpected[v]} px)" for v in ids], 8)
        problems.append(f"{split}: {len(unexpected_files)} mask(s) hold class ids outside the spec's {num_classes} "
                        f"classes (valid: 0..{num_classes - 1}, or {IGNORE_INDEX} = ignore): {named}; in "
                        f"{_listing(unexpected_files, 3)}. Add the classes to class_names, or map the ids with "
                        f"[dataset.options] remap = {{ \"{ids[0]}\" = 255 }}")
    return SplitCheck(split, len(files), len(indices), dict(sizes), dict(sorted(pixels.items())),
                      dict(sorted(unexpected.items())), tuple(unexpected_files), tuple(problems), ignored)


def _only_background(config: DatasetConfig, splits: list[SplitCheck]) -> str | None:
    """Binary masks saved as 0/255 (the usual way to store them) read as background and the
    ignore index: the foreground would never be learned nor scored, and every mask is "valid"."""
    read = [s for s in splits if s.read]
    ignored = sum(s.ignored for s in read)
    if len(config.class_names) < 2 or not read or not ignored or any(k for s in read for k in s.class_pixels):
        return None
    total = ignored + sum(n for s in read for n in s.class_pixels.values())
    others = _listing([f"{i} ({name})" for i, name in enumerate(config.class_names) if i], 3)
    return (f"the masks hold only class 0 ({config.class_names[0]}) and {IGNORE_INDEX}, the ignore index "
            f"({ignored} px, {100 * ignored / total:.0f}% of the pixels read): no pixel is ever class {others}. "
            f"Binary masks saved as 0/{IGNORE_INDEX}? Map {IGNORE_INDEX} to the class: [dataset.options] "
            f"remap = {{ \"{IGNORE_INDEX}\" = 1 }}")


def check_dataset(config: DatasetConfig, splits: tuple[str, ...] = SPLITS, *, sample: int | None = None) -> DataCheck:
    """Check the splits `splits` of the dataset `config` describes; `sample`: read the
    contents of at most that many pairs per split (None: all)."""
    from grader.data.folders import DatasetError, open_dataset

    num_classes = len(config.class_names)
    if config.kind == "synthetic":
        return DataCheck(config.kind, None, num_classes)
    root = config.root
    if root is None or not Path(root).is_dir():
        what = "does not exist" if root is None or not Path(root).exists() else "is not a folder"
        return DataCheck(config.kind, root, num_classes,
                         problems=(f"the dataset root {root} {what} (the spec's [dataset] root; a relative path is "
                                   "relative to the spec file)",))
    checked = []
    for split in splits:
        try:
            dataset = open_dataset(config.kind, root, split, num_classes=num_classes, palette=config.palette,
                                   **config.options)
        except (DatasetError, ImportError) as exc:
            checked.append(SplitCheck(split, problems=(f"{split}: {exc}",)))
            continue
        if not len(dataset):
            checked.append(SplitCheck(split, problems=(f"{split}: no image/mask pairs",)))
            continue
        checked.append(_check_split(dataset, split, num_classes, sample))
    binary = _only_background(config, checked)
    return DataCheck(config.kind, Path(root), num_classes, tuple(checked), (binary,) if binary else ())


def splits_needed(evaluation_split: str = "test") -> tuple[str, ...]:
    """The splits a command reads: training and the curves need train and val; grading scores
    on the hidden test split, a student's self-check on val (students have no test labels)."""
    return ("train", "val") if evaluation_split == "val" else SPLITS


# Pairs read per split when a grading command checks the data before it starts: every file is
# listed and paired, a sample's contents are read (`segrade data check` reads them all).
PREFLIGHT_SAMPLE = 32


def require_dataset(config: DatasetConfig, splits: tuple[str, ...], spec_path: Path | None = None,
                    sample: int | None = PREFLIGHT_SAMPLE) -> DataCheck:
    """`check_dataset`, raising DataCheckError with every problem when the data is not usable."""
    report = check_dataset(config, splits, sample=sample)
    if not report.ok:
        raise DataCheckError(report.message(spec_path))
    return report
