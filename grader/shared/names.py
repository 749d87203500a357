"""How student class names are compared (neutral: used by the worker's adapters to find a
variant's class, and by the grading side to say which failed file defined it)."""

from __future__ import annotations

import re

# Words that make a name a building block, not a model (UNetBlock, AttentionGate, FCNHead).
HELPER_WORDS = {"block", "blocks", "conv", "convs", "layer", "layers", "gate", "gates", "up", "down",
                "upsample", "downsample", "encoder", "decoder", "stage", "stages", "head", "bridge",
                "bottleneck", "dataset", "loss", "trainer", "data", "loader", "config", "cfg", "metric"}


def normalise_name(name: str) -> str:
    """Contract names match case- and underscore-insensitively: `fcn_8s` ~ `FCN8s`."""
    return name.replace("_", "").replace("-", "").lower()


def name_tokens(name: str) -> list[str]:
    """Words of a CamelCase/snake_case name: UNetBlock -> u, net, block; FCN8sHead -> fcn, 8, s, head."""
    return [t.lower() for t in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)]


def is_helper_name(name: str) -> bool:
    return any(t in HELPER_WORDS for t in name_tokens(name))
