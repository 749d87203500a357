"""Which of a captured program's tensors are its VGG backbone, decided from the program alone.

- "ImageNet weights": a weight equal (to a relative error of 1e-3) to a layer of the ImageNet
  VGG16 that the verifier reads itself from the grader's weights file (fc6/fc7 reshaped into
  convolutions count); the strongest evidence, and it cannot be faked without the weights;
- "torchvision": a weight that carries the grader's fingerprint (the worker marks every VGG a
  constructor builds, grader.measure.probes.fingerprint: fc6/fc7 copied from it are known by
  value), or a layer the graph's module stack places inside a torchvision VGG;
- "layer sequence": the program's 3x3 convolutions follow VGG16's (or VGG19's) exact sequence.
Each of these is read twice: from the parameters as the program names them (`features.0.weight`),
and from the weights its convolutions and linear maps actually use, whatever the tensors they
are computed from are called or shaped (`_used_weights`): a VGG16 copied into parameters called
`kernel`, stored transposed or as a sum of two tensors is the backbone all the same, and every
tensor its used weights are computed from is a backbone tensor
(tests/data/hostile/hidden_backbone_folded_skip; until 2026-12-07 only the names were read, and
such a copy beside a frozen decoy layer passed frozen_backbone while it trained). In another
layout the fingerprint is matched exactly, so a copy both re-laid-out and perturbed is known by
value only against ImageNet's weights; by its layer sequence it is known either way.
Run on the program as loaded, before any measurement trains it. The result has the form of
grader.measure.probes.identify_backbone's, which backbone_training and the checks read.
The fingerprint is written in the student's process: code that tampers with the worker can
remove it, and copied fc6/fc7 then count as the student's own head in a random-init run
(docs/security.md); with ImageNet weights the verifier's own file decides."""

from __future__ import annotations

from typing import Any

import torch

from grader.measure.probes import (FINGERPRINT_LENGTH, VGG16_CONV_SEQUENCE, VGG16_CONV_SHAPES, VGG16_FC_SHAPES,
                                   VGG19_CONV_SEQUENCE, fingerprint)

_VGG16_CONVS = [f"conv{b + 1}_{k + 1}" for b, n in enumerate((2, 2, 3, 3, 3)) for k in range(n)]
_VGG19_CONVS = [f"conv{b + 1}_{k + 1}" for b, n in enumerate((2, 2, 4, 4, 4)) for k in range(n)]
_CONV_COUNT_KIND = {8: "VGG11", 10: "VGG13", 13: "VGG16", 16: "VGG19"}


def imagenet_vgg16(path: str | None) -> dict[str, tuple[torch.Tensor, str]] | None:
    """The grader's ImageNet VGG16 (torchvision's layout, read with weights_only=True):
    {state name: (weight, part)} for conv1_1..conv5_3, fc6, fc7. None without a file."""
    if not path:
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    convs = sorted((k for k in state if k.startswith("features.") and k.endswith(".weight")),
                   key=lambda k: int(k.split(".")[1]))
    parts = dict(zip(convs, _VGG16_CONVS))
    parts |= {"classifier.0.weight": "fc6", "classifier.3.weight": "fc7"}
    return {k: (state[k], part) for k, part in parts.items() if k in state}


def _layers(program) -> list[tuple[str, str, bool]]:
    """(module path, leaf module type, ran inside a torchvision VGG) per parameterised
    module, in the order the graph first uses it."""
    inputs = {spec.arg.name: spec.target for spec in program.graph_signature.input_specs
              if spec.target is not None and spec.kind.name in ("PARAMETER", "BUFFER")}
    seen: dict[str, tuple[str, str, bool]] = {}
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        stack = list((node.meta.get("nn_module_stack") or {}).values())
        leaf = str(stack[-1][1]) if stack else ""
        in_vgg = any("torchvision.models.vgg" in str(entry[1]) for entry in stack)
        for arg in node.all_input_nodes:
            target = inputs.get(arg.name)
            if target is not None:
                path = target.rpartition(".")[0]
                seen.setdefault(path, (path, leaf, in_vgg))
    return list(seen.values())


def _by_value(weights: list[tuple[str, torch.Tensor | None]],
              imagenet: dict[str, tuple[torch.Tensor, str]] | None,
              seed: int | None) -> tuple[dict[str, str], bool]:
    """{module path: VGG part} for the weights that are ImageNet's (within a relative error of
    1e-3: noise added to a pretrained layer does not make it the student's own) or carry the
    grader's fingerprint of `seed` (grader.measure.probes.fingerprint: a layer copied from the VGG
    the constructor built), and whether any was ImageNet's."""
    by_numel: dict[int, list[tuple[torch.Tensor, str]]] = {}
    for w, part in (imagenet or {}).values():
        by_numel.setdefault(w.numel(), []).append((w.reshape(-1).float(), part))
    marks = {part: fingerprint(part, seed) for part in _VGG19_CONVS + ["fc6", "fc7"]} if seed is not None else {}
    found: dict[str, str] = {}
    pretrained = False
    for path, w in weights:
        if w is None or w.dim() < 2 or not w.is_floating_point():
            continue
        flat = w.detach().reshape(-1).float().cpu()
        for t, part in by_numel.get(flat.numel(), ()):
            if torch.linalg.vector_norm(flat - t) <= 1e-3 * torch.linalg.vector_norm(t):
                found[path], pretrained = part, True
                break
        else:
            n = min(flat.numel(), FINGERPRINT_LENGTH)
            part = next((p for p, mark in marks.items() if torch.equal(flat[:n], mark[:n])), None)
            if part is not None and n >= 1000:   # a thousand random values: no coincidence
                found[path] = part
    return found, pretrained


# How many values each VGG part's weight holds (VGG19's convolution names include VGG16's).
_PART_NUMEL = {part: o * i * 9 for part, (o, i) in zip(_VGG19_CONVS, VGG19_CONV_SEQUENCE)} \
    | {"fc6": 4096 * 512 * 7 * 7, "fc7": 4096 * 4096}

# Operators whose operands computed from the program's state alone are a layer's weights.
_WEIGHT_OPS = frozenset({"conv1d", "conv2d", "conv3d", "convolution", "_convolution", "conv_transpose1d",
                         "conv_transpose2d", "conv_transpose3d", "linear", "addmm", "mm", "bmm", "matmul",
                         "einsum", "baddbmm", "tensordot"})


def _used_weights(program, model) -> list[tuple[torch.Tensor, set[str], bool]]:
    """Per call of a convolution or linear map, in graph order: the weight it uses (its first
    operand computed from the program's state alone, not from the input: a parameter, or
    what the graph computes from parameters, buffers and constants: a permute, a sum, a
    scaling), the state names every such operand of the call is computed from (weight and
    bias), and whether the call is a convolution. Computing a weight needs no input and no
    activation: only the nodes it depends on run."""
    from torch.fx import Node
    from torch.fx.node import map_arg

    from grader.measure.captured import program_tensors

    named: dict[str, str] = {}      # placeholder -> state name
    values: dict[Node, Any] = {}    # static node -> its value
    for placeholder, (name, kind, tensor) in program_tensors(program, model).items():
        values[placeholder] = tensor.detach()
        if kind != "CONSTANT_TENSOR":
            named[placeholder] = name
    static: dict[Node, set[str]] = {}   # static node -> the state names it is computed from
    results: dict[Node, Any] = {}
    used: list[tuple[torch.Tensor, set[str], bool]] = []
    with torch.no_grad():
        for node in program.graph.nodes:
            if node.op == "placeholder":
                if node.name in values:
                    static[node] = {named[node.name]} if node.name in named else set()
                    results[node] = values[node.name]
                continue
            if node.op != "call_function":
                continue
            inputs = node.all_input_nodes
            packet = getattr(getattr(node.target, "overloadpacket", None), "__name__", None)
            if inputs and all(n in static for n in inputs) and packet not in _WEIGHT_OPS:
                try:
                    results[node] = node.target(*map_arg(node.args, results.get), **map_arg(node.kwargs, results.get))
                except Exception:   # not computable here (a size from the input): not a weight
                    continue
                static[node] = set().union(*(static[n] for n in inputs))
                continue
            if packet not in _WEIGHT_OPS:
                continue
            operands = [n for n in node.args if isinstance(n, Node) and n in static]
            weight = next((results[n] for n in operands if isinstance(results.get(n), torch.Tensor)
                           and results[n].dim() >= 2), None)
            if weight is not None:
                used.append((weight, set().union(*(static[n] for n in operands)), packet.startswith("conv")
                             or packet == "_convolution"))
    return used


# Weights compared in another layout are sorted; past this many values (fc6 has 103M) they are
# compared in their own layout only, so that the sort's memory (values and indices, 12 bytes
# a value) cannot fail the identification, which would leave the backbone unknown.
MAX_SORTED_VALUES = 20_000_000


def _sorted(flat: torch.Tensor) -> torch.Tensor | None:
    if flat.numel() > MAX_SORTED_VALUES:
        return None
    try:
        return torch.sort(flat).values
    except (MemoryError, RuntimeError):
        return None


def _sorted_close(flat_sorted: torch.Tensor, reference_sorted: torch.Tensor, reference_norm: torch.Tensor) -> bool:
    """The same values in another order (a weight stored transposed or permuted), to 1e-3."""
    return bool(torch.linalg.vector_norm(flat_sorted - reference_sorted) <= 1e-3 * reference_norm)


def _rarest(mark: torch.Tensor, count: int = 3) -> list[torch.Tensor]:
    """The `count` marked values farthest out in their spread. The mark has the spread of the
    layer's own initialisation, so a value near the middle turns up by chance in a layer of
    millions (an exact float32 match: about one in a random fc7); one in the far tail does not,
    and looking for it is one pass over the weight, far cheaper than the sort it spares."""
    return [mark[i] for i in torch.topk(mark.abs(), min(count, mark.numel())).indices.tolist()]


def _by_used_value(used: list[tuple[torch.Tensor, set[str], bool]],
                   imagenet: dict[str, tuple[torch.Tensor, str]] | None,
                   seed: int | None, known: frozenset[str] = frozenset()) -> tuple[dict[str, str], bool]:
    """{state name: VGG part} for the tensors the used weights (_used_weights) are computed
    from, where a used weight is ImageNet's or carries the fingerprint of `seed` (as _by_value),
    in its own layout or in any other (sorted values; the fingerprint's 65,536 values all present).
    A used weight computed only from `known` tensors (already placed by name) is not looked at:
    what it would find adds nothing, and the look costs a pass over the weight per VGG part."""
    by_numel: dict[int, list[tuple[torch.Tensor, str]]] = {}
    for w, part in (imagenet or {}).values():
        by_numel.setdefault(w.numel(), []).append((w.reshape(-1).float(), part))
    marks = {part: fingerprint(part, seed) for part in _VGG19_CONVS + ["fc6", "fc7"]} if seed is not None else {}
    ordered: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}
    found: dict[str, str] = {}
    pretrained = False
    for weight, names, _ in used:
        if not names or names <= known or not weight.is_floating_point():
            continue
        flat = weight.detach().reshape(-1).float().cpu()
        found_part, flat_sorted = None, None
        for t, part in by_numel.get(flat.numel(), ()):
            if torch.linalg.vector_norm(flat - t) <= 1e-3 * torch.linalg.vector_norm(t):
                found_part = part
            elif abs(torch.linalg.vector_norm(flat) - torch.linalg.vector_norm(t)) <= 1e-3 * torch.linalg.vector_norm(t):
                # Norms that agree (cheap, and necessary): then the values themselves, in any order.
                key = (flat.numel(), part)
                if key not in ordered:
                    ordered[key] = (_sorted(t), torch.linalg.vector_norm(t))
                if flat_sorted is None:
                    flat_sorted = _sorted(flat)
                if flat_sorted is not None and ordered[key][0] is not None and _sorted_close(flat_sorted, *ordered[key]):
                    found_part = part
            if found_part:
                pretrained = True
                break
        n = min(flat.numel(), FINGERPRINT_LENGTH)
        if found_part is None and n >= 1000:   # a thousand random values: no coincidence
            # In its layout, to 1e-3 (a weight recomputed as (w - r) + r is not bit-identical).
            found_part = next((p for p, mark in marks.items() if torch.linalg.vector_norm(flat[:n] - mark[:n])
                               <= 1e-3 * torch.linalg.vector_norm(mark[:n])), None)
            # In another layout: a layer of the part's size holding every one of the part's marked
            # values (exactly: near values prove nothing among millions).
            candidates = [(p, mark[:n]) for p, mark in marks.items() if _PART_NUMEL.get(p) == flat.numel()
                          and all(bool((flat == v).any()) for v in _rarest(mark[:n]))]
            values = (flat_sorted if flat_sorted is not None else _sorted(flat)) \
                if found_part is None and candidates else None
            for p, mark in candidates if values is not None else ():
                at = torch.searchsorted(values, mark[:64]).clamp(max=values.numel() - 1)
                if torch.equal(values[at], mark[:64]):   # a cheap look first, then all of them
                    at = torch.searchsorted(values, mark).clamp(max=values.numel() - 1)
                    if torch.equal(values[at], mark):
                        found_part = p
                        break
        if found_part is not None:
            for name in names:
                found.setdefault(name, found_part)
    return found, pretrained


def _used_sequence(used: list[tuple[torch.Tensor, set[str], bool]]) -> tuple[dict[str, str], str | None]:
    """{state name: VGG part} for the convolutions whose used 3x3 weights follow VGG16's (or
    VGG19's) exact sequence, whatever their tensors are called."""
    convs = [(w, names) for w, names, is_conv in used if is_conv and w.dim() == 4 and tuple(w.shape[2:]) == (3, 3)]
    shapes = [(int(w.shape[0]), int(w.shape[1])) for w, _ in convs]
    for name, sequence, parts in (("VGG19", VGG19_CONV_SEQUENCE, _VGG19_CONVS),
                                  ("VGG16", VGG16_CONV_SEQUENCE, _VGG16_CONVS)):
        n = len(sequence)
        start = next((s for s in range(len(shapes) - n + 1) if shapes[s:s + n] == sequence), None)
        if start is not None:
            return {state: part for (_, names), part in zip(convs[start:start + n], parts) for state in names}, name
    return {}, None


def identify(program, model, imagenet: dict[str, tuple[torch.Tensor, str]] | None,
             seed: int | None = None) -> dict[str, Any]:
    """The backbone of a captured program: layers whose values are ImageNet's or carry the
    grader's fingerprint of the build's `seed` (fc6/fc7 copied into convolutions included),
    layers that ran inside a torchvision VGG, else a VGG16/19 layer sequence."""
    params = dict(model.named_parameters())
    state = model.state_dict(keep_vars=True)
    layers = _layers(program)
    weights = [(path, params.get(f"{path}.weight" if path else "weight")) for path, _, _ in layers]
    found, pretrained = _by_value(weights, imagenet, seed)
    how = "ImageNet weights" if pretrained else "torchvision" if found else None
    vgg_convs = [(path, w) for (path, leaf, in_vgg), (_, w) in zip(layers, weights)
                 if in_vgg and w is not None and w.dim() == 4 and tuple(w.shape[2:]) == (3, 3)]
    if vgg_convs:   # layers that ran inside a torchvision VGG count whatever their values
        names = _VGG19_CONVS if len(vgg_convs) == 16 else _VGG16_CONVS
        for i, (path, _) in enumerate(vgg_convs):
            found.setdefault(path, names[i] if i < len(names) else f"conv{i + 1}")
        fcs = [(path, w) for (path, leaf, in_vgg), (_, w) in zip(layers, weights)
               if in_vgg and w is not None and tuple(w.shape) in VGG16_FC_SHAPES]
        for (path, _), name in zip(fcs, ("fc6", "fc7")):
            found.setdefault(path, name)
        how = how or "torchvision"
    convs_found = [p for p in found.values() if p.startswith("conv")]
    kind = _CONV_COUNT_KIND.get(len(convs_found), f"VGG ({len(convs_found)} convolutions)") if found else None
    if not found:
        convs = [(path, w) for path, w in weights if w is not None and w.dim() == 4 and tuple(w.shape[2:]) == (3, 3)]
        shapes = [(int(w.shape[0]), int(w.shape[1])) for _, w in convs]
        for name, sequence, parts in (("VGG19", VGG19_CONV_SEQUENCE, _VGG19_CONVS),
                                      ("VGG16", VGG16_CONV_SEQUENCE, _VGG16_CONVS)):
            n = len(sequence)
            start = next((s for s in range(len(shapes) - n + 1) if shapes[s:s + n] == sequence), None)
            if start is not None:
                found = {path: part for (path, _), part in zip(convs[start:start + n], parts)}
                how, kind = "layer sequence", name
                break
    # BatchNorm right after a backbone convolution (vgg16_bn): part of the backbone, statistics too
    previous = None
    for path, leaf, _ in layers:
        if "BatchNorm" in leaf and previous in found:
            found[path] = f"{found[previous]} BatchNorm"
        previous = path
    if kind and any(p.endswith(" BatchNorm") for p in found.values()):
        kind += "-BN"   # as the worker names it (grader.measure.probes): vgg16_bn is VGG16-BN
    tensors = {name: found[name.rpartition(".")[0]] for name in state if name.rpartition(".")[0] in found}
    # The weights the layers use, whatever their tensors are called or shaped: a decoy VGG layer
    # in the module stack does not hide a copy of VGG16 kept in parameters named otherwise.
    used = _used_weights(program, model)
    by_use, used_pretrained = _by_used_value(used, imagenet, seed, frozenset(tensors))
    in_sequence, sequence_kind = _used_sequence(used)
    added = {name: part for name, part in {**in_sequence, **by_use}.items() if name in state and name not in tensors}
    if added:
        tensors |= added
        parts = set(tensors.values())
        if used_pretrained:
            how = "ImageNet weights"
        elif by_use:
            how = how if how in ("ImageNet weights", "torchvision") else "torchvision"
        else:
            how = how or "layer sequence"
        convs = {p for p in parts if p.startswith("conv") and "BatchNorm" not in p}
        kind = sequence_kind if sequence_kind and len(convs) == len(VGG19_CONV_SEQUENCE
                                                                     if sequence_kind == "VGG19" else
                                                                     VGG16_CONV_SEQUENCE) \
            else _CONV_COUNT_KIND.get(len(convs), f"VGG ({len(convs)} convolutions)")
    # Where no backbone is found: the tensors of layers that have VGG16's shapes all the same (an
    # encoder of the student's own, which the contract fails; until 2026-12-07 the verifier,
    # looking for nn.Conv2d layers a program does not have, counted none and only warned).
    shaped = {name for w, names, _ in used if tuple(w.shape) in VGG16_CONV_SHAPES | VGG16_FC_SHAPES for name in names}
    return {"kind": kind, "how": how, "tensors": tensors, "built": [],
            "fc_from_vgg": any(p in ("fc6", "fc7") for p in tensors.values()), "vgg_shaped": len(shaped)}
