"""The grader's large convolutions (grader.measure.convolutions): on an AVX2 CPU, the forward
and the gradients of convolutions with large weights are one matrix product each, equal to
torch's up to rounding; any other large convolution's backward takes PyTorch's kernels; small
ones, and other CPUs, are untouched. The threshold is lowered here so that small layers count
as large."""

import pytest
import torch
import torch.nn.functional as F

from grader.measure import convolutions


def _run(conv, x, target, how, forward=None):
    """Output, input gradient and parameter gradients of one loss through `conv`."""
    conv.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    with forward(conv) if forward else torch.enable_grad():
        out = conv(x)
    how(F.cross_entropy(out, target), conv)
    return [out.detach(), x.grad, *(p.grad for p in conv.parameters())]


def _plain(loss, model):
    loss.backward()


def _close(got, expected):
    return all(torch.allclose(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max())) for a, b in zip(got, expected))


def _equal(got, expected):
    return all(torch.equal(a, b) for a, b in zip(got, expected))


@pytest.fixture
def large(monkeypatch):
    """Every convolution counts as large, on a CPU where the product is taken."""
    monkeypatch.setattr(convolutions, "SLOW_ONEDNN", True)
    monkeypatch.setattr(convolutions, "LARGE_WEIGHTS", 1)


# fc6 on the smoke sizes' 2x2 and 3x3 maps and the assignment's 7x7, fc7 (1x1), a strided
# padded convolution on an odd, non-square map, and one without a bias.
LAYERS = [
    ((2, 16, 3, 3), dict(in_channels=16, out_channels=13, kernel_size=7, padding=3)),
    ((3, 16, 2, 2), dict(in_channels=16, out_channels=13, kernel_size=7, padding=3)),
    ((2, 16, 7, 7), dict(in_channels=16, out_channels=13, kernel_size=7, padding=3)),
    ((2, 32, 3, 3), dict(in_channels=32, out_channels=13, kernel_size=1)),
    ((2, 8, 9, 6), dict(in_channels=8, out_channels=13, kernel_size=3, stride=2, padding=1)),
    ((2, 8, 5, 5), dict(in_channels=8, out_channels=13, kernel_size=(3, 1), padding=(1, 0), bias=False)),
]


@pytest.mark.parametrize("shape, layer", LAYERS, ids=["7x7-3x3", "7x7-2x2", "7x7-7x7", "1x1", "strided", "no-bias"])
def test_a_large_convolution_is_one_matrix_product_forward_and_backward(large, shape, layer):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(**layer)
    x = torch.randn(*shape)
    target = torch.randint(0, 13, (shape[0], *conv(x).shape[2:]))
    expected = _run(conv, x, target, _plain)
    got = _run(conv, x, target, convolutions.backward, convolutions.large_convolutions)
    assert _close(got, expected)
    assert torch.backends.mkldnn.enabled


def test_the_product_is_what_runs(large, monkeypatch):
    """Not torch's kernels by another route: the product's own functions are called."""
    calls = []
    for name in ("_forward", "_backward"):
        real = getattr(convolutions, name)
        monkeypatch.setattr(convolutions, name, lambda *a, _real=real, _name=name: calls.append(_name) or _real(*a))
    conv = torch.nn.Conv2d(16, 13, 7, padding=3)
    x = torch.randn(2, 16, 3, 3)
    _run(conv, x, torch.zeros(2, 3, 3, dtype=torch.long), convolutions.backward, convolutions.large_convolutions)
    assert calls == ["_forward", "_backward"]


def test_a_captured_program_s_large_convolutions_take_the_product_too(large):
    """The verifier trains and predicts with the program torch.export captured."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(16, 13, 7, padding=3))
    x = torch.randn(2, 16, 3, 3)
    program = torch.export.export(model, (x,)).module()
    target = torch.randint(0, 13, (2, 3, 3))
    expected = _run(program, x, target, _plain)
    got = _run(program, x, target, convolutions.backward, convolutions.large_convolutions)
    assert _close(got, expected) and not _equal(got, expected)


def test_other_large_convolutions_keep_torch_s_forward_and_take_pytorch_s_gradients(large, monkeypatch):
    """Grouped or dilated ones, or one whose unfolded input would be too large."""
    if not torch.backends.mkldnn.is_available():
        pytest.skip("torch was built without oneDNN")

    def native(loss, model):
        torch.backends.mkldnn.enabled = False
        try:
            loss.backward()
        finally:
            torch.backends.mkldnn.enabled = True

    torch.manual_seed(0)
    x = torch.randn(2, 16, 6, 6)
    target = torch.zeros(2, 6, 6, dtype=torch.long)
    for conv in (torch.nn.Conv2d(16, 16, 3, padding=1, groups=4), torch.nn.Conv2d(16, 16, 3, padding=2, dilation=2)):
        forward_plain = _run(conv, x, target, _plain)[0]
        got = _run(conv, x, target, convolutions.backward, convolutions.large_convolutions)
        assert torch.equal(got[0], forward_plain)
        assert _equal(got, _run(conv, x, target, native))
    monkeypatch.setattr(convolutions, "UNFOLDED_LIMIT", 10)
    conv = torch.nn.Conv2d(16, 16, 3, padding=1)
    got = _run(conv, x, target, convolutions.backward, convolutions.large_convolutions)
    assert _equal(got, _run(conv, x, target, native))


def test_smaller_convolutions_and_other_cpus_are_untouched(monkeypatch):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(16, 13, 7, padding=3)
    x = torch.randn(2, 16, 3, 3)
    target = torch.zeros(2, 3, 3, dtype=torch.long)
    plain = _run(conv, x, target, _plain)
    monkeypatch.setattr(convolutions, "SLOW_ONEDNN", True)
    monkeypatch.setattr(convolutions, "LARGE_WEIGHTS", conv.weight.numel() + 1)
    assert _equal(_run(conv, x, target, convolutions.backward, convolutions.large_convolutions), plain)
    monkeypatch.setattr(convolutions, "SLOW_ONEDNN", False)
    monkeypatch.setattr(convolutions, "LARGE_WEIGHTS", 1)
    assert _equal(_run(conv, x, target, convolutions.backward, convolutions.large_convolutions), plain)
