"""Loaders for real segmentation data on disk.

Three layouts are understood, each a `torch.utils.data.Dataset` whose items are
``(image uint8 tensor 3 x H x W, mask int64 tensor H x W)`` at the files' own size,
with class ids in the mask and `IGNORE_INDEX` (255) for unlabelled pixels:

* `FolderDataset`: the generic layout ``ROOT/{train,val,test}/{images,masks}/``;
  masks hold class ids (single-channel PNG) or colours of the class palette (RGB PNG).
* `CarlaDataset`: the Lyft-Udacity CARLA frames, folders holding ``CameraRGB/`` and
  ``CameraSeg/`` (class id in the red channel), split by folder.
* `CityscapesDataset`: ``leftImg8bit/`` and ``gtFine/``, labelIds mapped to the 19
  train ids (needs the optional ``cityscapesscripts`` package for its label table).

`open_dataset(kind, root, split, ...)` picks one by name, for the assignment spec.

Loaders never resize or normalise (`grader.data.transforms` does). File pairing is
checked when a dataset is built (it only lists folders); file contents are checked
when an item is loaded. Bad data raises `DatasetError` naming the file.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from grader.data import IGNORE_INDEX, SPLITS

__all__ = [
    "DatasetError",
    "SPLITS",
    "IMAGE_EXTENSIONS",
    "SegmentationFiles",
    "FolderDataset",
    "CarlaDataset",
    "CityscapesDataset",
    "cityscapes_id_to_train_id",
    "open_dataset",
    "DATASET_KINDS",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_MAX_LISTED = 3  # how many offending colours / ids / files an error message lists


class DatasetError(ValueError):
    """Data on disk is missing, unreadable or inconsistent; the message names the file."""


# --------------------------------------------------------------------------- helpers


def _listing(items: Sequence[Any], limit: int = _MAX_LISTED) -> str:
    shown = ", ".join(str(x) for x in items[:limit])
    if len(items) > limit:
        shown += f" and {len(items) - limit} more"
    return shown


def _visible_files(folder: Path, extensions: Iterable[str]) -> list[Path]:
    """Files in `folder` with one of `extensions` (any case), hidden files (``.*``,
    e.g. macOS ``._x.png``) skipped, sorted by name."""
    extensions = tuple(e.lower() for e in extensions)
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in extensions
    )


def _decode(path: Path, convert) -> np.ndarray:
    """Open an image file and return `convert(decoded PIL image)`, turning any PIL or OS
    failure into a DatasetError naming the file."""
    try:
        with Image.open(path) as img:
            img.load()
            return convert(img)
    except DatasetError:
        raise
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read image: {exc}") from None


def _rgb_array(img: Image.Image) -> np.ndarray:
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def _read_rgb(path: Path) -> np.ndarray:
    """H x W x 3 uint8 array of an image file (any PIL mode converted to RGB)."""
    return _decode(path, _rgb_array)


def _mask_array(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("L", "P", "I", "I;16", "I;16L", "I;16B"):
        return np.asarray(img)
    if mode in ("RGB", "RGBA"):
        return np.asarray(img)[..., :3]
    if mode in ("LA", "PA"):
        return np.asarray(img.getchannel(0))
    if mode == "1":
        return np.asarray(img, dtype=np.uint8)
    raise DatasetError(f"{img.filename}: unsupported mask image mode {mode!r} (use an L, P or RGB PNG)")


def _read_mask_array(path: Path) -> np.ndarray:
    """The raw array of a mask file: H x W for single-channel modes (P gives the palette
    indices, not colours), H x W x 3 for RGB/RGBA (alpha dropped)."""
    return _decode(path, _mask_array)


def _remap_lut(remap: Mapping[Any, Any] | None) -> np.ndarray | None:
    """A 65536-entry LUT from a {source id: target id} mapping (ids not listed stay)."""
    if not remap:
        return None
    lut = np.arange(65536, dtype=np.int64)
    for src, dst in remap.items():
        try:
            src_i, dst_i = int(src), int(dst)
        except (TypeError, ValueError):
            raise DatasetError(f"remap entries must be integer ids, got {src!r}: {dst!r}") from None
        if not 0 <= src_i < 65536:
            raise DatasetError(f"remap source id {src_i} is not in 0..65535")
        lut[src_i] = dst_i
    return lut


def _check_ids(ids: np.ndarray, num_classes: int, path: Path) -> None:
    bad = ((ids >= num_classes) & (ids != IGNORE_INDEX)) | (ids < 0)
    if bad.any():
        found = [int(v) for v in np.unique(ids[bad])]
        raise DatasetError(
            f"{path}: class ids {_listing(found, 5)} out of range for {num_classes} classes "
            f"(valid ids 0..{num_classes - 1}, or {IGNORE_INDEX} = ignore)"
        )


def _image_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))


def _check_size(image: np.ndarray, mask: np.ndarray, image_path: Path, mask_path: Path) -> None:
    if image.shape[:2] != mask.shape[:2]:
        (h, w), (mh, mw) = image.shape[:2], mask.shape[:2]
        raise DatasetError(
            f"{mask_path}: mask is {mh}x{mw} but its image {image_path} is {h}x{w} (height x width)"
        )


# --------------------------------------------------------------------------- base class


class SegmentationFiles(Dataset):
    """Base class: a list of (image file, mask file) pairs read with PIL.

    Subclasses fill `self.files` at construction and implement `decode_mask(path, raw)`,
    which turns the raw mask array into int64 class ids (before the optional `remap` and
    the range check, which this class applies).
    """

    def __init__(self, files: list[tuple[Path, Path]], num_classes: int,
                 remap: Mapping[Any, Any] | None = None) -> None:
        if int(num_classes) < 1 or int(num_classes) > IGNORE_INDEX:
            raise DatasetError(f"num_classes must be in 1..{IGNORE_INDEX}, got {num_classes}")
        self.files = files
        self.num_classes = int(num_classes)
        self._remap = _remap_lut(remap)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, mask_path = self.files[index]
        image = _read_rgb(image_path)
        raw = _read_mask_array(mask_path)
        _check_size(image, raw, image_path, mask_path)
        ids = self.decode_mask(mask_path, raw)
        if self._remap is not None:
            if ids.size and (ids.min() < 0 or ids.max() >= len(self._remap)):
                _check_ids(ids, self.num_classes, mask_path)  # raises: outside the remap table
            ids = self._remap[ids]
        _check_ids(ids, self.num_classes, mask_path)
        return _image_tensor(image), torch.from_numpy(ids.astype(np.int64, copy=False))

    def decode_mask(self, path: Path, raw: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        root = getattr(self, "root", "?")
        split = getattr(self, "split", "?")
        return f"{type(self).__name__}({str(root)!r}, split={split!r}, {len(self)} items)"


# --------------------------------------------------------------------------- generic folders


class FolderDataset(SegmentationFiles):
    """The generic layout ``ROOT/{split}/images/*.{png,jpg,jpeg}`` with
    ``ROOT/{split}/masks/<same stem>.png``, or ``<stem><mask_suffix>.png`` for datasets that
    name masks apart (``mask_suffix="_mask"``: Carvana's ``car_mask.png``; ``"_segmentation"``: ISIC).

    Masks hold either class ids (single-channel: L, P — the palette index is the id —,
    I or I;16) or RGB colours of `palette` (colour ``palette[i]`` is class ``i``; a colour
    not in the palette is an error naming the file and the colours). Id 255 means
    "ignore". `mask_format` is ``"auto"`` (single-channel → ids; RGB → palette, except
    an RGB mask that is grey everywhere, whose values are all valid ids but not all
    palette colours: that one is read as ids), ``"ids"`` (RGB masks must then be grey;
    one channel is used) or ``"palette"``.
    `remap` optionally maps ids before the range check (e.g. ``{13: 255}``).
    """

    def __init__(self, root: str | Path, split: str, num_classes: int,
                 palette: Sequence[Sequence[int]] | None = None, *,
                 mask_format: str = "auto", remap: Mapping[Any, Any] | None = None,
                 images_dir: str = "images", masks_dir: str = "masks", mask_suffix: str = "") -> None:
        if mask_format not in ("auto", "ids", "palette"):
            raise DatasetError(f"mask_format must be 'auto', 'ids' or 'palette', got {mask_format!r}")
        self.root = Path(root)
        self.split = split
        self.mask_format = mask_format
        self.palette = None if palette is None else tuple(tuple(int(c) for c in colour) for colour in palette)
        self._palette_keys = self._palette_ids = None
        if self.palette is not None:
            self._palette_keys, self._palette_ids = _palette_lookup(self.palette)
        elif mask_format == "palette":
            raise DatasetError("mask_format='palette' needs a palette")
        self.mask_suffix = str(mask_suffix)
        super().__init__(self._pair(images_dir, masks_dir), num_classes, remap)

    def _pair(self, images_dir: str, masks_dir: str) -> list[tuple[Path, Path]]:
        split_dir = self.root / self.split
        image_dir, mask_dir = split_dir / images_dir, split_dir / masks_dir
        for folder in (image_dir, mask_dir):
            if not folder.is_dir():
                raise DatasetError(
                    f"{folder}: folder not found (expected ROOT/{{{','.join(SPLITS)}}}/{{{images_dir},{masks_dir}}}/)"
                )
        images = _visible_files(image_dir, IMAGE_EXTENSIONS)
        if not images:
            raise DatasetError(f"{image_dir}: empty split folder, no images (*.png, *.jpg, *.jpeg)")
        masks: dict[str, list[Path]] = {}
        for path in _visible_files(mask_dir, IMAGE_EXTENSIONS):
            masks.setdefault(path.stem, []).append(path)

        stems: dict[str, Path] = {}
        pairs = []
        for image in images:
            if image.stem in stems:
                raise DatasetError(f"{image}: two images share the name {image.stem!r} ({stems[image.stem].name}, {image.name})")
            stems[image.stem] = image
            candidates = masks.get(image.stem + self.mask_suffix, [])
            png = [p for p in candidates if p.suffix.lower() == ".png"]
            if png:
                pairs.append((image, png[0]))
            elif candidates:
                raise DatasetError(
                    f"{candidates[0]}: masks must be lossless PNG (JPEG compression changes class ids and colours)"
                )
            else:
                looked = mask_dir / (image.stem + self.mask_suffix + ".png")
                raise DatasetError(f"{image}: no mask found; looked for {looked}{_suffix_hint(image.stem, masks)}")
        return pairs

    def decode_mask(self, path: Path, raw: np.ndarray) -> np.ndarray:
        if raw.ndim == 2:
            if self.mask_format == "palette":
                raise DatasetError(f"{path}: single-channel mask but mask_format='palette' expects RGB colours")
            return raw.astype(np.int64)
        grey = bool((raw[..., 0] == raw[..., 1]).all() and (raw[..., 1] == raw[..., 2]).all())
        if self.mask_format == "ids":
            if not grey:
                raise DatasetError(f"{path}: RGB mask with differing channels cannot hold class ids (mask_format='ids')")
            return raw[..., 0].astype(np.int64)
        if self._palette_keys is None:
            if grey:
                return raw[..., 0].astype(np.int64)
            raise DatasetError(f"{path}: RGB mask but no palette was given to map its colours to class ids")
        keys = _rgb_keys(raw)
        ids, unknown = _lookup(keys, self._palette_keys, self._palette_ids)
        if unknown.any():
            if self.mask_format == "auto" and grey:
                grey_ids = raw[..., 0].astype(np.int64)
                if ((grey_ids < self.num_classes) | (grey_ids == IGNORE_INDEX)).all():
                    return grey_ids  # class ids stored in all three channels
            colours, counts = np.unique(keys[unknown], return_counts=True)
            order = np.argsort(-counts, kind="stable")
            listed = [f"{_key_to_rgb(colours[i])} ({counts[i]} px)" for i in order]
            raise DatasetError(
                f"{path}: {len(colours)} colour(s) not in the palette: {_listing(listed)}"
                " (check the dataset palette in the assignment spec)"
            )
        return ids


def _suffix_hint(stem: str, masks: Mapping[str, list[Path]]) -> str:
    """When the masks are named after their image plus a suffix (a.jpg, a_mask.png), the
    option that pairs them; else nothing."""
    # a separator first: leaf_1.png beside leaf_10.jpg is another image's mask, not a suffix
    suffixes = sorted({m[len(stem):] for m in masks if m.startswith(stem) and m[len(stem):][:1] in ("_", "-", ".")},
                      key=len)
    if not suffixes:
        return ""
    return (f" (found {stem}{suffixes[0]}.png: if masks are named after their image plus "
            f"{suffixes[0]!r}, set [dataset.options] mask_suffix = \"{suffixes[0]}\")")


def _rgb_keys(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _key_to_rgb(key: int) -> tuple[int, int, int]:
    key = int(key)
    return (key >> 16) & 255, (key >> 8) & 255, key & 255


def _palette_lookup(palette: Sequence[tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted colour keys and their class ids, for `_lookup`."""
    for i, colour in enumerate(palette):
        if len(colour) != 3 or not all(0 <= c <= 255 for c in colour):
            raise DatasetError(f"palette colour {i} must be three values in 0..255, got {colour}")
    keys = _rgb_keys(np.array(palette, dtype=np.int64).reshape(-1, 3))
    if len(set(keys.tolist())) != len(keys):
        dupes = sorted({tuple(c) for c in palette if list(palette).count(c) > 1})
        raise DatasetError(f"palette has the same colour for several classes: {_listing(dupes)}")
    order = np.argsort(keys)
    return keys[order], order.astype(np.int64)


def _lookup(keys: np.ndarray, sorted_keys: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pos = np.searchsorted(sorted_keys, keys).clip(0, len(sorted_keys) - 1)
    known = sorted_keys[pos] == keys
    return np.where(known, ids[pos], IGNORE_INDEX), ~known


# --------------------------------------------------------------------------- CARLA


class CarlaDataset(SegmentationFiles):
    """Lyft-Udacity CARLA frames: folders holding ``CameraRGB/*.png`` and
    ``CameraSeg/*.png`` (same file names), the class id in the mask's red channel
    (channel 0 as PIL reads it; "index 2" in OpenCV's BGR order).

    Frames are sequential, so splits are made by folder: `splits` maps each split to
    paths relative to `root` (e.g. ``{"train": ["dataA", "dataB"], "val": ["dataC"],
    "test": ["dataD"]}``); every ``CameraRGB`` folder at or below a listed path belongs to
    that split (so Kaggle's ``dataA/dataA/CameraRGB`` works with ``"dataA"``). Without
    `splits`, the top-level folders of `root` that contain frames are sorted: the last is
    ``test``, the second-to-last ``val``, the rest ``train`` (at least three are needed).
    A folder may not appear in two splits. Ids >= `num_classes` are an error unless
    `remap` maps them (e.g. ``{13: 255}``).
    """

    IMAGE_DIR = "CameraRGB"
    MASK_DIR = "CameraSeg"

    def __init__(self, root: str | Path, split: str,
                 splits: Mapping[str, str | Sequence[str]] | None = None,
                 num_classes: int = 13, *, remap: Mapping[Any, Any] | None = None) -> None:
        self.root = Path(root)
        self.split = split
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: CARLA dataset folder not found")
        self.splits = self._resolve_splits(splits)
        if split not in self.splits:
            raise DatasetError(f"{self.root}: no split {split!r} in the CARLA splits {sorted(self.splits)}")
        files: list[tuple[Path, Path]] = []
        for name in self.splits[split]:
            files.extend(self._frames(name))
        super().__init__(files, num_classes, remap)

    def _groups(self) -> list[str]:
        """Top-level folders of root that hold frames (a CameraRGB folder at or below)."""
        return [
            d.name for d in sorted(self.root.iterdir())
            if d.is_dir() and not d.name.startswith(".") and self._camera_dirs(d)
        ]

    def _camera_dirs(self, folder: Path) -> list[Path]:
        found = [folder / self.IMAGE_DIR] if (folder / self.IMAGE_DIR).is_dir() else []
        found += [p for p in sorted(folder.rglob(self.IMAGE_DIR)) if p.is_dir() and p != folder / self.IMAGE_DIR]
        return found

    def _resolve_splits(self, splits: Mapping[str, str | Sequence[str]] | None) -> dict[str, list[str]]:
        if splits is None:
            groups = self._groups()
            if len(groups) < 3:
                raise DatasetError(
                    f"{self.root}: found {len(groups)} folder(s) with {self.IMAGE_DIR}/ "
                    f"({_listing(groups, 10) or 'none'}); CARLA frames are split by folder, so configure "
                    "splits, e.g. splits={'train': ['dataA', 'dataB'], 'val': ['dataC'], 'test': ['dataD']}"
                )
            resolved = {"train": groups[:-2], "val": [groups[-2]], "test": [groups[-1]]}
        else:
            resolved = {str(k): [v] if isinstance(v, (str, Path)) else [str(x) for x in v] for k, v in splits.items()}
        owner: dict[Path, str] = {}
        for name, folders in resolved.items():
            for folder in folders:
                key = (self.root / folder).resolve()
                for other_folder, other in owner.items():
                    if other != name and (key == other_folder or key in other_folder.parents or other_folder in key.parents):
                        raise DatasetError(
                            f"{self.root / folder}: folder is in split {name!r} and overlaps split {other!r}; "
                            "splits must not share frames"
                        )
                owner[key] = name
        return resolved

    def _frames(self, name: str) -> list[tuple[Path, Path]]:
        folder = self.root / name
        if not folder.is_dir():
            raise DatasetError(f"{folder}: folder of split {self.split!r} not found")
        camera_dirs = self._camera_dirs(folder)
        if not camera_dirs:
            raise DatasetError(f"{folder}: no {self.IMAGE_DIR}/ folder at or below it")
        pairs = []
        for image_dir in camera_dirs:
            mask_dir = image_dir.parent / self.MASK_DIR
            images = _visible_files(image_dir, IMAGE_EXTENSIONS)
            if not images:
                raise DatasetError(f"{image_dir}: empty split folder, no images (*.png, *.jpg, *.jpeg)")
            for image in images:
                mask = mask_dir / (image.stem + ".png")
                if not mask.is_file():
                    raise DatasetError(f"{image}: no mask found; looked for {mask}")
                pairs.append((image, mask))
        return pairs

    def decode_mask(self, path: Path, raw: np.ndarray) -> np.ndarray:
        return (raw[..., 0] if raw.ndim == 3 else raw).astype(np.int64)


# --------------------------------------------------------------------------- Cityscapes


def cityscapes_id_to_train_id(table: Iterable[Any] | Mapping[int, int] | None = None) -> np.ndarray:
    """A 256-entry uint8 lookup table from Cityscapes labelIds to train ids.

    `table` is a sequence of labels with ``.id`` and ``.trainId`` (the default is
    ``cityscapesscripts.helpers.labels.labels``) or a mapping {id: trainId}. Train ids
    255 or -1, negative label ids and ids missing from the table map to 255 (ignore).
    """
    if table is None:
        try:
            from cityscapesscripts.helpers.labels import labels as table
        except ImportError as exc:
            raise ImportError(
                "Cityscapes label ids need the label table of the optional package "
                f"cityscapesscripts: pip install cityscapesscripts ({exc})"
            ) from exc
    pairs = table.items() if isinstance(table, Mapping) else ((label.id, label.trainId) for label in table)
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for label_id, train_id in pairs:
        label_id, train_id = int(label_id), int(train_id)
        if not 0 <= label_id < 256:
            continue
        lut[label_id] = IGNORE_INDEX if train_id in (-1, 255) or not 0 <= train_id < 255 else train_id
    return lut


class CityscapesDataset(SegmentationFiles):
    """Cityscapes: ``leftImg8bit/{split}/{city}/*_leftImg8bit.png`` with
    ``{annotation}/{split}/{city}/*_{annotation}_labelIds.png``; labelIds become the
    train ids (19 classes; everything else 255). `label_table` overrides the table from
    ``cityscapesscripts`` (see `cityscapes_id_to_train_id`). `num_classes` must equal
    the table's number of train ids.
    """

    def __init__(self, root: str | Path, split: str, num_classes: int = 19, *,
                 annotation: str = "gtFine", label_table: Iterable[Any] | Mapping[int, int] | None = None) -> None:
        self.root = Path(root)
        self.split = split
        self.annotation = annotation
        self.lut = cityscapes_id_to_train_id(label_table)
        valid = self.lut[self.lut != IGNORE_INDEX]
        table_classes = int(valid.max()) + 1 if valid.size else 0
        if table_classes != int(num_classes):
            raise DatasetError(
                f"the Cityscapes label table has {table_classes} train ids but the dataset was "
                f"configured with num_classes={num_classes}"
            )
        super().__init__(self._pair(), num_classes)

    def _pair(self) -> list[tuple[Path, Path]]:
        image_root = self.root / "leftImg8bit" / self.split
        mask_root = self.root / self.annotation / self.split
        if not image_root.is_dir():
            raise DatasetError(f"{image_root}: split folder not found (expected ROOT/leftImg8bit/{{train,val,test}}/CITY/)")
        suffix = "_leftImg8bit"
        images = sorted(
            p for p in image_root.glob(f"*/*{suffix}.png") if p.is_file() and not p.name.startswith(".")
        )
        if not images:
            raise DatasetError(f"{image_root}: empty split folder, no CITY/*{suffix}.png images")
        pairs = []
        for image in images:
            stem = image.name[: -len(suffix + ".png")]
            mask = mask_root / image.parent.name / f"{stem}_{self.annotation}_labelIds.png"
            if not mask.is_file():
                raise DatasetError(f"{image}: no mask found; looked for {mask}")
            pairs.append((image, mask))
        return pairs

    def decode_mask(self, path: Path, raw: np.ndarray) -> np.ndarray:
        if raw.ndim == 3:
            raise DatasetError(f"{path}: labelIds mask must be single-channel, got an RGB image "
                               "(the *_color.png files are previews, not labels)")
        if raw.dtype != np.uint8:
            if raw.max(initial=0) > 255:
                raise DatasetError(f"{path}: labelIds above 255 ({int(raw.max())}) are not Cityscapes ids")
            raw = raw.astype(np.uint8)
        return self.lut[raw].astype(np.int64)


# --------------------------------------------------------------------------- factory

DATASET_KINDS: dict[str, type[SegmentationFiles]] = {
    "folders": FolderDataset,
    "carla": CarlaDataset,
    "cityscapes": CityscapesDataset,
}


def open_dataset(kind: str, root: str | Path, split: str, *, num_classes: int,
                 palette: Sequence[Sequence[int]] | None = None, **options: Any) -> SegmentationFiles:
    """Open the `split` of the dataset at `root` laid out as `kind`
    (``"folders"``, ``"carla"`` or ``"cityscapes"``).

    `num_classes` and `palette` come from the assignment spec (the palette is used only
    by ``"folders"``, for RGB masks); `options` are the loader's own keyword arguments
    (``splits`` and ``remap`` for CARLA; ``mask_format``, ``remap``, ``images_dir``, ``masks_dir``
    and ``mask_suffix`` for folders;
    ``annotation`` and ``label_table`` for Cityscapes).
    """
    try:
        cls = DATASET_KINDS[kind]
    except KeyError:
        raise DatasetError(f"unknown dataset kind {kind!r}; known: {', '.join(DATASET_KINDS)}") from None
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "root", "split", "num_classes", "palette"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise DatasetError(
            f"dataset kind {kind!r} has no option(s) {', '.join(unknown)}; it takes: {', '.join(sorted(accepted))}"
        )
    if kind == "folders":
        options["palette"] = palette
    return cls(root, split, num_classes=num_classes, **options)
