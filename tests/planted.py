"""Planted defects in a one-conv U-Net whose judgment is unit-tested on what the worker
observed (tests/data/observations/<case>.json), not on a worker per test.

Each case is the source of `models.py`; `tests/record_observations.py` runs the real worker
on it (spec: the default one cut to `unet`, no architecture requirement) and records the
variant's observation with the sha256 of the source it came from. test_checks.py judges the
recordings and fails with the command to run when a source here no longer matches its
recording, or when a recording no longer passes the protocol's schema.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tiny_submission import contract_classes

OBSERVATIONS = Path(__file__).resolve().parent / "data" / "observations"
RECORD_COMMAND = ".venv/bin/python tests/record_observations.py"

CASES = {
    "wrong_class_count": contract_classes(UNet="""
        def __init__(self, num_classes, in_channels=3):
            super().__init__(num_classes - 1)
    """),
    "square_only_output": contract_classes(UNet="""
        def forward(self, x):
            out = self.conv(x)
            side = x.shape[-1]
            return out[:, :, :side, :side] if out.shape[-2] >= side else out.new_zeros(out.shape[0], out.shape[1], side, side)
    """),
    "half_resolution_output": contract_classes(UNet="""
        def forward(self, x):
            return self.conv(x)[:, :, ::2, ::2]
    """),
    "unused_layer": contract_classes(UNet="""
        def __init__(self, num_classes, in_channels=3):
            import torch.nn as nn
            super().__init__(num_classes)
            self.forgotten = nn.Conv2d(13, 13, 3, padding=1)
    """),
    "detached_output_layer": contract_classes(UNet="""
        def __init__(self, num_classes, in_channels=3):
            import torch.nn as nn
            super().__init__(num_classes)
            self.pre = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            y = self.pre(x)
            return self.conv(y).detach() + 0 * y.mean()
    """),
    "softmax_in_forward": contract_classes(UNet="""
        def forward(self, x):
            return self.conv(x).softmax(dim=1)
    """),
    "dropout_on_in_eval": contract_classes(UNet="""
        def forward(self, x):
            import torch.nn.functional as F
            return self.conv(F.dropout(x, 0.2))   # training=True by default: drops in eval mode too
    """),
}


def source_sha256(case: str) -> str:
    return hashlib.sha256(CASES[case].encode()).hexdigest()


def recording(case: str) -> dict:
    """The recorded observation of `case` ({"source_sha256", "observation"})."""
    return json.loads((OBSERVATIONS / f"{case}.json").read_text())
