"""Whether ImageNet VGG16 weights are available offline, decided in one place.

segrade never downloads weights. It builds FCN variants with `pretrained=True`
only when a weights file is found here, and hands it to the worker both as
SEGRADE_VGG16_WEIGHTS (the reference solution reads it) and as the file in the
worker's own torchvision cache (for students who call
`vgg16(weights="IMAGENET1K_V1")` directly).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

WEIGHTS_ENV = "SEGRADE_VGG16_WEIGHTS"
# torchvision's file name for VGG16_Weights.IMAGENET1K_V1; kept literal so that the
# grading process does not need to import torchvision to answer this question.
TORCHVISION_VGG16_FILE = "vgg16-397923af.pth"


@dataclass(frozen=True)
class BackboneWeights:
    path: Path | None

    @property
    def available(self) -> bool:
        return self.path is not None

    def worker_setup(self) -> dict:
        """run_worker arguments that make the weights visible to student code: the
        SEGRADE_VGG16_WEIGHTS variable and torchvision's cache file name."""
        if self.path is None:
            return {}
        return {"extra_env": {WEIGHTS_ENV: str(self.path)}, "torch_cache": {TORCHVISION_VGG16_FILE: self.path},
                "readable": (self.path,)}

    def describe(self) -> str:
        if self.path is not None:
            return f"ImageNet VGG16 weights from {self.path}"
        return (
            "ImageNet VGG16 weights are not available offline, so FCN backbones start from "
            f"random init (pretrained=False). To use them, pass --vgg16-weights FILE, set "
            f"{WEIGHTS_ENV}=FILE, or put {TORCHVISION_VGG16_FILE} in {torch_hub_checkpoints()}."
        )


def torch_hub_checkpoints() -> Path:
    # Mirrors torch.hub.get_dir(): $TORCH_HOME/hub, else $XDG_CACHE_HOME/torch/hub.
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch"
    )
    return Path(torch_home) / "hub" / "checkpoints"


def find_vgg16_weights(explicit: str | os.PathLike | None = None) -> BackboneWeights:
    """The weights file to use: an explicit path, then $SEGRADE_VGG16_WEIGHTS, then torchvision's cache."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"--vgg16-weights: no file at {path}")
        return BackboneWeights(path.resolve())
    from_env = os.environ.get(WEIGHTS_ENV)
    if from_env:
        path = Path(from_env).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{WEIGHTS_ENV} points at {path}, which is not a file")
        return BackboneWeights(path.resolve())
    cached = torch_hub_checkpoints() / TORCHVISION_VGG16_FILE
    return BackboneWeights(cached.resolve() if cached.is_file() else None)
