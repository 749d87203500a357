"""`segrade data preview` and `segrade data export`, and opening splits from the spec."""

import numpy as np
import pytest
from PIL import Image

from grader.cli import main
from grader.data.folders import FolderDataset
from grader.data.preview import binary_masks, colorize
from grader.data.sources import TEST_SEED_ENV, open_split, secret_test_seed
from grader.spec import load_spec


def test_preview_writes_a_png_with_binary_masks(tmp_path, capsys):
    out = tmp_path / "preview.png"
    assert main(["data", "preview", "--out", str(out), "--size", "64", "--n", "4"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape[0] > 300 and image.shape[1] > 500
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50  # a drawn figure, not a blank canvas


def test_a_class_that_fills_the_image_gets_a_framed_binary_panel(tmp_path, monkeypatch):
    """A three-class course whose sample is all background: its binary mask is all white, and
    without a frame the panel vanished into the white figure."""
    import matplotlib.pyplot as plt
    import torch

    from grader.data.preview import render_preview

    import grader.report.figures  # noqa: F401  (its rcParams hide two spines, as in a whole run)

    kept = []
    monkeypatch.setattr(plt, "close", kept.append)   # keep the figure to look at it
    sample = (torch.zeros(3, 32, 32, dtype=torch.uint8), torch.zeros(32, 32, dtype=torch.int64))
    render_preview([sample], ["background", "leaf", "lesion"], [[0, 0, 0], [0, 200, 0], [200, 120, 0]],
                   tmp_path / "p.png")
    panels = {ax.get_title(): ax for ax in kept[0].axes}
    for title in ("0 background", "1 leaf", "2 lesion"):
        assert panels[title].axison and all(s.get_visible() for s in panels[title].spines.values())
    assert not panels["image"].axison


def test_binary_masks_split_a_mask_by_class():
    mask = np.array([[0, 1], [12, 255]])
    binary = binary_masks(mask, 13)
    assert binary.shape == (13, 2, 2)
    assert binary[0].sum() == binary[1].sum() == binary[12].sum() == 1
    assert binary.sum() == 3  # the ignored pixel belongs to no class
    palette = load_spec().palette
    assert tuple(colorize(mask, palette)[1, 0]) == palette[12]
    assert tuple(colorize(mask, palette)[1, 1]) == (255, 255, 255)


def test_export_round_trips_through_the_folder_loader(tmp_path, capsys):
    assert main(["data", "export", str(tmp_path), "--split", "val", "--n", "5", "--size", "64"]) == 0
    assert "wrote 5 image/mask pairs of the synthetic val split" in capsys.readouterr().out
    spec = load_spec()
    exported = FolderDataset(tmp_path, "val", num_classes=13, palette=spec.palette)
    original = open_split(spec.dataset, "val", size=64, length=5)
    assert len(exported) == 5
    for i in range(5):
        (a_img, a_mask), (b_img, b_mask) = exported[i], original[i]
        assert a_img.equal(b_img) and a_mask.equal(b_mask)


def test_test_split_is_not_exported_and_its_seed_is_secret(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        main(["data", "export", str(tmp_path), "--split", "test"])
    spec = load_spec()
    with pytest.raises(ValueError, match="secret test seed"):
        open_split(spec.dataset, "test")
    monkeypatch.delenv(TEST_SEED_ENV, raising=False)
    seeds = {secret_test_seed() for _ in range(3)}
    assert len(seeds) == 3 and not seeds & {spec.dataset.train_seed, spec.dataset.val_seed}
    monkeypatch.setenv(TEST_SEED_ENV, "12345")
    assert secret_test_seed() == 12345
    monkeypatch.setenv(TEST_SEED_ENV, "abc")
    with pytest.raises(ValueError, match="must be an integer"):
        secret_test_seed()


def test_real_dataset_errors_are_reported_not_raised(tmp_path, capsys):
    assert main(["data", "preview", "--dataset", "folders", "--root", str(tmp_path / "none"),
                 "--out", str(tmp_path / "p.png")]) == 2
    assert "folder not found" in capsys.readouterr().out
    assert main(["data", "preview", "--dataset", "carla", "--out", str(tmp_path / "p.png")]) == 2
    assert "needs --root" in capsys.readouterr().out
