"""grader.graph: architecture fingerprints from the dataflow graph of one forward pass (BRIEF §6).

Reference models pass, planted defects fail with a message a student understands, and
Carol's notebook raises no false alarm (the other examples: test_submissions.py). Every case
runs with both graph builders (torch.export and the dispatch recording): they must agree.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from grader.grading.architecture import Fingerprint, check_architecture, format_scale
from grader.measure.graph import ExportFailed, GraphError, fingerprint

ROOT = Path(__file__).resolve().parents[1]
SIZE = 64
SKIPS = [1.0, 0.5, 0.25, 0.125]
REQUIREMENTS = {
    "unet": {"bypass_scale": 1.0, "long_skips": SKIPS},
    "unet_noskip": {"no_long_skips": True, "max_bypass_scale": 1 / 16},
    "unet_residual": {"bypass_scale": 1.0, "long_skips": SKIPS, "residual_adds_min": 8},
    "unet_attention": {"bypass_scale": 1.0, "long_skips": SKIPS, "gated_skips": True},
    "fcn32s": {"bypass_scale": 1 / 32},
    "fcn16s": {"bypass_scale": 1 / 16},
    "fcn8s": {"bypass_scale": 1 / 8},
}


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ref_unet():
    return _load(ROOT / "reference" / "unet.py", "_graph_ref_unet")


@pytest.fixture(scope="module")
def ref_fcn():
    return _load(ROOT / "reference" / "fcn.py", "_graph_ref_fcn")


@pytest.fixture
def fast_init(monkeypatch):
    """Skip the random init of VGG16's 120M classifier weights: structure is all that counts.
    Zeros, not the uninitialised memory: garbage holds denormal floats, which made the real
    forward pass of the dispatch recording take 7 s in one run and 49 s in another."""
    for name in ("kaiming_normal_", "kaiming_uniform_", "normal_", "uniform_", "constant_", "zeros_",
                 "xavier_uniform_"):
        monkeypatch.setattr(nn.init, name, _zeros)


def _zeros(tensor, *args, **kwargs):
    with torch.no_grad():
        return tensor.zero_()


def _check(model: nn.Module, variant: str, name: str | None = None) -> tuple[Fingerprint, str, str]:
    """The dispatch fingerprint and its verdict, after asserting that torch.export gives the same."""
    fp = fingerprint(model, SIZE, method="dispatch")
    exported = fingerprint(model, SIZE, method="export")
    assert exported.method == "export" and fp.method == "dispatch"
    assert exported.same_architecture(fp), (exported, fp)
    status, message = check_architecture(fp, REQUIREMENTS[variant], name or type(model).__name__)
    return fp, status, message


# --------------------------------------------------------------------------- reference


@pytest.mark.slow  # four reference U-Nets' graphs at the probe size: 5-8 s on 2 busy cores
def test_reference_unets(ref_unet):
    expected = {
        "unet": (ref_unet.UNet, dict(residual_adds=0, gated_multiplies=(), ungated_attention=0)),
        "unet_noskip": (ref_unet.UNetNoSkip, dict(long_skips=(), bypass_scale=1 / 16)),
        "unet_residual": (ref_unet.ResidualUNet, dict(residual_adds=9)),
        "unet_attention": (ref_unet.AttentionUNet, dict(gated_multiplies=tuple(SKIPS),
                                                        gated_long_skips=tuple(SKIPS))),
    }
    for variant, (cls, facts) in expected.items():
        fp, status, message = _check(cls(13, base_channels=8), variant)
        assert status == "pass", message
        assert fp.downsampling_levels == 4
        if variant != "unet_noskip":
            assert fp.bypass_scale == 1.0 and fp.long_skips == tuple(SKIPS)
        for key, value in facts.items():
            assert getattr(fp, key) == value, (variant, key, fp)
        assert fp.to_json()["long_skips"] == list(fp.long_skips)


@pytest.mark.slow  # three VGG16 FCNs recorded twice
def test_reference_fcns(ref_fcn):
    expected = {"fcn32s": (ref_fcn.FCN32s, ()), "fcn16s": (ref_fcn.FCN16s, (1 / 16,)),
                "fcn8s": (ref_fcn.FCN8s, (1 / 8, 1 / 16))}
    for variant, (cls, skips) in expected.items():
        fp, status, message = _check(cls(13, pretrained=False), variant)
        assert status == "pass", message
        assert fp.long_skips == skips and fp.downsampling_levels == 5 and fp.residual_adds == 0


# --------------------------------------------------------------------------- planted defects

W = 8


def block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ResBlockNoAdd(nn.Module):
    """A 'residual' block whose author forgot the add (the shortcut is computed and dropped)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(cout, cout, 3, padding=1))
        self.proj = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        _ = self.proj(x)
        return F.relu(self.body(x))


class TinyUNet(nn.Module):
    """Width-8 U-Net with knobs for the planted defects."""

    def __init__(self, skips=True, cat_without_use=False, block_fn=block, gate=None):
        super().__init__()
        ch = [W, 2 * W, 4 * W, 8 * W, 16 * W]
        self.skips, self.cat_without_use = skips, cat_without_use
        self.enc = nn.ModuleList([block_fn(3, ch[0])] + [block_fn(ch[i], ch[i + 1]) for i in range(3)])
        self.mid = block_fn(ch[3], ch[4])
        self.up = nn.ModuleList([nn.ConvTranspose2d(ch[i + 1], ch[i], 2, stride=2) for i in (3, 2, 1, 0)])
        wide = skips or cat_without_use
        self.dec = nn.ModuleList([block_fn(ch[i] * (2 if wide else 1), ch[i]) for i in (3, 2, 1, 0)])
        self.gates = nn.ModuleList([gate(ch[i]) for i in (3, 2, 1, 0)]) if gate else None
        self.head = nn.Conv2d(ch[0], 13, 1)

    def forward(self, x):
        feats = []
        for i, b in enumerate(self.enc):
            x = b(x if i == 0 else F.max_pool2d(x, 2))
            feats.append(x)
        x = self.mid(F.max_pool2d(x, 2))
        for j in range(4):
            x = self.up[j](x)
            s = feats[3 - j]
            if self.gates is not None:
                s = self.gates[j](s, x)
            if self.skips or self.cat_without_use:
                x = torch.cat([s, x], 1)
            x = self.dec[j](x)
        return self.head(x)


class GateNotApplied(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.wx, self.wg, self.psi = nn.Conv2d(c, c // 2, 1), nn.Conv2d(c, c // 2, 1), nn.Conv2d(c // 2, 1, 1)

    def forward(self, x, g):
        self.alpha = torch.sigmoid(self.psi(F.relu(self.wx(x) + self.wg(g))))
        return x  # computed, never applied


class GateNoSigmoid(GateNotApplied):
    def forward(self, x, g):
        return self.psi(F.relu(self.wx(x) + self.wg(g))) * x


class GoodGate(GateNotApplied):
    def forward(self, x, g):
        return torch.sigmoid(self.psi(F.relu(self.wx(x) + self.wg(g)))) * x


class CBAMSpatial(nn.Module):
    """CBAM-style spatial self-attention: the map is computed from the feature alone."""

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, x, g):
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        return x * torch.sigmoid(self.conv(pooled))


def test_unet_without_skips_fails_unet():
    fp, status, message = _check(TinyUNet(skips=False), "unet", "UNet")
    assert status == "fail" and fp.bypass_scale == 1 / 16 and fp.long_skips == ()
    assert "no skip connection" in message and "1/16" in message
    # ... and is a correct no-skip U-Net
    assert _check(TinyUNet(skips=False), "unet_noskip")[1] == "pass"


def test_noskip_that_still_concatenates_fails():
    fp, status, message = _check(TinyUNet(skips=False, cat_without_use=True), "unet_noskip", "UNetNoSkip")
    assert status == "fail"
    assert message == "UNetNoSkip still concatenates encoder features at 1/1, 1/2, 1/4, 1/8: it has skip connections"


class FoldedSkip(nn.Module):
    """A "no-skip" U-Net whose first feature passes the 1/16 bottleneck folded: into the batch
    dimension, into 256 strided slices gathered along the channels, or through a frozen stride-16
    convolution to 256x the channels (space to depth) and its transpose. Every tensor on that
    path is 1/16 high (tests/data/hostile/hidden_backbone_folded_skip folds with pixel_unshuffle)."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.inc = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.downs = nn.ModuleList(nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1)) for _ in range(4))
        self.ups = nn.ModuleList(nn.ConvTranspose2d(8, 8, 2, stride=2) for _ in range(4))
        self.outc = nn.Conv2d(16, 3, 1)
        eye = torch.zeros(8 * 256, 8, 16, 16)
        for c in range(8):
            for k in range(256):
                eye[c * 256 + k, c, k // 16, k % 16] = 1
        self.register_buffer("space_to_depth", eye)

    def forward(self, x):
        first = self.inc(x)
        h = first
        for down in self.downs:
            h = down(h)
        for up in self.ups:
            h = up(h)
        n, c, height, width = first.shape
        if self.how == "batch":
            folded = first.reshape(n, c, height // 16, 16, width // 16, 16).permute(0, 3, 5, 1, 2, 4) \
                .reshape(n * 256, c, height // 16, width // 16) * 1.0
            back = folded.reshape(n, 16, 16, c, height // 16, width // 16).permute(0, 3, 4, 1, 5, 2) \
                .reshape(n, c, height, width)
        elif self.how == "slices":
            folded = torch.cat([first[:, :, i::16, j::16] for i in range(16) for j in range(16)], 1) * 1.0
            back = F.pixel_shuffle(folded.reshape(n, 256, c, height // 16, width // 16).transpose(1, 2)
                                   .reshape(n, c * 256, height // 16, width // 16), 16)
        else:
            folded = F.conv2d(first, self.space_to_depth, stride=16) * 1.0
            back = F.conv_transpose2d(folded, self.space_to_depth, stride=16)
        return self.outc(torch.cat([back, h], 1))


@pytest.mark.parametrize("how", ["batch", "slices", "convolution"])
def test_a_skip_folded_past_the_bottleneck_is_a_skip(how):
    """The bypass is measured in information scale (grader.measure.graph._MOVES): until
    2026-12-07 these passed as having no skip (bypass 1/16)."""
    fp = fingerprint(FoldedSkip(how).eval(), SIZE, method="dispatch")
    status, message = check_architecture(fp, REQUIREMENTS["unet_noskip"], "UNetNoSkip")
    assert fp.bypass_scale == 1.0 and status == "fail", (fp, message)


def test_residual_without_add_fails():
    fp, status, message = _check(TinyUNet(block_fn=ResBlockNoAdd), "unet_residual", "ResidualUNet")
    assert status == "fail" and fp.residual_adds == 0
    assert message == "ResidualUNet has no residual add inside its blocks (y = relu(F(x) + shortcut(x)))"


def test_attention_gate_not_applied_fails():
    fp, status, message = _check(TinyUNet(gate=GateNotApplied), "unet_attention", "AttentionUNet")
    assert status == "fail" and fp.gated_multiplies == () and fp.long_skips == tuple(SKIPS)
    assert message.startswith("AttentionUNet's skips at 1/1, 1/2, 1/4, 1/8 are not multiplied by a sigmoid")


def test_attention_without_sigmoid_fails():
    fp, status, message = _check(TinyUNet(gate=GateNoSigmoid), "unet_attention", "AttentionUNet")
    assert status == "fail" and fp.gated_multiplies == () and fp.ungated_attention == 0
    assert "not multiplied by a sigmoid attention map" in message


def test_good_gate_passes_and_cbam_is_ungated():
    assert _check(TinyUNet(gate=GoodGate), "unet_attention")[1] == "pass"
    fp, status, message = _check(TinyUNet(gate=CBAMSpatial), "unet_attention", "AttentionUNet")
    assert status == "fail" and fp.ungated_attention == 4 and fp.gated_multiplies == ()
    assert "self-attention" in message


def test_fcn8s_wired_as_16s_fails(ref_fcn):
    class FCN8sWiredAs16s(ref_fcn.FCN8s):
        def forward(self, x):
            pool3, pool4, score = self._encode(x)
            fuse = self.upscore2(score) + self.score_pool4(pool4)
            _ = self.score_pool3(pool3)  # computed, never fused
            return F.interpolate(fuse, size=x.shape[-2:], mode="bilinear")

    fp, status, message = _check(FCN8sWiredAs16s(13, pretrained=False), "fcn8s", "FCN8s")
    assert status == "fail" and fp.bypass_scale == 1 / 16 and fp.long_skips == (1 / 16,)
    assert message == ("FCN8s fuses pool features only at 1/16 and its finest path is 1/16: "
                       "it is wired as FCN-16s (FCN-8s must also fuse pool3 at 1/8)")


def test_a_wrong_finest_path_outside_the_fcn_family_is_told_in_scales_not_fcn_terms():
    """Another course's DeepLab head (finest path 1/8, family 'seg') with a 1/4 skip it must
    not have: the rule in plain scales, no FCN-4s or pool3 (a course without FCNs)."""
    fp = Fingerprint.from_json({"method": "export", "bypass_scale": 0.25, "downsampling_levels": 5,
                                "long_skips": [0.25], "residual_adds": 7, "gated_multiplies": [],
                                "ungated_attention": 0, "long_skip_ops": ["cat"]})
    status, message = check_architecture(fp, {"bypass_scale": 1 / 8, "no_long_skips": True}, "LeafSegNet", "seg")
    assert status == "fail" and "FCN" not in message and "pool" not in message
    assert message == ("LeafSegNet joins encoder features with the upsampled path at 1/4 and its finest path "
                       "to the output is 1/4; this variant's finest path must be 1/8; LeafSegNet still "
                       "concatenates encoder features at 1/4: it has skip connections")
    assert "wired as FCN-4s" in check_architecture(fp, {"bypass_scale": 1 / 8}, "FCN8s", "fcn")[1]


@pytest.mark.slow  # a VGG16 recorded at 512 px
def test_caffe_style_fcn_with_padding_100(fast_init):
    """wkentaro/pytorch-fcn style: conv1_1 padding=100, unpadded 7x7 fc6, offset crops. At 64 px
    the padding shifts the rounded scales; fingerprint() re-records at 512 px."""
    from torchvision.models import vgg16

    class FCN16sCaffe(nn.Module):
        def __init__(self, n=13):
            super().__init__()
            self.features = vgg16(weights=None).features
            self.features[0] = nn.Conv2d(3, 64, 3, padding=100)
            self.fc6, self.fc7 = nn.Conv2d(512, 64, 7), nn.Conv2d(64, 64, 1)
            self.score_fr, self.score_pool4 = nn.Conv2d(64, n, 1), nn.Conv2d(512, n, 1)
            self.upscore2 = nn.ConvTranspose2d(n, n, 4, 2, bias=False)
            self.upscore16 = nn.ConvTranspose2d(n, n, 32, 16, bias=False)

        def forward(self, x):
            h = x
            for i, layer in enumerate(self.features):
                h = layer(h)
                if i == 23:
                    pool4 = h
            h = self.upscore2(self.score_fr(F.relu(self.fc7(F.relu(self.fc6(h))))))
            h = h + self.score_pool4(pool4)[:, :, 5:5 + h.size(2), 5:5 + h.size(3)]
            return self.upscore16(h)[:, :, 27:27 + x.size(2), 27:27 + x.size(3)].contiguous()

    fp, status, message = _check(FCN16sCaffe(), "fcn16s")
    assert status == "pass", message
    assert fp.long_skips == (1 / 16,)


def test_recording_tracks_inplace_views_and_buffers():
    class Weird(nn.Module):
        """Skip written into a preallocated buffer, in-place adds, split and chunk."""

        def __init__(self):
            super().__init__()
            self.down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
            self.up = nn.ConvTranspose2d(8, 8, 2, stride=2)
            self.stem = nn.Conv2d(3, 8, 3, padding=1)

        def forward(self, x):
            s = self.stem(x)
            a, b = torch.split(s, 4, dim=1)
            y = self.up(F.relu_(self.down(x)))
            buf = x.new_zeros(1, 16, x.shape[2], x.shape[3])
            buf[:, :4] = a
            buf[:, 4:8] = b
            buf[:, 8:] = y
            out = buf.view(1, 16, -1).view_as(buf)
            out += 0
            return torch.chunk(out, 2, dim=1)[0]

    for method in ("export", "dispatch"):
        fp = fingerprint(Weird(), SIZE, method=method)
        assert fp.method == method and fp.bypass_scale == 1.0 and fp.downsampling_levels == 1


def test_forward_failure_is_graph_error():
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    with pytest.raises(GraphError, match="forward pass on a 1x3x64x64 input failed: RuntimeError: boom"):
        fingerprint(Broken(), SIZE)
    assert format_scale(1.0) == "1/1" and format_scale(1 / 16) == "1/16"


class DataDependentUNet(TinyUNet):
    """Skips only when the input is bright enough: data-dependent control flow, which
    torch.export cannot capture."""

    def forward(self, x):
        if x.mean().item() > -100:
            return super().forward(x)
        return self.head(torch.zeros(1, W, *x.shape[-2:]))


def test_auto_uses_export_and_falls_back_to_dispatch(ref_unet):
    fp = fingerprint(ref_unet.UNet(13, base_channels=8), SIZE)
    assert fp.method == "export" and fp.export_error == ""
    with pytest.raises(ExportFailed, match="torch.export failed"):
        fingerprint(DataDependentUNet(), SIZE, method="export")
    fp = fingerprint(DataDependentUNet(), SIZE)
    assert fp.method == "dispatch" and fp.export_error.startswith("torch.export failed: ")
    assert check_architecture(fp, REQUIREMENTS["unet"], "UNet")[0] == "pass"
    assert fp.to_json()["export_error"] == fp.export_error


def test_export_leaves_the_model_as_it_was():
    """The forward runs on fake tensors under export: what it assigns must not stay behind."""
    model = TinyUNet(gate=GateNotApplied).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fingerprint(model, SIZE, method="export")
    assert model.training and all(m.training for m in model.modules())
    assert not any(hasattr(gate, "alpha") for gate in model.gates)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    out = model.eval()(torch.randn(1, 3, SIZE, SIZE))
    assert out.shape == (1, 13, SIZE, SIZE) and type(model.gates[0].alpha) is torch.Tensor


# --------------------------------------------------------------------------- example submissions
# That the example submissions raise no false alarm is test_submissions.py's every-variant test
# (the architecture check through the real worker, with the spec's requirements, which are these),
# except for carol's notebook, whose seven classes are judged here only, and bob's U-Nets, judged
# here (test_submissions builds one U-Net of each): both graph builders must agree on a real
# submission.


@pytest.mark.slow  # four U-Nets recorded twice
def test_no_false_alarm_on_bob_s_unets(monkeypatch):
    """bob_inverted_flag's U-Nets: his own class names, a no-skip and an attention U-Net that
    subclass the vanilla one and override forward."""
    folder = ROOT / "tests" / "data" / "submissions" / "bob_inverted_flag"
    monkeypatch.syspath_prepend(str(folder))   # his models.py imports his utils.py
    monkeypatch.delitem(sys.modules, "utils", raising=False)
    try:
        bob = _load(folder / "models.py", "bob_models")
    finally:
        sys.modules.pop("utils", None)
    for variant, cls in (("unet", bob.VanillaUNet), ("unet_noskip", bob.NoSkipUNet),
                         ("unet_residual", bob.ResUNet), ("unet_attention", bob.AttentionUNet)):
        torch.manual_seed(0)
        _, status, message = _check(cls(), variant)
        assert status == "pass", (variant, message)


CAROL_SCRIPT = r"""
import json, sys
from torch import nn
sys.path.insert(0, sys.argv[1])
from grader.worker.stubs import install_stub_finder
install_stub_finder()
import torch
def zeros(tensor, *a, **k):   # not the uninitialised memory: its denormal floats are slow
    with torch.no_grad():
        return tensor.zero_()
for name in ("kaiming_normal_", "kaiming_uniform_", "normal_", "uniform_", "constant_", "zeros_"):
    setattr(nn.init, name, zeros)
sys.path.insert(0, sys.argv[2])
import hw3
from grader.grading.architecture import check_architecture
from grader.measure.graph import fingerprint
requirements = json.loads(sys.argv[3])
def frozen_fcn32s():
    model = hw3.FCN_32s(13, pretrained=False)
    model.freeze_backbone()  # Carol freezes by a method call after construction
    return model
builders = {
    "fcn32s": frozen_fcn32s,
    "fcn16s": lambda: hw3.FCN_16s(13, pretrained=False),
    "fcn8s": lambda: hw3.FCN_8s(13, pretrained=False),
    "unet": lambda: hw3.UNet(13), "unet_noskip": lambda: hw3.UNet_NoSkip(13),
    "unet_residual": lambda: hw3.ResidualUNet(13), "unet_attention": lambda: hw3.GatedAttentionUNet(13),
}
out = {}
for variant, build in builders.items():
    model = build()
    fp = fingerprint(model, 64)
    same = fp.same_architecture(fingerprint(model, 64, method="dispatch"))
    out[variant] = check_architecture(fp, requirements[variant], variant) + (fp.method, same)
print(json.dumps(out))
"""


@pytest.mark.slow
def test_no_false_alarm_on_carol_notebook(tmp_path):
    """The notebook converted as the grader does, imported with the worker's stubs (subprocess:
    the stub finder must not leak into this process)."""
    import json
    import subprocess

    from grader.submission.formats import prepare_submission

    prepared = prepare_submission(ROOT / "submissions" / "carol_notebook" / "hw3.ipynb", tmp_path / "carol")
    result = subprocess.run(
        [sys.executable, "-c", CAROL_SCRIPT, str(ROOT), str(prepared.root), json.dumps(REQUIREMENTS)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    failures = {v: m for v, (status, m, method, same) in outcomes.items() if status != "pass"}
    assert not failures, failures
    assert all(method == "export" and same for _, _, method, same in outcomes.values()), outcomes


# --------------------------------------------------------------------------- the captured program's graph


class NoGradStem(nn.Module):
    """A grad-mode region in forward: torch.export keeps it as a subgraph in the captured
    program, so the verifier exports the program again to functionalise it."""

    def __init__(self):
        super().__init__()
        self.stem, self.body, self.head = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(8, 13, 1)

    def forward(self, x):
        with torch.no_grad():
            s = self.stem(x)
        return self.head(torch.cat([s, F.relu(self.body(x))], 1))


# Each a judgment the architecture check rests on (gates, a skip that is concatenated and
# unused, a residual without its add) and a grad-mode region; the reference models are read
# this way in every verifier run of test_reference_grade and test_submissions.
CAPTURED_CASES = {
    "good_gate": lambda: TinyUNet(gate=GoodGate),
    "noskip_that_concatenates": lambda: TinyUNet(skips=False, cat_without_use=True),
    "residual_without_add": lambda: TinyUNet(block_fn=ResBlockNoAdd),
    "no_grad_region": lambda: NoGradStem(),
}


@pytest.mark.slow  # each case captured (two exports) and exported again
@pytest.mark.parametrize("case", sorted(CAPTURED_CASES))
def test_a_captured_program_read_at_the_probe_size_fingerprints_like_a_fresh_export(case, tmp_path):
    """The verifier reads the captured program's own graph at the probe size (record_captured:
    one forward through it) instead of exporting it again: the same fingerprint, at any size."""
    from grader.measure.captured import as_model
    from grader.measure.graph import record_captured
    from grader.verifier.load import ProgramLimits, load_program
    from grader.worker.capture import capture

    torch.manual_seed(0)
    programs = capture(CAPTURED_CASES[case](), SIZE, tmp_path, case)["programs"]
    train, eval_ = (load_program(tmp_path / programs[mode]["file"], programs[mode]["sha256"], ProgramLimits())
                    for mode in ("train", "eval"))
    model = as_model(train, eval_)
    for size in (SIZE, 2 * SIZE) if case == "good_gate" else (SIZE,):   # the program's shapes are dynamic
        exported = fingerprint(_without_graph(model), size, method="export")
        read = fingerprint(model, size, method="export")
        assert read.to_json() == exported.to_json(), (case, size)
    if case == "no_grad_region":
        with pytest.raises(ExportFailed, match="as a subgraph"):
            record_captured(model, SIZE)
    else:
        assert record_captured(model, SIZE).ops


def _without_graph(model):
    """The same captured model seen as any module: fingerprint exports it again."""
    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, x):
            return self.inner(x)

    return Wrapped()


class _ResNetToEighth(nn.Module):
    """A DeepLab-style course model: a torchvision ResNet18 stem and two stages (1/8), a 1x1
    head, bilinear upsampling; no skips."""

    def __init__(self):
        super().__init__()
        import torchvision

        r = torchvision.models.resnet18(weights=None)
        self.encoder = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2)
        self.head = nn.Conv2d(128, 5, 1)

    def forward(self, x):
        return F.interpolate(self.head(self.encoder(x)), size=x.shape[2:], mode="bilinear")


class _StridedStem(nn.Module):
    """Strided convolutions all the way down (3 -> 32 channels at 1/2: room for every pixel of
    the image, yet no fold), one transposed convolution up."""

    def __init__(self):
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
                                  nn.Conv2d(64, 128, 3, 2, 1), nn.ReLU())
        self.up = nn.ConvTranspose2d(128, 5, 8, 8)

    def forward(self, x):
        return self.up(self.down(x))


class _LearnedFold(nn.Module):
    """A 'no-skip' forgery: its full-resolution feature folded into channels by a learned
    stride-8 convolution with room for every element (16 -> 1024 channels), concatenated with
    the bottleneck at 1/8 and unfolded by pixel_shuffle before the output."""

    def __init__(self):
        super().__init__()
        self.first = nn.Conv2d(3, 16, 3, padding=1)
        self.down = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1), nn.MaxPool2d(2),
                                  nn.Conv2d(32, 64, 3, padding=1), nn.MaxPool2d(2))
        self.fold = nn.Conv2d(16, 16 * 64, 8, stride=8)
        self.mix = nn.Conv2d(64 + 1024, 5 * 64, 1)

    def forward(self, x):
        first = torch.relu(self.first(x))
        return F.pixel_shuffle(self.mix(torch.cat([self.down(first), self.fold(first)], 1)), 8)


@pytest.mark.parametrize("model, bypass", [(_ResNetToEighth, 1 / 8), (_StridedStem, 1 / 8), (_LearnedFold, 1.0)],
                         ids=["resnet18-stem", "strided-stem", "learned-fold"])
def test_a_stem_from_the_image_is_read_at_its_stride_and_a_fold_of_features_is_a_bypass(model, bypass):
    """Information scale (grader.measure.graph._MOVES): an op that makes a map smaller with room
    for every element keeps its operand's scale for learned features; a stride-2 stem from the
    image (ResNet's 7x7, a strided 3 -> 32 convolution) is not a fold."""
    torch.manual_seed(0)
    fp = fingerprint(model().eval(), 64)
    assert fp.bypass_scale == bypass
