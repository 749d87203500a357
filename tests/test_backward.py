"""The grader's backward pass (grader.measure.backward): on a CPU where oneDNN's backward of
large convolutions is slow, those take PyTorch's kernels; the rest is untouched."""

import pytest
import torch
import torch.nn.functional as F

from grader.measure import backward as grader_backward


def _gradients(conv, x, how):
    conv.zero_grad(set_to_none=True)
    how(F.cross_entropy(conv(x), torch.zeros(x.shape[0], *x.shape[2:], dtype=torch.long)), conv)
    return conv.weight.grad.clone(), conv.bias.grad.clone()


def _plain(loss, model):
    loss.backward()


def _native(loss, model):
    torch.backends.mkldnn.enabled = False
    try:
        loss.backward()
    finally:
        torch.backends.mkldnn.enabled = True


@pytest.fixture
def layer():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(64, 13, 7, padding=3)   # 41k weights: "large" below a lowered threshold
    x = torch.randn(2, 64, 3, 3)
    if not torch.backends.mkldnn.is_available():
        pytest.skip("torch was built without oneDNN")
    if all(torch.equal(a, b) for a, b in zip(_gradients(conv, x, _plain), _gradients(conv, x, _native))):
        pytest.skip("oneDNN and PyTorch's kernels give the same bits here: nothing to tell apart")
    return conv, x


def test_large_convolutions_take_pytorchs_kernels_where_onednn_is_slow(layer, monkeypatch):
    conv, x = layer
    monkeypatch.setattr(grader_backward, "SLOW_ONEDNN_BACKWARD", True)
    monkeypatch.setattr(grader_backward, "LARGE_WEIGHTS", conv.weight.numel())
    got = _gradients(conv, x, grader_backward.backward)
    assert all(torch.equal(a, b) for a, b in zip(got, _gradients(conv, x, _native)))
    assert torch.backends.mkldnn.enabled   # switched back on after the layer
    plain = _gradients(conv, x, _plain)
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(got, plain))   # rounding only


def test_smaller_convolutions_and_other_cpus_keep_onednn(layer, monkeypatch):
    conv, x = layer
    plain = _gradients(conv, x, _plain)
    monkeypatch.setattr(grader_backward, "SLOW_ONEDNN_BACKWARD", True)
    monkeypatch.setattr(grader_backward, "LARGE_WEIGHTS", conv.weight.numel() + 1)
    assert all(torch.equal(a, b) for a, b in zip(_gradients(conv, x, grader_backward.backward), plain))
    monkeypatch.setattr(grader_backward, "SLOW_ONEDNN_BACKWARD", False)
    monkeypatch.setattr(grader_backward, "LARGE_WEIGHTS", 1)
    assert all(torch.equal(a, b) for a, b in zip(_gradients(conv, x, grader_backward.backward), plain))

