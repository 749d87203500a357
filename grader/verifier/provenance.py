"""Which of a captured program's tensors are its VGG backbone, decided from the program alone.

- "ImageNet weights": a weight equal, value for value, to a layer of the ImageNet VGG16 that
  the verifier builds itself from the grader's weights file (fc6/fc7 reshaped into
  convolutions count); the strongest evidence, and it cannot be faked without the weights;
- "torchvision": the graph's module stack says the layer ran inside a torchvision VGG
  (random init: values prove nothing; this label is metadata of the captured program);
- "layer sequence": the program's 3x3 convolutions follow VGG16's (or VGG19's) exact sequence.
Run on the program as loaded, before any measurement trains it. The result has the form of
grader.measure.probes.identify_backbone's, which backbone_training and the checks read.
"""

from __future__ import annotations

from typing import Any

import torch

from grader.measure.probes import VGG16_CONV_SEQUENCE, VGG19_CONV_SEQUENCE, VGG16_FC_SHAPES

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


def identify(program, model, imagenet: dict[str, tuple[torch.Tensor, str]] | None) -> dict[str, Any]:
    params = dict(model.named_parameters())
    state = model.state_dict(keep_vars=True)
    layers = _layers(program)
    weights = [(path, params.get(f"{path}.weight" if path else "weight")) for path, _, _ in layers]
    found: dict[str, str] = {}
    how = kind = None
    if imagenet:
        by_numel: dict[int, list[tuple[torch.Tensor, str]]] = {}
        for w, part in imagenet.values():
            by_numel.setdefault(w.numel(), []).append((w, part))
        for path, w in weights:
            if w is None or w.dim() < 2 or w.numel() not in by_numel or not w.is_floating_point():
                continue
            flat = w.detach().reshape(-1).cpu()
            part = next((p for t, p in by_numel[w.numel()] if torch.equal(t.reshape(-1), flat)), None)
            if part is not None:
                found[path] = part
        if found:
            how, kind = "ImageNet weights", "VGG16"
    if not found:
        vgg_convs = [(path, w) for (path, leaf, in_vgg), (_, w) in zip(layers, weights)
                     if in_vgg and w is not None and w.dim() == 4 and tuple(w.shape[2:]) == (3, 3)]
        if vgg_convs:
            kind = _CONV_COUNT_KIND.get(len(vgg_convs), f"VGG ({len(vgg_convs)} convolutions)")
            names = _VGG19_CONVS if len(vgg_convs) == 16 else _VGG16_CONVS
            found = {path: names[i] if i < len(names) else f"conv{i + 1}" for i, (path, _) in enumerate(vgg_convs)}
            fcs = [(path, w) for (path, leaf, in_vgg), (_, w) in zip(layers, weights)
                   if in_vgg and w is not None and tuple(w.shape) in VGG16_FC_SHAPES]
            found |= {path: name for (path, _), name in zip(fcs, ("fc6", "fc7"))}
            how = "torchvision"
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
    tensors = {name: found[name.rpartition(".")[0]] for name in state if name.rpartition(".")[0] in found}
    return {"kind": kind, "how": how, "tensors": tensors, "built": [],
            "fc_from_vgg": any(p in ("fc6", "fc7") for p in found.values())}
