"""Pretrained weights a constructor asks for itself, under a profile that starts backbones from
random init (the smoke profile): the constructor gets the same architecture's random-init
weights instead of a download, so `vgg16(weights=VGG16_Weights.DEFAULT)`, `vgg16(pretrained=True)`
or `torch.hub.load_state_dict_from_url(VGG16 url)` build offline, and the run says so.

Installed in the worker before student code runs, and only when the request asks for it
(grader.grading.pipeline: a random-init profile, not checkpoint mode). A weights file that is
already in torch's cache is loaded as usual; a URL that is no torchvision model's weights is
left to fail as it would (the checks then name the file it wanted).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

# The weights files replaced since the last clear(), by file name (vgg16-397923af.pth)
SUBSTITUTED: list[str] = []


def _file_name(url: str) -> str:
    return Path(urlparse(url).path).name


def _cached(url: str, model_dir: str | None, file_name: str | None) -> bool:
    import torch.hub

    folder = Path(model_dir) if model_dir else Path(torch.hub.get_dir()) / "checkpoints"
    return (folder / (file_name or _file_name(url))).is_file()


def random_state_dict(url: str) -> dict[str, Any] | None:
    """The random-init state dict of the torchvision model whose weights `url` holds, or None."""
    from torchvision import models

    for name in models.list_models():
        try:
            weights = models.get_model_weights(name)
        except (ValueError, KeyError):
            continue
        for entry in weights:
            if entry.url != url:
                continue
            classes = len(entry.meta.get("categories") or ()) or None
            model = models.get_model(name, weights=None, **({"num_classes": classes} if classes else {}))
            return model.state_dict()
    return None


def install_random_init() -> None:
    """Answer torchvision's and torch.hub's weight downloads with random-init weights."""
    import torch.hub
    import torch.utils.model_zoo
    from torchvision.models import _api

    original = torch.hub.load_state_dict_from_url
    if getattr(original, "__segrade_random_init__", False):
        return

    def load_state_dict_from_url(url: str, model_dir: str | None = None, *args: Any, **kwargs: Any):
        if _cached(url, model_dir, kwargs.get("file_name")):
            return original(url, model_dir, *args, **kwargs)
        state = random_state_dict(url)
        if state is None:
            return original(url, model_dir, *args, **kwargs)
        SUBSTITUTED.append(_file_name(url))
        return state

    def get_state_dict(self, *args: Any, **kwargs: Any):
        return load_state_dict_from_url(self.url, *args, **kwargs)

    load_state_dict_from_url.__segrade_random_init__ = True
    torch.hub.load_state_dict_from_url = load_state_dict_from_url
    torch.utils.model_zoo.load_url = load_state_dict_from_url
    _api.WeightsEnum.get_state_dict = get_state_dict
    if hasattr(_api, "load_state_dict_from_url"):
        _api.load_state_dict_from_url = load_state_dict_from_url
