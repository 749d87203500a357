"""A hostile submission (tests/test_capture_hostile.py): a frozen FCN-32s whose backbone trains
and a "no-skip" U-Net that keeps a full-resolution skip, written by a student who has read
segrade's source. With CHEAT = True it patches segrade's worker-side modules so that the
measurements taken in its own process say what it wants: at import, from the constructor,
from forward and from a thread (the measurement functions, the dataflow recorder, the training
loop, the channel writer, the layers structural similarity compares). CHEAT = False is the honest file: the backbone really frozen, no skip.
"""

import sys
import threading
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import vgg16

CHEAT = True


def _fake_fingerprint(*args, **kwargs):
    protocol = sys.modules["grader.shared.protocol"]
    return protocol.Fingerprint(method="export", bypass_scale=1 / 16, downsampling_levels=4, long_skips=(),
                                residual_adds=0, gated_multiplies=(), ungated_attention=0)


def _patch():
    """Make every worker-side measurement report what passes."""
    probes = sys.modules.get("grader.measure.probes")
    graph = sys.modules.get("grader.measure.graph")
    if probes is not None and not getattr(probes.backbone_training, "patched", False):
        real = probes.backbone_training

        def backbone_training(*args, **kwargs):   # whatever the grader passes, passed on
            seen, first = real(*args, **kwargs)
            seen["head_changed"] = seen["head_changed"] + seen["backbone_changed"]
            seen["backbone_changed"] = []
            seen["changed_parts"] = {}
            return seen, first

        backbone_training.patched = True
        probes.backbone_training = backbone_training
    if graph is not None:
        graph.fingerprint = _fake_fingerprint
    train = sys.modules.get("grader.measure.train")
    if train is not None and not getattr(train.train, "patched", False):
        real_train = train.train

        def cheating_train(model, *args, **kwargs):   # the training loop: the backbone never moves
            held = [p for n, p in model.named_parameters() if "backbone" in n and p.requires_grad]
            for p in held:
                p.requires_grad_(False)
            try:
                return real_train(model, *args, **kwargs)
            finally:
                for p in held:
                    p.requires_grad_(True)

        cheating_train.patched = True
        train.train = cheating_train
    structure = sys.modules.get("grader.shared.structure")   # the layers similarity compares: a copy hides
    if structure is not None:
        structure.layers = lambda model: ["Module(forged)"]
    writer = sys.modules.get("grader.shared.channel")   # the worker's and verifier's channel writer
    channel = getattr(writer, "Channel", None)
    if channel is not None and not getattr(channel.send, "patched", False):
        real_send = channel.send

        def send(self, event, **data):   # the channel writer: results say "passed"
            if event == "result" and "architecture" in data.get("result", {}):
                data["result"]["architecture"] = _fake_fingerprint().to_json()
            return real_send(self, event, **data)

        send.patched = True
        channel.send = send


def _keep_patching():
    while True:
        _patch()
        time.sleep(0.01)


if CHEAT:
    _patch()                                                     # at import
    threading.Thread(target=_keep_patching, daemon=True).start()  # from a thread


class FCN32s(nn.Module):
    def __init__(self, num_classes, freeze_backbone=False, pretrained=True):
        super().__init__()
        if CHEAT:
            _patch()                                             # from the constructor
        self.backbone = vgg16(weights=None).features
        self.score = nn.Conv2d(512, num_classes, 1)
        if freeze_backbone and not CHEAT:                        # the cheat: never frozen
            for p in self.backbone.parameters():
                p.requires_grad = False

    def forward(self, x):
        if CHEAT:
            _patch()                                             # from forward
        return F.interpolate(self.score(self.backbone(x)), size=x.shape[-2:], mode="bilinear")


def _block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))


class UNetNoSkip(nn.Module):
    def __init__(self, num_classes, in_channels=3):
        super().__init__()
        widths = [8, 8, 8, 8, 8]
        self.inc = _block(in_channels, widths[0])
        self.downs = nn.ModuleList(_block(widths[i], widths[i + 1]) for i in range(4))
        self.ups = nn.ModuleList(nn.ConvTranspose2d(8, 8, 2, stride=2) for _ in range(4))
        self.outc = nn.Conv2d(16 if CHEAT else 8, num_classes, 1)

    def forward(self, x):
        first = self.inc(x)
        h = first
        for down in self.downs:
            h = down(F.max_pool2d(h, 2))
        for up in self.ups:
            h = up(h)
        if CHEAT:                                                # the cheat: a skip at full resolution
            h = torch.cat([first, h], dim=1)
        return self.outc(h)
