"""The check step: turn the worker's raw observations into check results.

Every judgement is made here, in the grading process. Each check has a stable id,
a status and a message that says what was seen and what to fix.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from grader.records.results import CheckResult, CheckStatus, VariantResult, VariantStatus
from grader.shared.protocol import BackboneFound, BackboneSteps, ForwardStep, Gradients, Observation, Raised, Record, TrainingOutcome
from grader.submission.candidates import OTHER_FRAMEWORKS
from grader.spec import Assignment, Variant

# Checks whose failure makes the variant fail; `logits` and `llm_declaration` only inform.
REQUIRED_CHECKS = ("builds", "forward_shape", "gradients", "frozen_backbone", "finetuned_backbone", "architecture",
                   "learns", "skip_ablation")
# A relative change of the output at or below this, when a skip's encoder operand is zeroed,
# is no change: float noise is far above it, an operand multiplied by zero is exactly at 0.
DEAD_SKIP_CHANGE = 1e-9


# Why the sandbox (never the worker: grader.shared.protocol rejects the key) says a worker could not
# finish a variant; these map onto variant statuses.
WORKER_STATUS = {s.value: s for s in (VariantStatus.TIMEOUT, VariantStatus.OOM, VariantStatus.CRASHED,
                                      VariantStatus.ERROR)}


def _missing_module_hint(import_errors: tuple[str, ...]) -> str:
    """What to do about `No module named 'x'`: hand in x.py, or do without the package."""
    names = sorted(set(re.findall(r"No module named '([\w.]+)'", " ".join(import_errors))))
    names = [n for n in names if n.split(".")[0] not in OTHER_FRAMEWORKS]  # named by the not-PyTorch message
    if not names:
        return " Fix that error first."
    listed = ", ".join(f"'{n}'" for n in names)
    files = ", ".join(f"{n.replace('.', '/')}.py" for n in names)
    return (f" {listed} is neither in the submission nor installed: if it is your own file, hand it in ({files}); "
            "if it is a package, use only torch, torchvision, numpy and the standard library.")


def _not_pytorch(failed_modules: tuple[dict[str, Any], ...]) -> str | None:
    """A submission written for another framework: what to tell it, or None."""
    frameworks = sorted({f for m in failed_modules for f in m.get("frameworks") or ()})
    if not frameworks:
        return None
    files = ", ".join(m["path"] for m in failed_modules if m.get("frameworks"))
    return (f"This code is written for {' and '.join(frameworks)}, not PyTorch ({files} "
            f"import{'s' if ',' not in files else ''} it), and segrade grades PyTorch models only "
            "(torch.nn.Module subclasses): write the models with torch.nn to have them graded.")


def _defining_files(variant: Variant, failed_modules: tuple[dict[str, Any], ...]) -> list[str]:
    """Files that failed to import and define a class that could build this variant."""
    from grader.shared.names import is_helper_name, normalise_name

    names = {normalise_name(n) for n in (variant.class_name, *variant.aliases)}
    family = normalise_name(variant.family.id)
    named, family_like = [], []
    for module in failed_modules:
        defines = module.get("defines") or ()
        exact = [n for n in defines if normalise_name(n) in names]
        close = [n for n in defines if family in normalise_name(n) and not is_helper_name(n) and not n.startswith("_")]
        if exact:
            named.append(f"{module['path']}, which defines {', '.join(exact)}, failed to import: {module['error']}")
        elif close:
            family_like.append(f"{module['path']}, which defines {', '.join(close)}, failed to import: "
                               f"{module['error']}")
    return named or family_like


def check_variant(variant: Variant, observed: Observation, assignment: Assignment, *, batch_size: int,
                  import_errors: tuple[str, ...] = (), imported_any: bool = True,
                  failed_modules: tuple[dict[str, Any], ...] = ()) -> VariantResult:
    """Judge one variant from what the worker observed. `failed_modules`: the worker's reports
    on the files that failed to import (with what each defines, read from its source)."""
    if observed.worker_status is not None:
        status = WORKER_STATUS.get(observed.worker_status, VariantStatus.ERROR)
        return _result(variant, status, observed.mapping,
                       [CheckResult("builds", CheckStatus.FAIL, observed.message or status.value,
                                    {"phase": observed.phase})])
    if observed.unresolved is not None:
        status = VariantStatus.AMBIGUOUS if observed.unresolved == "ambiguous" else VariantStatus.MISSING
        message = observed.message if observed.message is not None else "not found"
        details = {"looked_for": list(observed.looked_for), "candidates": list(observed.candidates)}
        other = _not_pytorch(failed_modules) if status is VariantStatus.MISSING else None
        defining = _defining_files(variant, failed_modules) if status is VariantStatus.MISSING else []
        if other:
            status = VariantStatus.ERROR
            details |= {"import_failed": True, "not_pytorch": True}
            message = f"{variant.class_name} ({variant.id}) cannot be graded. {other}"
        elif import_errors and not imported_any and status is VariantStatus.MISSING:
            # No file imported: that is the cause, whatever the class is called.
            status = VariantStatus.ERROR
            details["import_failed"] = True
            message = (f"{variant.class_name} ({variant.id}) could not be found because the submission's code did "
                       f"not import. Files that failed to import: {'; '.join(import_errors)}."
                       f"{_missing_module_hint(import_errors)}\n\nIf the class is in none of those files: {message}")
        elif defining:
            # The class is there, in a file that did not import: that is the cause, said first.
            status = VariantStatus.ERROR
            details["defining_files_failed"] = True
            message = (f"{variant.class_name} ({variant.id}) was not built: {'; '.join(defining)}."
                       f"{_missing_module_hint(tuple(defining))}\n\n{message}")
        elif import_errors:
            message += f"\n\nFiles that failed to import: {'; '.join(import_errors)}."
        return _result(variant, status, None, [CheckResult("builds", CheckStatus.FAIL, message, details)])

    mapping = observed.mapping
    checks = [_builds(observed, assignment.has_family_with_pretrained_backbone())]
    if checks[0].status is CheckStatus.PASS:
        checks.append(_forward_shape(observed, variant, assignment.num_classes, batch_size))
    else:
        checks.append(CheckResult("forward_shape", CheckStatus.SKIP, "not run: the model did not build"))
    shape = checks[-1]
    # A model right at the input size and wrong at another still has its identity judged (the
    # probes measured it): else its mIoU would be scored with nothing showing what it is.
    if shape.status is CheckStatus.PASS or shape.details.get("right_at_input_size"):
        probe = _probe_input(assignment, variant)
        checks += [_logits(observed), _gradients(observed, probe, frozen_backbone_names(observed, variant))]
        if variant.family.id == "fcn" and "frozen" in variant.traits:
            checks.append(_backbone(observed, variant, probe))
        if variant.architecture:
            checks.append(_architecture(observed, variant, probe))
    failed = any(c.status is CheckStatus.FAIL for c in checks if c.id in REQUIRED_CHECKS)
    figures = {"parameters": _sent(observed.parameters),
               **{k: v for k, v in (_sent(observed.figures) or {}).items() if k != "traceback"},
               "architecture": _sent(observed.architecture),
               "backbone": backbone_text(observed.backbone_found),
               "structure": _sent(observed.structure),
               "build_seconds": observed.build.seconds if observed.build else None,
               "forward_seconds": observed.forward.seconds if observed.forward else None,
               "check_seconds": observed.check_seconds}
    notes = tuple(observed.notes)
    substituted = observed.build.random_init_for if observed.build else None
    if substituted:
        notes += (f"the constructor's own code asked for pretrained weights ({', '.join(substituted)}); this run "
                  "starts every backbone from random init, so it got random-init weights instead of a download "
                  "(a grade with ImageNet weights needs them offline, or builds with pretrained=False)",)
    return _result(variant, _status(observed) if failed else VariantStatus.PASSED, mapping, checks, figures,
                   adapter=observed.adapter, notes=notes)


def _sent(part: Record | None) -> dict[str, Any] | None:
    """A part of the observation as it was sent (results.json keeps it so), None when absent."""
    return None if part is None else part.to_json()


def _status(observed: Observation) -> VariantStatus:
    """A raised exception is an error (or oom); a wrong result is a failure."""
    for step in (observed.build, observed.forward):
        if _sent(step) and not step.ok:   # a step sent without any key raised nothing
            return VariantStatus.OOM if step.oom else VariantStatus.ERROR
    return VariantStatus.FAILED


def _builds(observed: Observation, imagenet_course: bool = True) -> CheckResult:
    """`imagenet_course`: the spec has a family that takes ImageNet (VGG16) weights; a course
    without one is never told to build a VGG16."""
    build = observed.build
    if build is not None and build.ok:
        return CheckResult("builds", CheckStatus.PASS, f"built as {observed.mapping}")
    error = build.error if build is not None and build.error is not None else "the worker reported no build result"
    message = f"building {observed.mapping} raised {error}"
    downloads = list(build.downloads) if build is not None else []
    file = downloads[-1].rsplit("/", 1)[-1] if downloads else None
    arch = re.match(r"([a-z0-9_]+?)-[0-9a-f]{6,}\.pth$", file or "")
    name = arch.group(1).upper().replace("_BN", "-BN") if arch else None
    if name and not imagenet_course and _is_network_failure(error):
        message += (f". The constructor's own code asked for {name} ImageNet weights ({file}) from the network: "
                    "grading runs offline, and this assignment trains every model from random init. Build the "
                    "backbone with weights=None")
        return CheckResult("builds", CheckStatus.FAIL, message, {"traceback": build.traceback,
                                                                "downloads": downloads})
    if name and not name.startswith("VGG16") and _is_network_failure(error):
        message += (f". The constructor's own code asked for {name} ImageNet weights ({file}) from the network: "
                    "grading runs offline, and the assignment's backbone is VGG16, whose weights segrade supplies "
                    "when the instructor has them. Build the backbone with torchvision.models.vgg16 and load "
                    "weights only when `pretrained` is true")
        return CheckResult("builds", CheckStatus.FAIL, message, {"traceback": build.traceback,
                                                                "downloads": downloads})
    message += _no_cuda_hint(error, build.traceback if build is not None else None)
    hub = next((d for d in downloads if re.match(r"https?://(api\.|codeload\.)?github\.com/", d)), None)
    if hub is not None and _is_network_failure(error):
        # torch.hub.load("pytorch/vision", "vgg16", ...) asks GitHub for the repository's code
        # first: the "file" it wanted is an API page, not weights
        repo = re.match(r"https?://[^/]+/(?:repos/)?([\w.-]+/[\w.-]+)", hub)
        frames = _STUDENT_FRAME.findall(build.traceback or "")
        where = f"`{frames[-1][2].strip()}` at {frames[-1][0]} line {frames[-1][1]}" if frames else "The constructor"
        message += (f". {where} fetches a model's code from GitHub{f' ({repo.group(1)})' if repo else ''} with "
                    "torch.hub, but grading runs offline: build the backbone with torchvision.models.vgg16 "
                    "(torchvision is installed) and load ImageNet weights only when `pretrained` is true")
        return CheckResult("builds", CheckStatus.FAIL, message, {"traceback": build.traceback,
                                                                "downloads": downloads})
    if _is_network_failure(error):
        message += (f". The constructor tried to download weights{f' ({file})' if file else ''}, but grading runs "
                    "offline: download only when `pretrained` is true (segrade passes pretrained=False unless the "
                    "instructor supplies ImageNet weights with --vgg16-weights or SEGRADE_VGG16_WEIGHTS)")
    return CheckResult("builds", CheckStatus.FAIL, message, {"traceback": build.traceback if build else None})


# What torch says when code asks for CUDA where there is none (a CPU-only run; in segrade's
# forked worker, the first one). Code written on Colab often hard-codes the GPU.
_NO_CUDA = ("Cannot re-initialize CUDA in forked subprocess", "Found no NVIDIA driver", "Torch not compiled with CUDA",
            "No CUDA GPUs are available", "CUDA driver initialization failed", "no CUDA-capable device")
_STUDENT_FRAME = re.compile(r'File "[^"\n]*/submission/([^"\n]+)", line (\d+), in [^\n]+\n[ \t]+([^\n]+)')


def _no_cuda_hint(error: str, traceback: str | None) -> str:
    """For an error from asking for CUDA where there is none: which line of the student's code
    did it, and what to write instead; "" for any other error."""
    if not any(words in error for words in _NO_CUDA) and not (
            "Expected all tensors to be on the same device" in error and "cuda" in error and "cpu" in error):
        return ""
    frames = _STUDENT_FRAME.findall(traceback or "")
    where = f"`{frames[-1][2].strip()}` at {frames[-1][0]} line {frames[-1][1]} " if frames else "the model's code "
    return (f". {where}puts tensors on the GPU, but this run has none (segrade runs the model on the CPU here, and "
            "moves the model and its inputs itself): choose the device with `torch.device(\"cuda\" if "
            "torch.cuda.is_available() else \"cpu\")`, and do not call .cuda() or .to(device) inside __init__ or "
            "forward (use x.device for tensors created in forward)")


def _fixed_size_hint(forward: ForwardStep, sizes) -> str:
    """When the output has one spatial size whatever the input's (`nn.Upsample(size=(224, 224))`):
    say so; "" otherwise."""
    pairs = [(forward.input_shape, forward.output_shape)] + [
        (o.input_shape, o.output_shape) for o in (sizes if isinstance(sizes, (tuple, list)) else ())]
    pairs = [(list(i)[2:], list(o)[2:]) for i, o in pairs if i is not None and o is not None and len(o) == 4]
    outputs = {tuple(o) for _, o in pairs}
    inputs = {tuple(i) for i, _ in pairs}
    if len(outputs) != 1 or len(inputs) < 2:
        return ""
    h, w = outputs.pop()
    return (f". The output is {h}x{w} whatever the input's size: a fixed size in nn.Upsample(size=...) or "
            "F.interpolate(size=...)? Upsample to the input's size (size=x.shape[-2:]) or by a scale factor")


def _shrink_hint(error: str) -> str:
    """For a feature map that became smaller than a kernel (unpadded convolutions): why and what to do."""
    if "Kernel size can't be greater than actual input size" not in error and "Output size is too small" not in error:
        return ""
    kernel = re.search(r"Kernel size: \((\d+) x (\d+)\)", error)
    k = f"{kernel.group(1)}x{kernel.group(2)} " if kernel else ""
    return (f". A feature map became smaller than a {k}kernel: each unpadded convolution (padding=0, as in the "
            "U-Net paper) takes kernel size - 1 pixels off and each pooling halves what is left. Pad the "
            "convolutions (padding=1 for 3x3, 3 for a 7x7 fc6) so that the model works at any size that is a "
            "multiple of 32")


def _is_network_failure(error: str) -> bool:
    # Building a model touches the network only to fetch weights (torch.hub, torchvision).
    network = ("URLError", "urlopen error", "Name or service not known", "Temporary failure in name resolution",
               "Network is unreachable", "ConnectionError", "ConnectionRefusedError")
    return any(word in error for word in network)


def _forward_shape(observed: Observation, variant: Variant, num_classes: int, batch_size: int) -> CheckResult:
    size = variant.family.input_size
    expected = [batch_size, num_classes, size, size]
    forward = observed.forward or ForwardStep()
    details = {"expected": expected, "input_shape": _listed(forward.input_shape)}
    if not forward.ok:
        error = forward.error if forward.error is not None else "an unknown error"
        return CheckResult("forward_shape", CheckStatus.FAIL,
                           f"forward on a {_shape(forward.input_shape)} input raised {error}"
                           + _no_cuda_hint(error, forward.traceback) + _shrink_hint(error),
                           details | {"traceback": forward.traceback})
    if forward.output_shape is None:
        return CheckResult("forward_shape", CheckStatus.FAIL, forward.output_error or (
                           f"forward returned a {forward.output_type}; it must return one "
                           "tensor of logits shaped N x num_classes x H x W"), details)
    seen = list(forward.output_shape)
    details["seen"] = seen
    if seen != expected:
        return CheckResult("forward_shape", CheckStatus.FAIL,
                           f"output shape {_shape(seen)} for a {_shape(forward.input_shape)} input; "
                           f"expected {_shape(expected)} (N x num_classes x H x W, at the input size)"
                           + _fixed_size_hint(forward, observed.sizes), details)
    if not (forward.dtype if forward.dtype is not None else "").startswith(("float", "bfloat")):
        return CheckResult("forward_shape", CheckStatus.FAIL,
                           f"output dtype is {forward.dtype}; logits must be floating point", details)
    if forward.finite is False:
        return CheckResult("forward_shape", CheckStatus.FAIL,
                           "output contains NaN or infinite values on a random input", details)
    sizes = observed.sizes or ()
    for other in sizes:   # a Raised is not iterable: it stops the grade, as the raw dict always did
        batch, _, height, width = other.input_shape
        want = [batch, num_classes, height, width]
        # Right at the input size, wrong at this one: the probes still judge what the model is.
        elsewhere = details | {"right_at_input_size": True}
        if other.error is not None:
            return CheckResult("forward_shape", CheckStatus.FAIL,
                               f"forward on a {_shape(other.input_shape)} input raised {other.error}"
                               + _shrink_hint(other.error), elsewhere)
        if list(other.output_shape) != want:
            return CheckResult("forward_shape", CheckStatus.FAIL,
                               f"output shape {_shape(other.output_shape)} for a {_shape(other.input_shape)} "
                               f"input; expected {_shape(want)} (any size that is a multiple of 32, batch size 1 "
                               "in eval mode included)" + _fixed_size_hint(forward, sizes), elsewhere)
        if other.finite is False:
            return CheckResult("forward_shape", CheckStatus.FAIL,
                               f"output contains NaN or infinite values for a {_shape(other.input_shape)} input",
                               elsewhere)
    sizes = ", ".join(_shape(o.input_shape) for o in sizes)
    return CheckResult("forward_shape", CheckStatus.PASS,
                       f"output {_shape(seen)} as expected" + (f"; also right for {sizes}" if sizes else ""), details)


def _logits(observed: Observation) -> CheckResult:
    found = observed.output_statistics
    stats = _sent(found) or {}
    if stats and found.eval_change and found.eval_change > 1e-5 * max(1.0, abs(found.min), abs(found.max)):
        return CheckResult("logits", CheckStatus.WARN,
                           f"the output in eval mode changes from one call to the next on the same input (by up to "
                           f"{found.eval_change:.3g}): dropout left on in eval mode? F.dropout(x, p) drops unless "
                           "given training=self.training (nn.Dropout follows the mode). The evaluation scores "
                           "whatever this random model predicts", stats)
    if stats and 0.0 <= found.min and found.max <= 1.0:
        if found.normaliser == "":   # measured: no sigmoid or softmax makes the output
            return CheckResult("logits", CheckStatus.PASS, "outputs are unnormalised scores (logits): no sigmoid or "
                               "softmax makes them, although they lie in [0, 1] at initialisation", stats)
        applied = found.normaliser or ("softmax" if found.sum_to_one < 1e-3 else "sigmoid")
        return CheckResult("logits", CheckStatus.WARN,
                           f"outputs lie in [0, 1]{' and sum to 1 over classes' if applied == 'softmax' else ''}: "
                           f"forward seems to apply {applied}. Return raw logits; cross-entropy applies its own "
                           "softmax, and a second one slows and flattens training", stats)
    return CheckResult("logits", CheckStatus.PASS, "outputs are unnormalised scores (logits)", stats)


def _probe_input(assignment: Assignment, variant: Variant) -> str:
    """The probes' input, in words: a failure there names the size and why it is required."""
    size = assignment.probe_size(variant.family.id)
    why = "set by the spec's probe_size" if variant.family.probe_size is not None else \
        f"the smallest size the spec runs the {variant.family.id} family at"
    return f"a {size}x{size} input ({why})"


def frozen_backbone_names(observed: Observation, variant: Variant) -> set[str]:
    """The backbone tensors of a frozen FCN variant, as its backbone steps measured them; else none."""
    if variant.family.id == "fcn" and variant.traits.get("frozen") and isinstance(observed.backbone, BackboneSteps):
        return set(observed.backbone.backbone_names)
    return set()


def _gradients(observed: Observation, probe: str = "the probe input", frozen: set[str] = frozenset()) -> CheckResult:
    """`frozen`: a frozen variant's backbone tensors, which get no gradient where forward runs the
    backbone under torch.no_grad() or detaches its output: that is freezing too, not a defect."""
    found = observed.gradients
    grads = _sent(found) or {}   # the details: as sent
    if isinstance(found, Raised):
        return CheckResult("gradients", CheckStatus.FAIL, f"a training step on {probe} raised {found.error}"
                           + _shrink_hint(found.error or ""), grads)
    if found is None:
        found = Gradients(none=(), zero=(), nonfinite=(), head=None, head_params=())   # not measured: nothing seen
    if found.nonfinite:
        return CheckResult("gradients", CheckStatus.FAIL,
                           f"non-finite gradients in {_names(found.nonfinite)} after one cross-entropy step", grads)
    head_without = [p for p in found.head_params if p in found.none]
    if head_without:
        return CheckResult("gradients", CheckStatus.FAIL,
                           f"the output layer ({found.head}) gets no gradient: the output is detached from "
                           f"it ({_names(head_without)})", grads)
    unused = [p for p in found.none if p not in frozen]
    if unused:
        return CheckResult("gradients", CheckStatus.WARN,
                           f"{len(unused)} trainable parameter(s) get no gradient, so they never train: "
                           f"{_names(unused)} (unused layers, or a detached path)", grads)
    held = len(found.none) - len(unused)
    if held:
        return CheckResult("gradients", CheckStatus.PASS,
                           "every trainable parameter outside the frozen backbone gets a finite gradient; the "
                           f"backbone's {held} get none (forward keeps it out of the backward pass, with "
                           "torch.no_grad() or detach(): frozen, as it should be)", grads)
    return CheckResult("gradients", CheckStatus.PASS, "every trainable parameter gets a finite gradient", grads)


def backbone_text(found: BackboneFound | Raised | None) -> str | None:
    """What the worker found the backbone to be, in words: "VGG16 (torchvision)", "none"."""
    if not _sent(found) or isinstance(found, Raised):   # absent, sent empty, or raised
        return None
    if not found.kind:
        return "none"
    how = {"torchvision": "from torchvision", "layer sequence": "hand-written: recognised by its layer sequence",
           "loaded weights": "weights the model loads itself: identical in two builds"}
    return f"{found.kind} ({how.get(found.how, found.how)})"


def _parts_text(names: list[str], parts: dict[str, str]) -> str:
    """conv5_1, conv5_2, fc6 (the VGG layers those tensors belong to), else the tensor names."""
    seen: list[str] = []
    for name in names:
        part = parts.get(name)
        if part and part not in seen:
            seen.append(part)
    return _names(seen, 6) if seen else _names(names)


def _changed_in_training(observed: Observation, trained) -> list[str] | None:
    """The backbone tensors the standardised training changed (grader.measure.observe: compared
    from its start to its last predictions); None when either side was not measured."""
    changed = observed.training.changed if observed.training is not None else None
    if changed is None or not trained.backbone_names:
        return None
    names = set(trained.backbone_names)
    return [name for name in changed if name in names]


def _backbone(observed: Observation, variant: Variant, probe: str = "the probe input") -> CheckResult:
    frozen = bool(variant.traits["frozen"])
    check_id = "frozen_backbone" if frozen else "finetuned_backbone"
    trained, found = observed.backbone, observed.backbone_found
    info = _sent(trained) or {}   # the details: as sent
    if isinstance(trained, Raised):
        return CheckResult(check_id, CheckStatus.FAIL, f"a training step on {probe} raised {trained.error}"
                           + _shrink_hint(trained.error or ""), info)
    if trained is None or not trained.backbone_tensors:
        vgg_shaped = trained.vgg_shaped if trained is not None else None
        if found is not None and not isinstance(found, Raised):   # identified by provenance: there is none
            built = f" (the constructor built {', '.join(found.built)} but uses none of its layers)" \
                if found.built else ""
            text = (f"{variant.class_name} has no VGG backbone{built}: no layer comes from a torchvision VGG "
                    "(torchvision.models.vgg16) and its convolutions do not follow VGG16's 13-layer sequence")
            if vgg_shaped or found.built:
                # VGG16-shaped layers of its own (or an unused VGG): not the assignment's backbone
                return CheckResult(check_id, CheckStatus.FAIL,
                                   f"{text}, although {vgg_shaped or 'some'} of its tensors have VGG16's "
                                   "shapes: an encoder of its own, so there is no backbone to "
                                   + ("freeze" if frozen else "fine-tune")
                                   + ". The assignment's FCNs are built on ImageNet VGG16",
                                   info | {"found": found.to_json()})
            return CheckResult(check_id, CheckStatus.WARN, f"{text}, so segrade cannot tell a backbone apart from the "
                               "head. The assignment's FCNs are built on ImageNet VGG16",
                               info | {"found": found.to_json()})
        return CheckResult(check_id, CheckStatus.WARN, "no VGG16-shaped layers found, so segrade cannot tell "
                           "the backbone apart from the head", info)
    kind = backbone_text(found) or "VGG16-shaped layers"
    changed, steps = list(trained.backbone_changed), trained.steps
    parts = trained.changed_parts or {}
    if frozen and changed:
        stats = [n for n in changed if n.endswith(("running_mean", "running_var", "num_batches_tracked"))]
        weights = [n for n in changed if n not in stats]
        moved, advice = [], []
        if weights:
            moved.append(f"the weights of {_parts_text(weights, parts)}")
            advice.append("Set requires_grad=False on every backbone parameter, or leave those layers out of the "
                          "optimiser (a flag that is never applied, or applied to a copy, does nothing).")
        if stats:
            moved.append(f"the BatchNorm statistics of {_parts_text(stats, parts)}")
            advice.append("Keep the backbone's BatchNorm layers in eval mode (their running statistics move in "
                          "train mode even when their parameters are frozen).")
        return CheckResult(check_id, CheckStatus.FAIL,
                           f"{len(changed)} of {trained.backbone_tensors} backbone tensors changed during "
                           f"{steps} training steps although the backbone should be frozen (backbone: {kind}): "
                           f"{' and '.join(moved)} moved ({_names(changed)}). {' '.join(advice)}", info)
    if frozen and not trained.head_changed:
        return CheckResult(check_id, CheckStatus.FAIL, f"nothing outside the backbone changed during {steps} "
                           "training steps: the head does not train", info)
    late = _changed_in_training(observed, trained) if frozen else None
    if late:
        return CheckResult(check_id, CheckStatus.FAIL,
                           f"{len(late)} of {trained.backbone_tensors} backbone tensors changed during the standardised "
                           f"training ({observed.training.steps} steps) although they were bit-identical after the "
                           f"check's {steps} steps (backbone: {kind}; {_names(late)}): the backbone must stay frozen for "
                           "the whole training, not only at first", info | {"changed_in_training": late})
    if not frozen and not changed:
        return CheckResult(check_id, CheckStatus.FAIL, f"the backbone did not change during {steps} training steps "
                           f"although this variant fine-tunes it: it is frozen (backbone: {kind})", info)
    what = "bit-identical, while the head trained" if frozen else "changed, as fine-tuning should"
    if late is not None:
        what += f", and stayed so through the standardised training ({observed.training.steps} steps)"
    return CheckResult(check_id, CheckStatus.PASS,
                       f"after {steps} real training steps the {trained.backbone_tensors} backbone tensors are {what} "
                       f"(backbone: {kind})", info)


def _architecture(observed: Observation, variant: Variant, probe: str = "the probe input") -> CheckResult:
    from grader.grading.architecture import Fingerprint, check_architecture

    seen = observed.architecture
    if isinstance(seen, Raised):
        return CheckResult("architecture", CheckStatus.FAIL,
                           f"the dataflow graph of a forward pass on {probe} could not be recorded: {seen.error}"
                           + _shrink_hint(seen.error or ""), seen.to_json())
    if seen is None:   # not measured although the forward pass was: refused, as it always was
        seen = Fingerprint.from_json({})
    status, message = check_architecture(seen, variant.architecture, variant.class_name, variant.family)
    return CheckResult("architecture", CheckStatus(status), message,
                       {"fingerprint": seen.to_json(), "required": variant.architecture})


def check_learning(training: TrainingOutcome | None, losses: list[float | None], miou: float | None,
                   untrained_miou: float | None, errors: list[str], label: str = "test mIoU",
                   untrained_max: float | None = None, separated: bool = False,
                   band_lower: float | None = None) -> CheckResult:
    """`learns`: the standardised training ran, its loss fell, and the evaluated mIoU (`label`:
    "test mIoU" on hidden labels, "val mIoU" in a self-check) beat the same model untrained
    and, when the band records it, the highest mIoU the reference reached untrained over its
    initialisation seeds (`untrained_max`): one model's own untrained figure can be low by luck
    (all measured by the grading process on labels the worker never sees). Below
    `untrained_max` fails where the reference showed that the profile separates trained from
    untrained (`separated`: Band.separates_untrained), else warns. Where the band separates, a
    model that scores at the band's lower edge (`band_lower`) *before* the standardised training
    fails: it arrived trained (a checkpoint loaded by its constructor), and its figure is not
    the standardised training's."""
    if training is None:
        return CheckResult("learns", CheckStatus.SKIP, "not trained: the model did not build or its output has "
                           "the wrong shape (see forward_shape)")
    if not training.ok:
        where = training.stage or "training"
        return CheckResult("learns", CheckStatus.FAIL, f"{where} failed: {training.error or 'no reason given'}",
                           {"traceback": training.traceback})
    if errors:
        return CheckResult("learns", CheckStatus.FAIL, "; ".join(errors))
    if miou is None:
        return CheckResult("learns", CheckStatus.FAIL, f"no predictions for the {label.split()[0]} split came back "
                           "from the worker")
    if training.mode == "weights":
        return CheckResult("learns", CheckStatus.PASS, f"submitted weights {training.weights}: "
                           f"{label} {miou:.3f}")
    if separated and None not in (band_lower, untrained_max, untrained_miou) and untrained_miou >= band_lower:
        return CheckResult("learns", CheckStatus.FAIL,
                           f"the model scored {label} {untrained_miou:.3f} before the standardised training, where "
                           f"the reference scores only trained (band from {band_lower:.3f}; untrained at most "
                           f"{untrained_max:.3f} over its initialisation seeds): it starts from trained weights (a "
                           "checkpoint loaded in its constructor?), so its figure is not the standardised training's. "
                           "Build the model from a fresh initialisation (pretrained backbone weights only); a course "
                           "that grades submitted weights grades them with --weights",
                           {"miou": round(miou, 4), "miou_label": label, "untrained_miou": round(untrained_miou, 4),
                            "band_lower": round(band_lower, 4), "untrained_max": round(untrained_max, 4)})
    finite = [x for x in losses if x is not None]
    if not losses or len(finite) < len(losses):
        return CheckResult("learns", CheckStatus.FAIL, "the training loss became NaN or infinite: check for a "
                           "softmax/log in forward, or a layer that divides by zero")
    head, tail = finite[: max(1, len(finite) // 5)], finite[-max(1, len(finite) // 5):]
    start, end = sum(head) / len(head), sum(tail) / len(tail)
    details = {"loss_start": round(start, 4), "loss_end": round(end, 4), "miou": round(miou, 4), "miou_label": label,
               "untrained_miou": None if untrained_miou is None else round(untrained_miou, 4)}
    if end >= start:
        return CheckResult("learns", CheckStatus.FAIL, f"the training loss did not fall ({start:.3f} -> {end:.3f}): "
                           "are the parameters registered (nn.ModuleList, not a list) and do they get gradients?",
                           details)
    if untrained_miou is not None and miou <= untrained_miou:
        return CheckResult("learns", CheckStatus.FAIL, f"{label} {miou:.3f} is no better than the same model "
                           f"untrained ({untrained_miou:.3f})", details)
    if untrained_max is not None:
        details["untrained_max"] = round(untrained_max, 4)
        if miou <= untrained_max:
            # Where the reference's trained runs do not clear its untrained ones by the band's
            # width, the profile cannot tell slow learning from none: a warning only.
            return CheckResult("learns", CheckStatus.FAIL if separated else CheckStatus.WARN,
                               f"{label} {miou:.3f} is no better than the reference untrained (up to "
                               f"{untrained_max:.3f} over its initialisation seeds): the training did not teach it "
                               "more than a random model scores by chance", details)
    base = f" (untrained {untrained_miou:.3f})" if untrained_miou is not None else ""
    return CheckResult("learns", CheckStatus.PASS, f"loss {start:.3f} -> {end:.3f}; {label} {miou:.3f}{base}",
                       details)


def check_skip_ablation(variant: Variant, training: TrainingOutcome | None) -> CheckResult | None:
    """`skip_ablation` (variants whose spec requires long skips): after training, zeroing the
    encoder operand of each long skip must change the output. None when not applicable."""
    from grader.grading.architecture import format_scale

    required = variant.architecture.get("long_skips")
    if not required:
        return None
    if not training or not training.ok or training.mode != "train":
        return CheckResult("skip_ablation", CheckStatus.SKIP, "not run: it needs the trained model")
    measured = training.skip_ablation
    if measured is None or isinstance(measured, Raised):
        return CheckResult("skip_ablation", CheckStatus.WARN, "could not run: "
                           + (measured.error if measured is not None else "no measurement"))
    alive: dict[float, float] = {}
    for join in measured:
        scale = float(join.scale)
        alive[scale] = max(alive.get(scale, 0.0), float(join.relative_change))
    dead = [s for s in required if alive.get(float(s), 0.0) <= DEAD_SKIP_CHANGE and float(s) in alive]
    details = {"relative_change": {format_scale(s): alive[s] for s in sorted(alive, reverse=True)}}
    if dead:
        return CheckResult("skip_ablation", CheckStatus.FAIL,
                           f"zeroing the encoder feature of the skip at {', '.join(map(format_scale, dead))} changes "
                           "nothing in the trained model's output: the skip is wired but carries no information "
                           "(multiplied by zero, or replaced by a constant?)", details)
    return CheckResult("skip_ablation", CheckStatus.PASS, "every long skip changes the output when its encoder "
                       "feature is zeroed: " + ", ".join(f"{k} {v:.1e}" for k, v in details["relative_change"].items()),
                       details)


def check_llm_declaration(root: Path, pattern: str | None) -> CheckResult | None:
    """Course policy (informational): do the submission's comments declare LLM prompts?
    Reads the prepared files as text; a human decides what the answer means."""
    if not pattern:
        return None
    regex = re.compile(pattern)
    for path in sorted(root.rglob("*.py")):
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            if regex.search(line):
                where = f"{path.relative_to(root).as_posix()} line {number}"
                return CheckResult("llm_declaration", CheckStatus.PASS,
                                   f"declares LLM use in a comment ({where}: {line.strip()[:100]!r})",
                                   {"file": where})
    return CheckResult("llm_declaration", CheckStatus.WARN,
                       "no comment declares LLM prompts; the course requires one when code was written with an "
                       "LLM (informational: a grader decides)", {})


def _names(names: list[str], shown: int = 4) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _listed(shape: tuple[int, ...] | None) -> list[int] | None:
    return None if shape is None else list(shape)


def _shape(shape: tuple[int, ...] | list[int] | None) -> str:
    return "x".join(map(str, shape)) if shape else "?"


def _result(variant: Variant, status: VariantStatus, mapping: str | None, checks: list[CheckResult],
            figures: dict[str, Any] | None = None, adapter: str | None = None, notes: tuple[str, ...] = ()) -> VariantResult:
    return VariantResult(variant.id, variant.title, status, mapping, tuple(checks), figures or {}, adapter, notes)
