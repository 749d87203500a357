"""The built-in procedural road scenes (grader.data.synthetic)."""

import numpy as np
import pytest
import torch

from grader.data.synthetic import CLASS_NAMES, NUM_CLASSES, SyntheticRoadScenes, render_scene

(UNLABELED, BUILDING, FENCE, OTHER, PEDESTRIAN, POLE, ROADLINE, ROAD, SIDEWALK,
 VEGETATION, CAR, WALL, TRAFFICSIGN) = range(13)

# Share of 64x64 images (seed 0, indices 0..99) in which each class must appear.
# Measured on seeds 0..5 (100 images each): Unlabeled, Building, Road, Sidewalk 100%;
# Vegetation 97-100; RoadLine 97-99; Car 90-97; Pole 85-90; TrafficSign 73-83;
# Other 68-75; Pedestrian 64-73; Fence 59-69; Wall 63-75. Thresholds sit ~10-15 points
# below the lowest measurement.
MIN_PRESENCE = {
    UNLABELED: 0.95, BUILDING: 0.95, ROAD: 0.95, SIDEWALK: 0.95, VEGETATION: 0.90,
    ROADLINE: 0.90, CAR: 0.80, POLE: 0.70, TRAFFICSIGN: 0.60, OTHER: 0.55,
    PEDESTRIAN: 0.50, FENCE: 0.45, WALL: 0.45,
}


@pytest.fixture(scope="module")
def masks64():
    return [render_scene(0, i, 64, 64)[1] for i in range(100)]


def test_class_names_match_the_default_spec():
    assert CLASS_NAMES == (
        "Unlabeled", "Building", "Fence", "Other", "Pedestrian", "Pole", "RoadLine",
        "Road", "Sidewalk", "Vegetation", "Car", "Wall", "TrafficSign")
    assert NUM_CLASSES == 13
    from grader.spec import load_spec
    spec = load_spec()
    assert tuple(spec.class_names) == CLASS_NAMES


def test_same_arguments_give_identical_arrays():
    a_img, a_mask = render_scene(3, 17, 64, 64)
    b_img, b_mask = render_scene(3, 17, 64, 64)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_mask, b_mask)


def test_different_index_or_seed_gives_a_different_scene():
    img, mask = render_scene(3, 17, 64, 64)
    for other in (render_scene(3, 18, 64, 64), render_scene(4, 17, 64, 64)):
        assert not np.array_equal(img, other[0])
        assert not np.array_equal(mask, other[1])


def test_output_does_not_depend_on_request_order():
    forward = [render_scene(5, i, 64, 96) for i in range(6)]
    render_scene(9, 0, 128, 128)  # something else in between (fills caches for another size)
    backward = [render_scene(5, i, 64, 96) for i in reversed(range(6))][::-1]
    for (ia, ma), (ib, mb) in zip(forward, backward):
        assert np.array_equal(ia, ib) and np.array_equal(ma, mb)


@pytest.mark.parametrize("h,w", [(64, 64), (96, 160), (160, 96), (512, 512)])
def test_shapes_dtypes_and_ids(h, w):
    img, mask = render_scene(1, 2, h, w)
    assert img.shape == (h, w, 3) and img.dtype == np.uint8
    assert mask.shape == (h, w) and mask.dtype == np.uint8
    assert mask.max() < NUM_CLASSES
    assert img.std() > 10  # a picture, not a flat fill


def test_large_seeds_work():
    # the secret test seed can be a random 62-bit integer
    a = render_scene(2**62 - 1, 3, 64, 64)
    b = render_scene(2**62 - 2, 3, 64, 64)
    assert a[1].shape == (64, 64) and not np.array_equal(a[0], b[0])


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError):
        render_scene(0, 0, 4, 64)
    with pytest.raises(ValueError):
        render_scene(0, -1, 64, 64)


def test_layout_is_the_same_scene_at_every_size():
    # Only per-pixel noise depends on the size; the geometry is one scene, rendered at
    # the target resolution. Nearest-downsampled 256 px masks agree with 64 px masks.
    agree = []
    for i in range(10):
        small = render_scene(2, i, 64, 64)[1]
        big = render_scene(2, i, 256, 256)[1][1::4, 1::4]
        agree.append((small == big).mean())
    assert np.mean(agree) > 0.9


def test_every_class_appears_in_its_share_of_images(masks64):
    present = np.zeros(NUM_CLASSES)
    for m in masks64:
        present += np.bincount(m.ravel(), minlength=NUM_CLASSES) > 0
    share = present / len(masks64)
    low = {CLASS_NAMES[c]: share[c] for c, need in MIN_PRESENCE.items() if share[c] < need}
    assert not low, f"classes below their presence threshold: {low}"


def test_thin_classes_are_thin_at_64px(masks64):
    # Poles, lane lines and fences are mostly 1-2 px wide at 64 px: most of their pixels
    # have a left or right neighbour of another class (what a 1/16 bottleneck loses).
    for cls, need in ((POLE, 0.6), (ROADLINE, 0.5), (FENCE, 0.4)):
        edge = total = 0
        for m in masks64:
            hit = m == cls
            if not hit.any():
                continue
            left = np.ones_like(hit)
            right = np.ones_like(hit)
            left[:, 1:] = m[:, :-1] != cls
            right[:, :-1] = m[:, 1:] != cls
            edge += (hit & (left | right)).sum()
            total += hit.sum()
        assert total > 0 and edge / total > need, (CLASS_NAMES[cls], edge / max(total, 1))
    # single-pixel-wide poles exist at 64 px
    assert any(((m == POLE) & (np.roll(m, 1, 1) != POLE) & (np.roll(m, -1, 1) != POLE)).any()
               for m in masks64)


def test_dataset_items_follow_the_convention():
    ds = SyntheticRoadScenes(seed=4, length=5, size=(96, 160))
    assert len(ds) == 5
    img, mask = ds[0]
    assert img.dtype == torch.uint8 and img.shape == (3, 96, 160)
    assert mask.dtype == torch.int64 and mask.shape == (96, 160)
    assert int(mask.max()) < NUM_CLASSES and int(mask.min()) >= 0
    ref_img, ref_mask = render_scene(4, 0, 96, 160)
    assert np.array_equal(img.permute(1, 2, 0).numpy(), ref_img)
    assert np.array_equal(mask.numpy(), ref_mask)
    with pytest.raises(IndexError):
        ds[5]
    last = ds[-1]
    assert torch.equal(last[0], ds[4][0])


def test_dataset_cache_serves_identical_items():
    cached = SyntheticRoadScenes(seed=7, length=4, size=64)
    fresh = SyntheticRoadScenes(seed=7, length=4, size=64, cache=False)
    first = [cached[i] for i in range(4)]
    again = [cached[i] for i in range(4)]
    for (ia, ma), (ib, mb), (ic, mc) in zip(first, again, (fresh[i] for i in range(4))):
        assert torch.equal(ia, ib) and torch.equal(ma, mb)
        assert torch.equal(ia, ic) and torch.equal(ma, mc)
    # handing out a mask does not let the caller corrupt the cache
    first[0][0].fill_(0)
    first[0][1].fill_(0)
    assert torch.equal(cached[0][0], fresh[0][0]) and torch.equal(cached[0][1], fresh[0][1])
    assert cached.materialize() is cached
    assert all(im is not None for im in cached._images)


def test_a_process_renders_each_scene_once_whatever_the_dataset_and_keeps_a_bounded_memory(monkeypatch):
    """The grading process renders the same splits for every submission: a second dataset of
    the same seed and size (the next grade) reads the scenes the first rendered; what either
    hands out can be changed without changing the other's items; the memory keeps the most
    recent scenes within RENDERED_BYTES."""
    from grader.data import synthetic

    monkeypatch.setattr(synthetic, "_RENDERED", synthetic.OrderedDict())
    monkeypatch.setattr(synthetic, "_rendered_bytes", 0)
    rendered = []
    real = synthetic.render_scene
    monkeypatch.setattr(synthetic, "render_scene", lambda *key: rendered.append(key) or real(*key))
    first = [synthetic.SyntheticRoadScenes(seed=11, length=3, size=32)[i] for i in range(3)]
    first[0][0].fill_(0)   # a caller editing its copy in place
    uncached = synthetic.SyntheticRoadScenes(seed=11, length=3, size=32, cache=False)
    second = [uncached[i] for i in range(3)]
    second[1][0].fill_(0)
    assert rendered == [(11, 0, 32, 32), (11, 1, 32, 32), (11, 2, 32, 32)]
    for i in range(3):
        image, mask = real(11, i, 32, 32)
        item = synthetic.SyntheticRoadScenes(seed=11, length=3, size=32)[i]
        assert torch.equal(item[0], torch.from_numpy(image).permute(2, 0, 1)) and torch.equal(item[1], torch.from_numpy(mask).long())
    scene_bytes = 32 * 32 * 4
    monkeypatch.setattr(synthetic, "RENDERED_BYTES", 2 * scene_bytes)
    synthetic.SyntheticRoadScenes(seed=12, length=1, size=32)[0]
    assert list(synthetic._RENDERED) == [(11, 2, 32, 32), (12, 0, 32, 32)]   # the least recent left
    assert synthetic._rendered_bytes == 2 * scene_bytes


def test_dataset_works_with_a_dataloader():
    ds = SyntheticRoadScenes(seed=0, length=6, size=64).materialize()
    images, masks = next(iter(torch.utils.data.DataLoader(ds, batch_size=6)))
    assert images.shape == (6, 3, 64, 64) and masks.shape == (6, 64, 64)
    assert masks.dtype == torch.int64
