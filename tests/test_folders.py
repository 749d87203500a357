"""Loaders for real data: generic folders, CARLA, Cityscapes; pairing and bad-data errors."""

import sys
from collections import namedtuple

import numpy as np
import pytest
import torch
from PIL import Image

from grader.data import IGNORE_INDEX
from grader.data.folders import (
    CarlaDataset,
    CityscapesDataset,
    DatasetError,
    FolderDataset,
    cityscapes_id_to_train_id,
    open_dataset,
)
# the CARLA 0.8 palette of the default spec (BRIEF §2), colour i = class i
PALETTE = [
    (0, 0, 0), (70, 70, 70), (190, 153, 153), (72, 0, 90), (220, 20, 60), (153, 153, 153), (157, 234, 50),
    (128, 64, 128), (244, 35, 232), (107, 142, 35), (0, 0, 255), (102, 102, 156), (220, 220, 0),
]
H, W = 40, 60


def _ids(seed, num_classes=13):
    """An H x W id mask: blocks of random class ids."""
    rng = np.random.default_rng(seed)
    return np.kron(rng.integers(0, num_classes, (H // 10, W // 10)), np.ones((10, 10), dtype=np.int64)).astype(np.uint8)


def _image(seed):
    return np.random.default_rng(100 + seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _palette_rgb(ids):
    return np.array(PALETTE, dtype=np.uint8)[ids]


def _generic(root, split="train", n=3, rgb=False, image_ext=".png"):
    masks = {}
    for i in range(n):
        ids = _ids(i)
        _save(root / split / "images" / f"frame_{i:03d}{image_ext}", _image(i))
        _save(root / split / "masks" / f"frame_{i:03d}.png", _palette_rgb(ids) if rgb else ids)
        masks[i] = ids
    return masks


# --------------------------------------------------------------------------- generic layout


def test_folder_id_masks(tmp_path):
    masks = _generic(tmp_path)
    ds = FolderDataset(tmp_path, "train", num_classes=13)
    assert len(ds) == 3
    for i in range(3):
        image, mask = ds[i]
        assert image.dtype == torch.uint8 and image.shape == (3, H, W)
        assert mask.dtype == torch.int64 and mask.shape == (H, W)
        assert torch.equal(image, torch.from_numpy(_image(i)).permute(2, 0, 1))
        assert torch.equal(mask, torch.from_numpy(masks[i].astype(np.int64)))
    assert "FolderDataset" in repr(ds) and "3 items" in repr(ds)


def test_folder_palette_masks_and_jpeg_images(tmp_path):
    masks = _generic(tmp_path, split="val", rgb=True, image_ext=".jpg")
    ds = FolderDataset(tmp_path, "val", num_classes=13, palette=PALETTE)
    assert [p.name for p, _ in ds.files] == ["frame_000.jpg", "frame_001.jpg", "frame_002.jpg"]
    for i in range(3):
        image, mask = ds[i]
        assert image.shape == (3, H, W)
        assert torch.equal(mask, torch.from_numpy(masks[i].astype(np.int64)))


def test_folder_other_mask_modes(tmp_path):
    ids = _ids(0)
    ids[:5, :5] = IGNORE_INDEX
    _save(tmp_path / "test/images/a.png", _image(0))
    p_mask = Image.frombytes("P", (W, H), ids.tobytes())  # P: the palette index is the id
    p_mask.putpalette(np.array(PALETTE, dtype=np.uint8).tobytes() + bytes(3 * (256 - 13)))  # 256 entries, as VOC
    (tmp_path / "test/masks").mkdir(parents=True)
    p_mask.save(tmp_path / "test/masks/a.png")
    _save(tmp_path / "test/images/b.png", _image(1))
    _save(tmp_path / "test/masks/b.png", np.dstack([ids] * 3))  # grey RGB holding ids
    _save(tmp_path / "test/images/c.png", _image(2))
    _save(tmp_path / "test/masks/c.png", np.dstack([_palette_rgb(_ids(2)), np.full((H, W), 255, np.uint8)]))  # RGBA
    (tmp_path / "test/images/._a.png").write_bytes(b"macOS resource fork")  # hidden: skipped

    ds = FolderDataset(tmp_path, "test", num_classes=13, palette=PALETTE)
    assert len(ds) == 3
    assert torch.equal(ds[0][1], torch.from_numpy(ids.astype(np.int64)))
    assert torch.equal(ds[1][1], torch.from_numpy(ids.astype(np.int64)))
    assert torch.equal(ds[2][1], torch.from_numpy(_ids(2).astype(np.int64)))


def test_folder_remap(tmp_path):
    _save(tmp_path / "train/images/a.png", _image(0))
    ids = np.full((H, W), 13, np.uint8)
    ids[:, :30] = 4
    _save(tmp_path / "train/masks/a.png", ids)
    _, mask = FolderDataset(tmp_path, "train", num_classes=13, remap={"13": 255})[0]  # TOML keys are strings
    assert set(mask.unique().tolist()) == {4, 255}


# --------------------------------------------------------------------------- generic layout: errors


def test_unknown_palette_colour_names_file_and_colours(tmp_path):
    _generic(tmp_path, rgb=True, n=1)
    rgb = _palette_rgb(_ids(0))
    rgb[0, 0], rgb[0, 1:3], rgb[1, :] = (1, 2, 3), (9, 9, 9), (5, 5, 5)
    rgb[2, 0] = (250, 0, 0)
    _save(tmp_path / "train/masks/frame_000.png", rgb)
    ds = FolderDataset(tmp_path, "train", num_classes=13, palette=PALETTE)
    with pytest.raises(DatasetError, match=r"frame_000\.png: 4 colour\(s\) not in the palette: "
                       r"\(5, 5, 5\) \(60 px\), \(9, 9, 9\) \(2 px\), \(1, 2, 3\) \(1 px\) and 1 more"):
        ds[0]


def test_rgb_mask_without_palette(tmp_path):
    _generic(tmp_path, rgb=True, n=1)
    with pytest.raises(DatasetError, match=r"frame_000\.png: RGB mask but no palette"):
        FolderDataset(tmp_path, "train", num_classes=13)[0]


def test_unreadable_image(tmp_path):
    _generic(tmp_path, n=2)
    (tmp_path / "train/images/frame_001.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    ds = FolderDataset(tmp_path, "train", num_classes=13)
    ds[0]
    with pytest.raises(DatasetError, match=r"images/frame_001\.png: cannot read image: "):
        ds[1]


def test_unreadable_mask(tmp_path):
    _generic(tmp_path, n=1)
    (tmp_path / "train/masks/frame_000.png").write_text("not a png")
    with pytest.raises(DatasetError, match=r"masks/frame_000\.png: cannot read image: "):
        FolderDataset(tmp_path, "train", num_classes=13)[0]


def test_wrong_size_mask(tmp_path):
    _generic(tmp_path, n=1)
    _save(tmp_path / "train/masks/frame_000.png", np.zeros((H // 2, W), np.uint8))
    with pytest.raises(DatasetError, match=r"masks/frame_000\.png: mask is 20x60 but its image .*frame_000\.png is 40x60"):
        FolderDataset(tmp_path, "train", num_classes=13)[0]


def test_id_out_of_range(tmp_path):
    _generic(tmp_path, n=1)
    ids = _ids(0)
    ids[0, :3] = (13, 40, IGNORE_INDEX)
    _save(tmp_path / "train/masks/frame_000.png", ids)
    with pytest.raises(DatasetError, match=r"frame_000\.png: class ids 13, 40 out of range for 13 classes"):
        FolderDataset(tmp_path, "train", num_classes=13)[0]


def test_missing_mask_is_found_at_construction(tmp_path):
    _generic(tmp_path, n=2)
    (tmp_path / "train/masks/frame_001.png").unlink()
    with pytest.raises(DatasetError, match=r"images/frame_001\.png: no mask found; looked for .*masks/frame_001\.png"):
        FolderDataset(tmp_path, "train", num_classes=13)


def test_masks_named_with_a_suffix_are_paired_by_mask_suffix_and_the_error_names_it(tmp_path):
    """Carvana-style names (frame_000.png beside frame_000_mask.png): without the option the
    error says which option pairs them; with it they pair. frame_0001 is not frame_000's mask."""
    _generic(tmp_path, n=2)
    for mask in sorted((tmp_path / "train/masks").iterdir()):
        mask.rename(mask.with_name(mask.stem + "_mask.png"))
    _save(tmp_path / "train/masks/frame_0001.png", _ids(5))
    with pytest.raises(DatasetError, match=r"looked for .*masks/frame_000\.png \(found frame_000_mask\.png: if masks "
                                           r"are named after their image plus '_mask', set \[dataset.options\] "
                                           r'mask_suffix = "_mask"\)'):
        FolderDataset(tmp_path, "train", num_classes=13)
    ds = open_dataset("folders", tmp_path, "train", num_classes=13, mask_suffix="_mask")
    assert [(i.name, m.name) for i, m in ds.files] == [("frame_000.png", "frame_000_mask.png"),
                                                       ("frame_001.png", "frame_001_mask.png")]
    assert torch.equal(ds[1][1], torch.from_numpy(_ids(1).astype(np.int64)))


def test_jpeg_mask_is_refused(tmp_path):
    _generic(tmp_path, n=1)
    (tmp_path / "train/masks/frame_000.png").rename(tmp_path / "train/masks/frame_000.jpg")
    with pytest.raises(DatasetError, match=r"frame_000\.jpg: masks must be lossless PNG"):
        FolderDataset(tmp_path, "train", num_classes=13)


def test_empty_and_missing_split(tmp_path):
    _generic(tmp_path, n=1)
    (tmp_path / "val/images").mkdir(parents=True)
    (tmp_path / "val/masks").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"val/images: empty split folder"):
        FolderDataset(tmp_path, "val", num_classes=13)
    with pytest.raises(DatasetError, match=r"test/images: folder not found"):
        FolderDataset(tmp_path, "test", num_classes=13)


def test_bad_palette(tmp_path):
    _generic(tmp_path, n=1)
    with pytest.raises(DatasetError, match=r"same colour for several classes: \(0, 0, 0\)"):
        FolderDataset(tmp_path, "train", num_classes=3, palette=[(0, 0, 0), (1, 1, 1), (0, 0, 0)])


# --------------------------------------------------------------------------- CARLA


def _carla_frame(folder, name, ids, seed):
    """A CARLA frame: the id in the red channel, junk in green and blue."""
    rng = np.random.default_rng(seed)
    seg = np.dstack([ids, rng.integers(0, 256, (H, W), dtype=np.uint8), rng.integers(0, 256, (H, W), dtype=np.uint8)])
    _save(folder / "CameraRGB" / name, _image(seed))
    _save(folder / "CameraSeg" / name, seg)


def _carla(root, folders=("dataA", "dataB", "dataC", "dataD"), per_folder=2):
    ids = {}
    for f, folder in enumerate(folders):
        for k in range(per_folder):
            seed = 10 * f + k
            ids[(folder, k)] = _ids(seed)
            _carla_frame(root / folder, f"{k:02d}.png", ids[(folder, k)], seed)
    return ids


def test_carla_default_splits_by_folder(tmp_path):
    ids = _carla(tmp_path)
    train = CarlaDataset(tmp_path, "train")
    assert train.splits == {"train": ["dataA", "dataB"], "val": ["dataC"], "test": ["dataD"]}
    assert len(train) == 4
    assert [p.parent.parent.name for p, _ in train.files] == ["dataA", "dataA", "dataB", "dataB"]
    image, mask = train[2]
    assert image.shape == (3, H, W) and mask.dtype == torch.int64
    assert torch.equal(mask, torch.from_numpy(ids[("dataB", 0)].astype(np.int64)))  # red channel only
    test = CarlaDataset(tmp_path, "test")
    assert torch.equal(test[1][1], torch.from_numpy(ids[("dataD", 1)].astype(np.int64)))


def test_carla_explicit_splits_and_nested_folders(tmp_path):
    # Kaggle's layout: dataA/dataA/CameraRGB
    ids = _carla(tmp_path / "nested", folders=("dataA/dataA", "dataB/dataB", "dataC/dataC"), per_folder=1)
    splits = {"train": ["dataA"], "val": "dataB", "test": ["dataC/dataC"]}
    val = CarlaDataset(tmp_path / "nested", "val", splits=splits)
    assert len(val) == 1
    assert torch.equal(val[0][1], torch.from_numpy(ids[("dataB/dataB", 0)].astype(np.int64)))
    assert len(CarlaDataset(tmp_path / "nested", "test", splits=splits)) == 1


def test_carla_needs_splits_for_few_folders(tmp_path):
    _carla(tmp_path, folders=("episode",))
    with pytest.raises(DatasetError, match=r"found 1 folder\(s\) with CameraRGB/ \(episode\); .*configure splits"):
        CarlaDataset(tmp_path, "train")


def test_carla_overlapping_splits(tmp_path):
    _carla(tmp_path, per_folder=1)
    with pytest.raises(DatasetError, match=r"dataB: folder is in split 'val' and overlaps split 'train'"):
        CarlaDataset(tmp_path, "train", splits={"train": ["dataA", "dataB"], "val": ["dataB"]})


def test_carla_unknown_split_and_missing_folder(tmp_path):
    _carla(tmp_path, per_folder=1)
    with pytest.raises(DatasetError, match=r"no split 'test' in the CARLA splits \['train', 'val'\]"):
        CarlaDataset(tmp_path, "test", splits={"train": ["dataA"], "val": ["dataB"]})
    with pytest.raises(DatasetError, match=r"dataZ: folder of split 'train' not found"):
        CarlaDataset(tmp_path, "train", splits={"train": ["dataZ"]})


def test_carla_ids_out_of_range_and_remap(tmp_path):
    _carla(tmp_path, per_folder=1)
    ids = _ids(0)
    ids[:10] = 22
    _carla_frame(tmp_path / "dataA", "00.png", ids, 0)
    with pytest.raises(DatasetError, match=r"dataA/CameraSeg/00\.png: class ids 22 out of range for 13 classes"):
        CarlaDataset(tmp_path, "train")[0]
    _, mask = CarlaDataset(tmp_path, "train", remap={22: IGNORE_INDEX})[0]
    assert (mask[:10] == IGNORE_INDEX).all() and (mask[10:] < 13).all()


def test_carla_missing_mask(tmp_path):
    _carla(tmp_path, per_folder=2)
    (tmp_path / "dataC/CameraSeg/01.png").unlink()
    with pytest.raises(DatasetError, match=r"dataC/CameraRGB/01\.png: no mask found; looked for .*dataC/CameraSeg/01\.png"):
        CarlaDataset(tmp_path, "val")


# --------------------------------------------------------------------------- Cityscapes

Label = namedtuple("Label", "name id trainId")
TABLE = [Label("unlabeled", 0, 255), Label("road", 7, 0), Label("sidewalk", 8, 1),
         Label("car", 26, 2), Label("polegroup", 18, 255), Label("license plate", -1, -1)]


def _cityscapes(root, split="val", cities=("aachen", "bonn")):
    label_ids = {}
    for c, city in enumerate(cities):
        stem = f"{city}_000000_0000{c}9"
        labels = np.array([0, 7, 8, 26, 18, 33], np.uint8)[_ids(c) % 6]
        _save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", _image(c))
        _save(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", labels)
        _save(root / "gtFine" / split / city / f"{stem}_gtFine_color.png", _image(c))  # ignored
        label_ids[city] = labels
    return label_ids


def test_cityscapes_lut_from_injected_table():
    lut = cityscapes_id_to_train_id(TABLE)
    assert lut.shape == (256,) and lut.dtype == np.uint8
    assert (lut[7], lut[8], lut[26]) == (0, 1, 2)
    assert lut[0] == lut[18] == lut[33] == lut[255] == IGNORE_INDEX
    assert cityscapes_id_to_train_id({7: 0, 9: -1})[9] == IGNORE_INDEX


def test_cityscapes_dataset_maps_label_ids(tmp_path):
    label_ids = _cityscapes(tmp_path)
    ds = CityscapesDataset(tmp_path, "val", num_classes=3, label_table=TABLE)
    assert len(ds) == 2 and ds.files[0][0].parent.name == "aachen"
    image, mask = ds[1]
    assert image.shape == (3, H, W) and mask.dtype == torch.int64
    expected = cityscapes_id_to_train_id(TABLE)[label_ids["bonn"]].astype(np.int64)
    assert torch.equal(mask, torch.from_numpy(expected))
    assert set(mask.unique().tolist()) <= {0, 1, 2, IGNORE_INDEX}


def test_cityscapes_errors(tmp_path):
    _cityscapes(tmp_path)
    with pytest.raises(DatasetError, match=r"label table has 3 train ids but .* num_classes=19"):
        CityscapesDataset(tmp_path, "val", num_classes=19, label_table=TABLE)
    with pytest.raises(DatasetError, match=r"leftImg8bit/train: split folder not found"):
        CityscapesDataset(tmp_path, "train", num_classes=3, label_table=TABLE)
    (tmp_path / "gtFine/val/bonn/bonn_000000_000019_gtFine_labelIds.png").unlink()
    with pytest.raises(DatasetError, match=r"bonn_000000_000019_leftImg8bit\.png: no mask found; looked for "
                                           r".*gtFine/val/bonn/bonn_000000_000019_gtFine_labelIds\.png"):
        CityscapesDataset(tmp_path, "val", num_classes=3, label_table=TABLE)


def test_cityscapes_without_cityscapesscripts(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "cityscapesscripts", None)  # makes the import fail
    monkeypatch.setitem(sys.modules, "cityscapesscripts.helpers", None)
    monkeypatch.setitem(sys.modules, "cityscapesscripts.helpers.labels", None)
    with pytest.raises(ImportError, match="pip install cityscapesscripts"):
        CityscapesDataset(tmp_path, "val")


def test_cityscapes_real_label_table():
    pytest.importorskip("cityscapesscripts.helpers.labels")
    lut = cityscapes_id_to_train_id()
    assert (lut[7], lut[8], lut[11], lut[26], lut[33]) == (0, 1, 2, 13, 18)  # road, sidewalk, building, car, bicycle
    assert lut[0] == lut[9] == lut[18] == lut[29] == IGNORE_INDEX  # unlabeled, parking, polegroup, caravan
    assert sorted(set(lut.tolist()) - {IGNORE_INDEX}) == list(range(19))


# --------------------------------------------------------------------------- factory


def test_open_dataset(tmp_path):
    _generic(tmp_path / "generic", rgb=True)
    ds = open_dataset("folders", tmp_path / "generic", "train", num_classes=13, palette=PALETTE)
    assert isinstance(ds, FolderDataset) and len(ds) == 3 and ds[0][1].max() < 13
    _carla(tmp_path / "carla", per_folder=1)
    ds = open_dataset("carla", tmp_path / "carla", "val", num_classes=13, palette=PALETTE,
                      splits={"train": ["dataA"], "val": ["dataB", "dataC"], "test": ["dataD"]})
    assert isinstance(ds, CarlaDataset) and len(ds) == 2
    _cityscapes(tmp_path / "cs")
    ds = open_dataset("cityscapes", tmp_path / "cs", "val", num_classes=3, label_table=TABLE)
    assert isinstance(ds, CityscapesDataset) and len(ds) == 2


def test_open_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"unknown dataset kind 'voc'; known: folders, carla, cityscapes"):
        open_dataset("voc", tmp_path, "train", num_classes=13)
    with pytest.raises(DatasetError, match=r"dataset kind 'carla' has no option\(s\) split_by; it takes: remap, splits"):
        open_dataset("carla", tmp_path, "train", num_classes=13, split_by="folder")


def test_loader_batches_with_transform(tmp_path):
    from grader.data.transforms import TransformedDataset, eval_transform

    _carla(tmp_path, per_folder=2)
    loader = torch.utils.data.DataLoader(TransformedDataset(CarlaDataset(tmp_path, "train"), eval_transform(32)), batch_size=4)
    images, masks = next(iter(loader))
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.float32
    assert masks.shape == (4, 32, 32) and masks.dtype == torch.int64
