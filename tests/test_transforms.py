"""Joint image/mask transforms: sizes, dtypes, nearest masks, normalisation, alignment, padding."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from grader.data import IGNORE_INDEX
from grader.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TransformedDataset,
    denormalize,
    eval_transform,
    train_transform,
)


def _random_pair(h=60, w=80, num_classes=13, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)
    mask = torch.randint(0, num_classes, (h, w), generator=g)
    mask[:5] = IGNORE_INDEX
    return image, mask


def _coded_pair(h=48, w=64, block=4, seed=0):
    """An image whose red channel encodes the class id (20 * id) and whose green channel
    encodes the column (so flips show), in blocks of block x block pixels, and its mask."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.randint(0, 13, (h // block, w // block), generator=g)
    mask = mask.repeat_interleave(block, 0).repeat_interleave(block, 1)
    red = (mask * 20).to(torch.uint8)
    green = torch.linspace(0, 255, w).round().to(torch.uint8).expand(h, w)
    blue = torch.full((h, w), 128, dtype=torch.uint8)
    return torch.stack([red, green, blue]), mask


def _decoded_ids(image):
    return (denormalize(image)[0].float() / 20).round().long()


@pytest.mark.parametrize("size, hw", [(32, (32, 32)), ((24, 40), (24, 40)), ((120, 160), (120, 160))])
def test_eval_transform_shapes_and_dtypes(size, hw):
    image, mask = _random_pair()
    out_image, out_mask = eval_transform(size)(image, mask)
    assert type(out_image) is torch.Tensor and type(out_mask) is torch.Tensor  # plain tensors, not tv_tensors
    assert out_image.shape == (3, *hw) and out_image.dtype == torch.float32
    assert out_mask.shape == hw and out_mask.dtype == torch.int64
    # nearest: no new ids (no blends of two ids) on down- and up-sampling
    assert set(out_mask.unique().tolist()) <= set(mask.unique().tolist())


def test_eval_transform_accepts_uint8_masks_and_no_mask():
    image, mask = _random_pair()
    _, out_mask = eval_transform(16)(image, mask.to(torch.uint8))
    assert out_mask.dtype == torch.int64
    out_image, none = eval_transform(16)(image)
    assert out_image.shape == (3, 16, 16) and none is None


def test_torchvision_resizes_masks_nearest():
    # v2.Resize on a tv_tensors.Mask uses nearest even when asked for bilinear
    mask = tv_tensors.Mask(torch.tensor([[0, 10], [10, 0]]))
    out = v2.Resize((7, 7), interpolation=v2.InterpolationMode.BILINEAR)(mask)
    assert set(out.unique().tolist()) == {0, 10}


def test_mask_resize_matches_pil_nearest():
    # our masks use NEAREST_EXACT, i.e. PIL's nearest (pixel centres), not torch's legacy nearest
    image, mask = _random_pair(h=600, w=800)
    mask[mask == IGNORE_INDEX] = 0
    _, out_mask = eval_transform((256, 256))(image, mask)
    pil = Image.fromarray(mask.numpy().astype(np.uint8)).resize((256, 256), Image.NEAREST)
    assert torch.equal(out_mask, torch.from_numpy(np.asarray(pil).astype(np.int64)))


def test_resized_mask_stays_aligned_with_resized_image():
    # a smooth image and its thresholded mask: after 600x800 -> 256x256 the resized mask
    # and the thresholded resized image agree almost everywhere (the legacy nearest
    # mode would disagree on ~2.4% of pixels here, 5x more)
    g = torch.Generator().manual_seed(0)
    field = torch.nn.functional.interpolate(torch.rand(1, 1, 15, 20, generator=g) * 255, size=(600, 800), mode="bicubic")
    grey = field.clamp(0, 255).round().to(torch.uint8)[0, 0]
    image, mask = grey.expand(3, -1, -1).contiguous(), (grey > 128).long()
    out_image, out_mask = eval_transform(256)(image, mask)
    thresholded = (denormalize(out_image)[0] > 128).long()
    assert (thresholded != out_mask).float().mean() < 0.01


def test_normalisation():
    mean_colour = torch.tensor([round(255 * m) for m in IMAGENET_MEAN], dtype=torch.uint8)
    image = mean_colour.view(3, 1, 1).expand(3, 20, 30).contiguous()
    out, _ = eval_transform((20, 30))(image, torch.zeros(20, 30, dtype=torch.int64))
    assert out.abs().max() < 0.01
    white, _ = eval_transform(8)(torch.full((3, 8, 8), 255, dtype=torch.uint8), torch.zeros(8, 8, dtype=torch.int64))
    expected = [(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    assert torch.allclose(white[:, 0, 0], torch.tensor(expected), atol=1e-5)


def test_denormalize_round_trip():
    image, mask = _random_pair(h=32, w=48)
    out, _ = eval_transform((32, 48))(image, mask)  # same size: no resampling
    assert torch.equal(denormalize(out), image)
    batch = denormalize(out.unsqueeze(0).repeat(2, 1, 1, 1))
    assert batch.shape == (2, 3, 32, 48) and batch.dtype == torch.uint8
    with pytest.raises(ValueError, match="C = 3 or 1"):
        denormalize(torch.zeros(2, 32, 48))


def test_a_grayscale_course_s_images_keep_one_channel_and_its_normalisation():
    """`[dataset] channels = 1`: 1 x H x W in and out, normalised with the grayscale mean and std
    the course's models receive (grader.shared.conventions.normalisation(1)); the training
    crop pads with that mean and jitters brightness and contrast only."""
    from grader.shared.conventions import normalisation

    (mean,), (std,) = normalisation(1)
    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (1, 32, 48), dtype=torch.uint8, generator=g)
    mask = torch.randint(0, 13, (32, 48), generator=g)
    out, out_mask = eval_transform((32, 48), channels=1)(image, mask)
    assert out.shape == (1, 32, 48) and torch.equal(out_mask, mask)
    assert torch.allclose(out, (image.float() / 255 - mean) / std, atol=1e-5)
    assert torch.equal(denormalize(out), image)
    grey = torch.full((1, 8, 8), round(255 * mean), dtype=torch.uint8)
    torch.manual_seed(0)
    zeros = torch.zeros(8, 8, dtype=torch.int64)
    crop, crop_mask = train_transform(64, scale=(0.5, 0.5), color_jitter=False, channels=1)(grey, zeros)
    assert crop.shape == (1, 64, 64) and (crop_mask == IGNORE_INDEX).float().mean() == 0.75   # 32 x 32 in 64 x 64
    assert crop[:, crop_mask == IGNORE_INDEX].abs().max() < 0.02   # padded with the mean: ~0
    jittered, _ = train_transform(64, channels=1)(image, mask)     # saturation and hue need colour
    assert jittered.shape == (1, 64, 64)
    # A transform takes only its own channel count: normalising would broadcast the other one.
    with pytest.raises(ValueError, match=r"must be 3 x H x W for this transform \(channels=1 for a grayscale course\)"):
        eval_transform(8)(image, mask)
    with pytest.raises(ValueError, match="must be 1 x H x W"):
        eval_transform(8, channels=1)(torch.zeros(3, 8, 8, dtype=torch.uint8), torch.zeros(8, 8, dtype=torch.int64))


def test_train_transform_shapes_and_ids():
    torch.manual_seed(0)
    image, mask = _random_pair()
    transform = train_transform((48, 64))
    for _ in range(10):
        out_image, out_mask = transform(image, mask)
        assert out_image.shape == (3, 48, 64) and out_image.dtype == torch.float32
        assert out_mask.shape == (48, 64) and out_mask.dtype == torch.int64
        assert set(out_mask.unique().tolist()) <= set(mask.unique().tolist()) | {IGNORE_INDEX}


def test_train_transform_keeps_image_and_mask_aligned_exactly():
    # scale 1 at the native size: crop/pad and flip only, no resampling -> exact alignment
    image, mask = _coded_pair()
    transform = train_transform((48, 64), scale=(1.0, 1.0), color_jitter=False)
    torch.manual_seed(1)
    flipped = set()
    for _ in range(12):
        out_image, out_mask = transform(image, mask)
        assert torch.equal(_decoded_ids(out_image), out_mask)
        green = denormalize(out_image)[1, 0]
        flipped.add(bool(green[0] > green[-1]))
    assert flipped == {True, False}  # both flipped and unflipped samples occurred


def _interior(mask, radius=2):
    """Pixels whose (2 radius + 1)^2 neighbourhood in the mask holds one id (away from
    the block edges that bilinear resampling blurs)."""
    m = mask.float()[None, None]
    k = 2 * radius + 1
    high = torch.nn.functional.max_pool2d(m, k, stride=1, padding=radius)
    low = -torch.nn.functional.max_pool2d(-m, k, stride=1, padding=radius)
    return (high == low)[0, 0] & (mask != IGNORE_INDEX)


def test_train_transform_keeps_alignment_when_scaling():
    image, mask = _coded_pair(h=96, w=128, block=16)
    transform = train_transform((64, 96), scale=(0.5, 2.0), color_jitter=False)
    torch.manual_seed(2)
    for _ in range(12):
        out_image, out_mask = transform(image, mask)
        inside = _interior(out_mask)
        assert inside.sum() > 200
        decoded = _decoded_ids(out_image)
        assert torch.equal(decoded[inside], out_mask[inside])
        # the check has teeth: a 2-pixel shift of the image against the mask is caught
        assert not torch.equal(decoded.roll(2, 1)[inside], out_mask[inside])


def test_train_transform_pads_masks_with_ignore_index():
    image, mask = _coded_pair()
    transform = train_transform((48, 64), scale=(0.5, 0.5), hflip=False, color_jitter=False)
    torch.manual_seed(3)
    out_image, out_mask = transform(image, mask)
    padded = out_mask == IGNORE_INDEX
    assert padded.float().mean() == pytest.approx(0.75)  # a 24 x 32 sample in a 48 x 64 crop
    assert (out_mask[~padded] < 13).all()  # class ids only where the sample is; never 0 as padding
    assert out_image[:, padded].abs().max() < 0.02  # the image is padded with the mean colour (~0)


def test_colour_jitter_touches_the_image_only():
    image, mask = _coded_pair()
    torch.manual_seed(4)
    jittered, jittered_mask = train_transform((48, 64), scale=(1.0, 1.0), hflip=False)(image, mask)
    plain, _ = eval_transform((48, 64))(image, mask)
    assert torch.equal(jittered_mask, mask)
    assert not torch.allclose(jittered, plain)


def test_train_transform_is_reproducible_with_torch_seed():
    image, mask = _random_pair()
    transform = train_transform(32)
    torch.manual_seed(5)
    a = transform(image, mask)
    torch.manual_seed(5)
    b = transform(image, mask)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_bad_arguments():
    image, mask = _random_pair()
    with pytest.raises(ValueError, match="size must be"):
        eval_transform((1, 2, 3))
    with pytest.raises(ValueError, match="scale must be"):
        train_transform(32, scale=(2.0, 1.0))
    with pytest.raises(ValueError, match="does not match image size"):
        eval_transform(16)(image, mask[:10])


def test_transformed_dataset():
    pairs = [_random_pair(seed=i) for i in range(3)]
    ds = TransformedDataset(pairs, eval_transform(16))
    assert len(ds) == 3
    images, masks = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert images.shape == (3, 3, 16, 16) and masks.shape == (3, 16, 16) and masks.dtype == torch.int64
