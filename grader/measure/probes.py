"""Measurements the worker takes on a built model, beyond the first forward pass.

Runs in the verifier on a captured program (grader.verifier) or, for a model that could not be
captured, in the worker (grader.worker). Each probe returns plain data: what was seen, never
a verdict; grader.grading.checks judges it in the grading process.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import torch
from torch import nn

from grader.measure.convolutions import backward

# VGG16's convolution weights (features) and fc6/fc7 as convolutions or linear layers:
# the tensors that make up "the backbone" of an FCN, whatever the student named them.
VGG16_CONV_SHAPES = {(64, 3, 3, 3), (64, 64, 3, 3), (128, 64, 3, 3), (128, 128, 3, 3), (256, 128, 3, 3),
                     (256, 256, 3, 3), (512, 256, 3, 3), (512, 512, 3, 3)}
VGG16_FC_SHAPES = {(4096, 512, 7, 7), (4096, 25088), (4096, 4096, 1, 1), (4096, 4096)}
BACKBONE_STEPS = 3
# The training probes' input size when the request names none. The grading side sends one per
# family (grader.spec.Assignment.probe_size: the smallest size the spec runs that family at),
# so a model that works at the course's sizes is never failed for the probe's.
PROBE_SIZE = 64


def shapes_at(model: nn.Module, to_logits, sizes: list[tuple[int, int, int]], device,
              channels: int = 3) -> list[dict[str, Any]]:
    """Forward passes in eval mode at (batch, height, width) sizes; output shape or error each."""
    seen = []
    model.eval()
    for batch, height, width in sizes:
        entry: dict[str, Any] = {"input_shape": [batch, channels, height, width]}
        try:
            with torch.no_grad():
                out = to_logits(model(torch.randn(batch, channels, height, width, device=device)))
            entry |= {"output_shape": list(out.shape), "finite": bool(torch.isfinite(out).all())}
        except Exception as exc:  # reported, judged by the grading process
            entry["error"] = f"{type(exc).__name__}: {exc}"[:300]
        seen.append(entry)
    return seen


def output_statistics(out: torch.Tensor) -> dict[str, float]:
    """Enough to tell logits from probabilities: range, and how close class sums are to 1."""
    out = out.detach().float()
    return {"min": float(out.min()), "max": float(out.max()),
            "sum_to_one": float((out.sum(dim=1) - 1).abs().mean()) if out.dim() == 4 else float("nan")}


# Ops that end a forward in probabilities, and ops whose outputs keep their inputs' range (a
# softmax upsampled, cropped or concatenated is still probabilities).
_NORMALISERS = {"sigmoid": "sigmoid", "sigmoid_": "sigmoid", "hardsigmoid": "sigmoid", "hardsigmoid_": "sigmoid",
                "_softmax": "softmax", "softmax": "softmax"}
_RANGE_KEEPING = {"view", "_unsafe_view", "reshape", "permute", "transpose", "t", "clone", "contiguous", "detach",
                  "alias", "slice", "select", "index", "cat", "stack", "expand", "squeeze", "unsqueeze", "flip",
                  "_to_copy", "to", "copy_", "upsample_bilinear2d", "upsample_nearest2d", "_upsample_bilinear2d_aa",
                  "upsample_bicubic2d", "_upsample_nearest_exact2d", "avg_pool2d", "adaptive_avg_pool2d",
                  "max_pool2d", "max_pool2d_with_indices", "constant_pad_nd", "split", "split_with_sizes",
                  "unbind", "narrow", "as_strided", "lift_fresh", "lift_fresh_copy"}


def output_normaliser(model: nn.Module, to_logits, size: int, device, channels: int = 3) -> str:
    """"sigmoid" or "softmax" when the eval-mode output is such an op's output (through ops that
    keep its range: upsampling, cropping, concatenation), else "". Outputs that merely lie in
    [0, 1] are no proof: a just-built 3-class head after a ReLU'd decoder can give 0.04..0.19."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    marked: dict[int, tuple[torch.Tensor, str]] = {}   # id -> (tensor kept alive, so ids stay unique; kind)

    class Follow(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            name = func.overloadpacket.__name__
            kind = _NORMALISERS.get(name)
            if kind is None and name in _RANGE_KEEPING:
                inputs = [t for t in tree_leaves((args, kwargs or {}))
                          if isinstance(t, torch.Tensor) and t.is_floating_point()]
                kinds = {marked[id(t)][1] if id(t) in marked else None for t in inputs}
                kind = kinds.pop() if len(kinds) == 1 else None
            if kind is not None:
                for t in tree_leaves(out):
                    if isinstance(t, torch.Tensor):
                        marked[id(t)] = (t, kind)
            return out

    model.eval()
    x = torch.randn(1, channels, size, size, generator=torch.Generator().manual_seed(3)).to(device)
    with torch.no_grad(), Follow():
        out = to_logits(model(x))
    return marked[id(out)][1] if id(out) in marked else ""


def eval_change(model: nn.Module, to_logits, size: int, device, channels: int = 3) -> float:
    """How much the eval-mode output changes between two calls on the same input (largest
    absolute difference; 0 for a deterministic model): dropout left on in eval mode
    (`F.dropout(x, p)` drops unless given `training=self.training`) makes it random."""
    model.eval()
    x = torch.randn(1, channels, size, size, generator=torch.Generator().manual_seed(2)).to(device)
    with torch.no_grad():
        first, second = to_logits(model(x)), to_logits(model(x))
    return float((first.float() - second.float()).abs().nan_to_num().max()) if first.numel() else 0.0


def gradients(model: nn.Module, to_logits, num_classes: int, device, size: int = PROBE_SIZE,
              channels: int = 3) -> dict[str, Any]:
    """One real cross-entropy backward in train mode: which trainable parameters got no
    gradient, a zero one, or a non-finite one; and which parameters form the head (the
    last parameterised layer to run)."""
    model.train()
    model.zero_grad(set_to_none=True)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, channels, size, size, generator=g).to(device)
    y = torch.randint(0, num_classes, (2, size, size), generator=g).to(device)
    with _call_order(model) as order:
        backward(nn.functional.cross_entropy(to_logits(model(x)), y), model)
    seen = _gradient_report(model, order)
    model.zero_grad(set_to_none=True)
    return seen


class _call_order:
    """`with _call_order(model) as order:` the names of the parameterised modules as they run."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.order = model, []

    def __enter__(self) -> list[str]:
        preset = getattr(self.model, "segrade_call_order", None)
        if preset is not None:   # a captured program: the graph's order (its submodules are never called)
            self.hooks = []
            self.order.extend(preset)
            return self.order
        self.hooks = [m.register_forward_hook(lambda mod, i, o, name=name: self.order.append(name))
                      for name, m in self.model.named_modules() if any(True for _ in m.parameters(recurse=False))]
        return self.order

    def __exit__(self, *exc) -> None:
        for hook in self.hooks:
            hook.remove()


def _gradient_report(model: nn.Module, order: list[str]) -> dict[str, Any]:
    """After a backward (gradients set to None before it): what each trainable parameter got."""
    none, zero, nonfinite = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.grad is None:
            none.append(name)
        elif not torch.isfinite(p.grad).all():
            nonfinite.append(name)
        elif not p.grad.any():
            zero.append(name)
    head = order[-1] if order else None
    head_params = [f"{head}.{n}" if head else n for n, _ in model.get_submodule(head).named_parameters(recurse=False)] \
        if head is not None else []
    return {"none": none, "zero": zero, "nonfinite": nonfinite, "head": head, "head_params": head_params}


# --------------------------------------------------------------------------- the backbone, by provenance

_VGG_BUILT: list[nn.Module] = []   # torchvision VGG instances made while recording (see vgg_recorder)
_RECORDING = [False]
_CONV_COUNT_KIND = {8: "VGG11", 10: "VGG13", 13: "VGG16", 16: "VGG19"}
VGG16_CONV_SEQUENCE = [(64, 3), (64, 64), (128, 64), (128, 128), (256, 128), (256, 256), (256, 256), (512, 256),
                       (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
VGG19_CONV_SEQUENCE = VGG16_CONV_SEQUENCE[:7] + [(256, 256)] + VGG16_CONV_SEQUENCE[7:10] + [(512, 512)] \
    + VGG16_CONV_SEQUENCE[10:] + [(512, 512)]


# The grader's mark on the VGG layers a constructor builds: the first FINGERPRINT_LENGTH values
# of each layer's weight are drawn from a generator seeded by (the build's seed, the layer's part
# name), with the spread torchvision's own initialisation gives that layer. The verifier, which
# never sees the student's VGG instance, recognises a layer copied from it (fc6/fc7 reshaped into
# convolutions) by those values, as it recognises ImageNet weights by theirs.
FINGERPRINT_LENGTH = 65536
_FINGERPRINT_SEED: list[int | None] = [None]
_BLOCK_WIDTH = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}


def fingerprint(part: str, seed: int) -> torch.Tensor:
    """The FINGERPRINT_LENGTH values that begin the weight of VGG part `part` ("conv3_2", "fc6")
    in a build seeded `seed` (float32, CPU). Conv parts get torchvision's Kaiming spread
    (fan_out, 3x3), fc parts its N(0, 0.01)."""
    if part.startswith("conv"):
        std = (2.0 / (_BLOCK_WIDTH[int(part[4])] * 9)) ** 0.5
    else:
        std = 0.01
    key = int.from_bytes(hashlib.sha256(f"segrade-vgg:{seed}:{part}".encode()).digest()[:8], "little") >> 1
    generator = torch.Generator().manual_seed(key)
    return torch.randn(FINGERPRINT_LENGTH, generator=generator) * std


def _mark(vgg: nn.Module, seed: int) -> None:
    """Write the fingerprint of `seed` into a freshly built VGG's layers (see fingerprint)."""
    _, parts = _vgg_parts(vgg)
    with torch.no_grad():
        for module in vgg.modules():
            part = parts.get(id(module))
            weight = getattr(module, "weight", None)
            if part is None or "BatchNorm" in part or part == "fc8" or not isinstance(weight, torch.Tensor):
                continue
            flat = weight.view(-1)
            n = min(flat.numel(), FINGERPRINT_LENGTH)
            flat[:n] = fingerprint(part, seed)[:n].to(flat.dtype)


def install_vgg_recorder() -> bool:
    """Wrap torchvision's VGG constructor (in the worker, before student code runs) so that the
    VGG instances a model's constructor makes are known: what the model took from one is its
    backbone, whatever the student named it; inside recording_vggs(seed) each is also marked
    with the grader's fingerprint (weights loaded into it afterwards, ImageNet's, replace the
    mark: those the verifier knows by value too). False when torchvision is missing."""
    try:
        from torchvision.models import vgg
    except ImportError:  # pragma: no cover - torchvision is a dependency
        return False
    if getattr(vgg.VGG.__init__, "__segrade_recorder__", False):
        return True
    original = vgg.VGG.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if _RECORDING[0]:
            _VGG_BUILT.append(self)
            if _FINGERPRINT_SEED[0] is not None:
                _mark(self, _FINGERPRINT_SEED[0])

    __init__.__segrade_recorder__ = True
    vgg.VGG.__init__ = __init__
    return True


class recording_vggs:
    """`with recording_vggs(seed) as built:` the VGG instances made inside, in order, each
    marked with the fingerprint of `seed` (none when seed is None)."""

    def __init__(self, seed: int | None = None):
        self.seed = seed

    def __enter__(self) -> list[nn.Module]:
        _VGG_BUILT.clear()
        _RECORDING[0] = True
        _FINGERPRINT_SEED[0] = self.seed
        return _VGG_BUILT

    def __exit__(self, *exc) -> None:
        _RECORDING[0] = False
        _FINGERPRINT_SEED[0] = None


def _vgg_parts(vgg: nn.Module) -> tuple[str, dict[int, str]]:
    """A VGG instance's kind ("VGG16", "VGG19-BN"...) and {id(module): part name} for its
    parameterised layers: conv1_1..conv5_3 (and their BatchNorm), fc6, fc7, fc8."""
    parts: dict[int, str] = {}
    block, index, convs, bn = 1, 0, 0, False
    last = ""
    for layer in getattr(vgg, "features", []):
        if isinstance(layer, nn.MaxPool2d):
            block, index = block + 1, 0
        elif isinstance(layer, nn.Conv2d):
            index += 1
            convs += 1
            last = f"conv{block}_{index}"
            parts[id(layer)] = last
        elif isinstance(layer, nn.modules.batchnorm._BatchNorm):
            parts[id(layer)] = f"{last} BatchNorm"
            bn = True
    linear = [m for m in getattr(vgg, "classifier", []) if isinstance(m, nn.Linear)]
    for name, layer in zip(("fc6", "fc7", "fc8"), linear):
        parts[id(layer)] = name
    kind = _CONV_COUNT_KIND.get(convs, f"VGG ({convs} convolutions)") + ("-BN" if bn else "")
    return kind, parts


def identify_backbone(model: nn.Module, vggs: list[nn.Module]) -> dict[str, Any]:
    """Which of the model's tensors are its VGG backbone, and how segrade knows:
    - "torchvision": layers taken from a torchvision VGG the constructor built (the same
      module objects), or copies of their weights (fc6/fc7 reshaped into convolutions);
    - "layer sequence": no torchvision VGG was built, but the convolutions follow VGG16's (or
      VGG19's) exact sequence of 13 (16) layers: a hand-written VGG; fc6/fc7 are not counted;
    - None: no VGG at all (a student's own encoder, however VGG-like its shapes).
    A student's own 7x7 512->4096 head is not fc6: it came from no VGG. Run right after
    building, before any training step moves the weights."""
    modules = list(model.named_modules())
    part_of: dict[int, str] = {}
    kinds: list[str] = []
    by_numel: dict[int, list[tuple[torch.Tensor, str]]] = {}
    for vgg in vggs:
        kind, parts = _vgg_parts(vgg)
        kinds.append(kind)
        part_of.update(parts)
        for m in vgg.modules():
            weight = getattr(m, "weight", None)
            if id(m) in parts and isinstance(weight, torch.Tensor) and weight.dim() > 1:
                by_numel.setdefault(weight.numel(), []).append((weight.detach(), parts[id(m)]))
    found: dict[str, str] = {}   # module name -> part
    used_kinds: set[str] = set()
    for name, module in modules:
        part = part_of.get(id(module))
        if part is None:
            weight = getattr(module, "weight", None)
            if isinstance(weight, torch.Tensor) and weight.dim() > 1 and weight.numel() in by_numel:
                w = weight.detach()
                if w.float().std() > 0:   # a copy of a VGG layer's weights (zeros and constants prove nothing)
                    part = next((p for t, p in by_numel[w.numel()] if torch.equal(t.reshape(-1), w.reshape(-1))), None)
        if part is not None:
            found[name] = part
    if found:
        for vgg in vggs:
            kind, parts = _vgg_parts(vgg)
            if any(id(m) in parts and parts[id(m)] in found.values() for m in vgg.modules()):
                used_kinds.add(kind)
        how = "torchvision"
    else:
        found, kind = _vgg_by_sequence(modules)
        how = "layer sequence" if found else None
        if kind:
            used_kinds.add(kind)
    tensors: dict[str, str] = {}
    for name, module in modules:
        if name in found:
            prefix = f"{name}." if name else ""
            for key in module.state_dict(keep_vars=True):
                if "." not in key:
                    tensors[prefix + key] = found[name]
    kind = " + ".join(sorted(used_kinds)) if used_kinds else None
    return {"kind": kind, "how": how, "tensors": tensors,
            "built": sorted(set(kinds)), "fc_from_vgg": any(p in ("fc6", "fc7") for p in found.values())}


def identify_loaded_weights(model: nn.Module, other: nn.Module) -> dict[str, Any] | None:
    """When ImageNet weights are supplied and no torchvision VGG was built: the layers whose
    weights are identical in two builds made with different seeds were loaded, not
    initialised (the model read the weights itself). None when there are none."""
    mine, theirs = model.state_dict(), other.state_dict()
    modules = list(model.named_modules())
    found: dict[str, str] = {}
    for name, module in modules:
        key = f"{name}.weight" if name else "weight"
        weight = mine.get(key)
        if weight is None or weight.dim() < 2 or key not in theirs or not weight.is_floating_point():
            continue
        if weight.float().std() > 0 and torch.equal(weight, theirs[key].to(weight.device)):
            found[name] = name
    if not found:
        return None
    sequence, kind = _vgg_by_sequence([(n, m) for n, m in modules if n in found or
                                       isinstance(m, nn.modules.batchnorm._BatchNorm)])
    tensors = {}
    for name, module in modules:
        if name in found or name in sequence:
            prefix = f"{name}." if name else ""
            for key in module.state_dict(keep_vars=True):
                if "." not in key:
                    tensors[prefix + key] = sequence.get(name, found.get(name, name))
    return {"kind": kind or "pretrained layers", "how": "loaded weights", "tensors": tensors, "built": [],
            "fc_from_vgg": False}


def _vgg_by_sequence(modules: list[tuple[str, nn.Module]]) -> tuple[dict[str, str], str | None]:
    """A hand-written VGG16/19: convolutions whose shapes follow its sequence exactly."""
    convs = [(name, m) for name, m in modules if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    shapes = [(m.out_channels, m.in_channels) for _, m in convs]
    for kind, sequence, blocks in (("VGG19", VGG19_CONV_SEQUENCE, (2, 2, 4, 4, 4)),
                                   ("VGG16", VGG16_CONV_SEQUENCE, (2, 2, 3, 3, 3))):
        n = len(sequence)
        for start in range(len(shapes) - n + 1):
            if shapes[start:start + n] == sequence:
                names = [f"conv{b + 1}_{k + 1}" for b, count in enumerate(blocks) for k in range(count)]
                found = {name: part for (name, _), part in zip(convs[start:start + n], names)}
                # BatchNorm right after one of those convolutions (a hand-written vgg16_bn)
                previous = None
                for name, m in modules:
                    if isinstance(m, nn.modules.batchnorm._BatchNorm) and previous in found:
                        found[name] = f"{found[previous]} BatchNorm"
                    if isinstance(m, (nn.Conv2d, nn.modules.batchnorm._BatchNorm, nn.Linear)):
                        previous = name
                return found, kind
    return {}, None


def backbone_tensors(model: nn.Module) -> list[str]:
    """State-dict names of the VGG16 part: VGG-shaped convolutions and fc6/fc7, and any
    BatchNorm right after such a convolution (vgg16_bn), statistics included."""
    names: list[str] = []
    previous_was_backbone = False
    for module_name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        is_backbone = isinstance(module, (nn.Conv2d, nn.Linear)) and weight is not None and (
            tuple(weight.shape) in VGG16_CONV_SHAPES | VGG16_FC_SHAPES)
        is_bn = isinstance(module, nn.modules.batchnorm._BatchNorm)
        if is_backbone or (is_bn and previous_was_backbone):
            prefix = f"{module_name}." if module_name else ""
            names += [prefix + n for n, _ in module.state_dict().items()]
        if not is_bn:
            previous_was_backbone = is_backbone
    return names


def backbone_training(model: nn.Module, num_classes: int, device,
                      identified: dict[str, Any] | None = None,
                      size: int = PROBE_SIZE, channels: int = 3) -> tuple[dict[str, Any], dict[str, Any]]:
    """A few real steps of the grader's training loop; which tensors changed. The backbone is
    what `identify_backbone` found (by provenance); without it, VGG16-shaped layers. Also
    returns what `gradients` reports, taken from the first step's backward (for a VGG16 FCN
    one more forward and backward of its own costs a second on a CPU)."""
    from torch.utils.data import TensorDataset

    from grader.measure.train import TrainConfig, train

    parts = dict((identified or {}).get("tensors") or {}) if identified is not None else {}
    backbone = set(parts) if identified is not None else set(backbone_tensors(model))
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randn(2 * BACKBONE_STEPS, channels, size, size, generator=g),
                         torch.randint(0, num_classes, (2 * BACKBONE_STEPS, size, size), generator=g))
    started = time.perf_counter()
    first: dict[str, Any] = {}
    with _call_order(model) as order:
        def on_backward(step: int) -> None:
            if step == 1:
                first.update(_gradient_report(model, list(order)))

        train(LogitsOnly(model), data, TrainConfig(steps=BACKBONE_STEPS, batch_size=2, lr=1e-3), device,
              on_backward=on_backward)
    after = model.state_dict()
    changed = [k for k, v in before.items() if not torch.equal(v, after[k].detach().to(v.device))]
    return {"backbone_tensors": len(backbone), "steps": BACKBONE_STEPS,
            "backbone": {k: v for k, v in (identified or {}).items() if k not in ("tensors", "vgg_shaped")} or None,
            # no backbone by provenance, yet VGG16-shaped layers: an encoder of the student's own
            # (a captured program's layers are no nn.Conv2d: the verifier counts its used weights)
            "vgg_shaped": (identified["vgg_shaped"] if "vgg_shaped" in identified else len(backbone_tensors(model)))
            if identified is not None and not backbone else 0,
            "changed_parts": {k: parts[k] for k in changed if k in parts},
            "backbone_changed": [k for k in changed if k in backbone],
            # the backbone's tensors by name: the standardised training is checked against them too
            "backbone_names": sorted(backbone),
            "head_changed": [k for k in changed if k not in backbone],
            "seconds": round(time.perf_counter() - started, 3)}, first


class LogitsOnly(nn.Module):
    """Lets the training loop train models whose forward returns a dict or tuple."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        from grader.measure.logits import to_logits

        return to_logits(self.model(x))


def figures(model: nn.Module, to_logits, size: int, device, channels: int = 3) -> dict[str, Any]:
    """FLOPs (torch.utils.flop_counter) and eval latency at the family's size, batch 1."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    x = torch.randn(1, channels, size, size, device=device)
    with torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            to_logits(model(x))
        started = time.perf_counter()  # the counted pass warmed it up
        to_logits(model(x))
        seconds = time.perf_counter() - started
    return {"flops": int(counter.get_total_flops()), "latency_ms": round(1000 * seconds, 1)}
