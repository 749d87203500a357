"""Which of a captured program's tensors are its VGG backbone, decided from the program alone.

- "ImageNet weights": a weight equal (to a relative error of 1e-3) to a layer of the ImageNet
  VGG16 that the verifier reads itself from the grader's weights file (fc6/fc7 reshaped into
  convolutions count); the strongest evidence, and it cannot be faked without the weights;
- "torchvision": a weight that carries the grader's fingerprint (the worker marks every VGG a
  constructor builds, grader.measure.probes.fingerprint: fc6/fc7 copied from it are known by
  value), or a layer the graph's module stack places inside a torchvision VGG;
- "layer sequence": the program's 3x3 convolutions follow VGG16's (or VGG19's) exact sequence.
Run on the program as loaded, before any measurement trains it. The result has the form of
grader.measure.probes.identify_backbone's, which backbone_training and the checks read.
The fingerprint is written in the student's process: code that tampers with the worker can
remove it, and copied fc6/fc7 then count as the student's own head in a random-init run
(docs/security.md); with ImageNet weights the verifier's own file decides."""

from __future__ import annotations

from typing import Any

import torch

from grader.measure.probes import (FINGERPRINT_LENGTH, VGG16_CONV_SEQUENCE, VGG16_FC_SHAPES, VGG19_CONV_SEQUENCE,
                                   fingerprint)

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
    return {"kind": kind, "how": how, "tensors": tensors, "built": [],
            "fc_from_vgg": any(p in ("fc6", "fc7") for p in found.values())}
