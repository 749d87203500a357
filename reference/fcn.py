"""Reference FCN-32s, FCN-16s and FCN-8s on a VGG16 backbone (Long et al., CVPR 2015).

Part of segrade's reference solution. This file is written exactly like a student submission
that follows the contract: a plain module with absolute imports of torch, torchvision and the
standard library only, imported on its own by file path.

Public names:
    FCN32s, FCN16s, FCN8s(num_classes, freeze_backbone=False, pretrained=True, weights_path=None)
    load_vgg16_imagenet_state_dict(weights_path=None), vgg16_weights_cache_path()
    bilinear_kernel(channels, kernel_size)
    POOL3, POOL4, POOL5, STRIDE, WEIGHTS_ENV

forward(x): N x 3 x H x W (ImageNet-normalised) -> N x num_classes x H x W logits.
"""

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import VGG16_Weights, vgg16

# Indices of the max-pool layers in torchvision's `vgg16().features`; their outputs are at
# 1/8, 1/16 and 1/32 of the input.
POOL3, POOL4, POOL5 = 16, 23, 30
# Total downsampling of the backbone: inputs are padded to a multiple of this.
STRIDE = 32
# Environment variable naming a local copy of torchvision's ImageNet VGG16 state dict.
WEIGHTS_ENV = "SEGRADE_VGG16_WEIGHTS"


# --------------------------------------------------------------------------- weights


def vgg16_weights_cache_path() -> Path:
    """Where torchvision caches the ImageNet VGG16 weights (vgg16-397923af.pth)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(VGG16_Weights.IMAGENET1K_V1.url).name


def _load_file(path: Path, what: str) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"{what}: VGG16 weights file not found: {path}")
    # weights_only: a checkpoint must never be able to run code when it is loaded.
    return torch.load(path, map_location="cpu", weights_only=True)


def load_vgg16_imagenet_state_dict(
    weights_path: str | os.PathLike | None = None,
) -> dict[str, torch.Tensor]:
    """Return torchvision's ImageNet VGG16 state dict (torchvision key names).

    Looked up in this order: the explicit `weights_path`; the file named by the environment
    variable SEGRADE_VGG16_WEIGHTS; torchvision's cache file (see vgg16_weights_cache_path);
    a download through torchvision. Raises FileNotFoundError for a missing explicit file and
    RuntimeError when nothing is available offline.
    """
    if weights_path is not None:
        return _load_file(Path(weights_path).expanduser(), "weights_path")
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return _load_file(Path(env).expanduser(), WEIGHTS_ENV)
    cached = vgg16_weights_cache_path()
    if cached.is_file():
        return _load_file(cached, "torch hub cache")
    try:
        return VGG16_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
    except OSError:  # URLError, HTTPError, socket and SSL errors are all OSErrors
        raise RuntimeError(
            "ImageNet VGG16 weights are not available offline: "
            f"put {cached.name} in {cached.parent}, "
            f"or set {WEIGHTS_ENV}=/path/to/vgg16.pth, "
            "or build the model with pretrained=False."
        ) from None


# --------------------------------------------------------------------------- upsampling


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """ConvTranspose2d weight (channels x channels x k x k) that upsamples each channel
    bilinearly on its own (the FCN initialisation); channels do not mix."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    taps = 1 - (torch.arange(kernel_size, dtype=torch.float32) - center).abs() / factor
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = taps[:, None] * taps[None, :]
    return weight


def _upsampler(channels: int, factor: int) -> nn.ConvTranspose2d:
    # kernel 2f, stride f, padding f/2: the output is exactly f times the input, aligned like
    # bilinear interpolation, so no crop offsets are needed. Trainable, as in the paper.
    up = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False)
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(channels, 2 * factor))
    return up


def _zero_conv1x1(in_channels: int, num_classes: int) -> nn.Conv2d:
    # The skip score layers start at zero (as in the paper), so the finer model starts as the
    # coarser one; their weights still get a gradient from the pool features.
    conv = nn.Conv2d(in_channels, num_classes, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    # Pad right and bottom only, so cropping [:H, :W] afterwards restores the input grid.
    # Zero is the mean colour of an ImageNet-normalised image.
    h, w = x.shape[-2:]
    return F.pad(x, (0, (-w) % multiple, 0, (-h) % multiple))


# --------------------------------------------------------------------------- models


class _FCNBase(nn.Module):
    """VGG16 conv1-5 + fc6/fc7 as convolutions + the 1/32 score layer, shared by all variants."""

    def __init__(
        self,
        num_classes: int,
        freeze_backbone: bool = False,
        pretrained: bool = True,
        weights_path: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        # Weights are fetched before anything big is built, so a missing file fails fast.
        state = load_vgg16_imagenet_state_dict(weights_path) if pretrained else None
        vgg = vgg16(weights=None)
        if state is not None:
            vgg.load_state_dict(state)  # torchvision key names, no renaming

        # Kept as torchvision builds it, so POOL3/POOL4/POOL5 index the pools.
        self.features = vgg.features
        # fc6/fc7 are VGG's first two classifier layers reshaped into convolutions (pretrained
        # or VGG's own random init); skip_init avoids initialising 120M weights twice.
        self.fc6 = nn.utils.skip_init(nn.Conv2d, 512, 4096, 7, padding=3)
        self.relu6 = nn.ReLU()
        self.drop6 = nn.Dropout2d(0.5)
        self.fc7 = nn.utils.skip_init(nn.Conv2d, 4096, 4096, 1)
        self.relu7 = nn.ReLU()
        self.drop7 = nn.Dropout2d(0.5)
        with torch.no_grad():
            self.fc6.weight.copy_(vgg.classifier[0].weight.view(4096, 512, 7, 7))
            self.fc6.bias.copy_(vgg.classifier[0].bias)
            self.fc7.weight.copy_(vgg.classifier[3].weight.view(4096, 4096, 1, 1))
            self.fc7.bias.copy_(vgg.classifier[3].bias)
        del vgg, state

        # Default init, not zero: a zero score layer would block every backbone gradient.
        self.score_fr = nn.Conv2d(4096, num_classes, 1)
        self.num_classes = num_classes
        self.set_backbone_frozen(freeze_backbone)

    def backbone_modules(self) -> list[nn.Module]:
        """Everything that comes from VGG16: features, fc6, fc7."""
        return [self.features, self.fc6, self.fc7]

    def set_backbone_frozen(self, frozen: bool) -> None:
        """Freeze (or unfreeze) the VGG16 part; score layers and upsampling stay trainable."""
        self.backbone_frozen = bool(frozen)
        for module in self.backbone_modules():
            module.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> "_FCNBase":
        super().train(mode)
        # A frozen backbone stays in eval mode, so no running statistic could ever change
        # (VGG16 has no BatchNorm today; this keeps it true for a BN backbone too).
        if self.backbone_frozen:
            for module in self.backbone_modules():
                module.train(False)
        return self

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (pool3, pool4, score_fr): features at 1/8 and 1/16, class scores at 1/32."""
        pools = {}
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in (POOL3, POOL4, POOL5):
                pools[index] = x
        h = self.drop6(self.relu6(self.fc6(pools[POOL5])))
        h = self.drop7(self.relu7(self.fc7(h)))
        return pools[POOL3], pools[POOL4], self.score_fr(h)


class FCN32s(_FCNBase):
    """Scores at 1/32, upsampled x32 in one step."""

    def __init__(self, num_classes: int, freeze_backbone: bool = False, pretrained: bool = True,
                 weights_path: str | os.PathLike | None = None) -> None:
        super().__init__(num_classes, freeze_backbone, pretrained, weights_path)
        self.upscore = _upsampler(num_classes, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        _, _, score = self._encode(_pad_to_multiple(x, STRIDE))
        return self.upscore(score)[..., :h, :w]


class FCN16s(_FCNBase):
    """1/32 scores upsampled x2, fused with pool4 scores (1/16), upsampled x16."""

    def __init__(self, num_classes: int, freeze_backbone: bool = False, pretrained: bool = True,
                 weights_path: str | os.PathLike | None = None) -> None:
        super().__init__(num_classes, freeze_backbone, pretrained, weights_path)
        self.score_pool4 = _zero_conv1x1(512, num_classes)
        self.upscore2 = _upsampler(num_classes, 2)
        self.upscore16 = _upsampler(num_classes, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        _, pool4, score = self._encode(_pad_to_multiple(x, STRIDE))
        fuse_pool4 = self.upscore2(score) + self.score_pool4(pool4)
        return self.upscore16(fuse_pool4)[..., :h, :w]


class FCN8s(_FCNBase):
    """As FCN-16s, then upsampled x2 again, fused with pool3 scores (1/8), upsampled x8."""

    def __init__(self, num_classes: int, freeze_backbone: bool = False, pretrained: bool = True,
                 weights_path: str | os.PathLike | None = None) -> None:
        super().__init__(num_classes, freeze_backbone, pretrained, weights_path)
        self.score_pool4 = _zero_conv1x1(512, num_classes)
        self.score_pool3 = _zero_conv1x1(256, num_classes)
        self.upscore2 = _upsampler(num_classes, 2)
        self.upscore_pool4 = _upsampler(num_classes, 2)
        self.upscore8 = _upsampler(num_classes, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pool3, pool4, score = self._encode(_pad_to_multiple(x, STRIDE))
        fuse_pool4 = self.upscore2(score) + self.score_pool4(pool4)
        fuse_pool3 = self.upscore_pool4(fuse_pool4) + self.score_pool3(pool3)
        return self.upscore8(fuse_pool3)[..., :h, :w]
