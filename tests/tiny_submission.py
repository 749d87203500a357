"""A tiny submission that follows the contract (one conv per class), for tests that grade
submissions through the real worker: fast to build, and easy to make broken or hostile by
overriding one class."""

import textwrap
from pathlib import Path

TINY = '''
import torch.nn as nn

class Tiny(nn.Module):
    def __init__(self, num_classes, freeze_backbone=False, pretrained=True, in_channels=3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, 3, padding=1)

    def forward(self, x):
        return self.conv(x)
'''
CONTRACT_NAMES = ("FCN32s", "FCN16s", "FCN8s", "UNet", "UNetNoSkip", "ResidualUNet", "AttentionUNet")


def contract_classes(**overrides: str) -> str:
    """TINY plus every contract class, `class X(Tiny): pass` unless overridden with a body."""
    out = [TINY]
    for name in CONTRACT_NAMES:
        body = textwrap.indent(textwrap.dedent(overrides.get(name, "pass")), "    ")
        out.append(f"class {name}(Tiny):\n{body}\n")
    return "\n".join(out)


def write_submission(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            (root / rel).write_bytes(content)
        else:
            (root / rel).write_text(textwrap.dedent(content))
    return root
