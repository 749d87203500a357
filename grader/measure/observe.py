"""The measurement sequence of one built model, the same wherever it runs.

`measure_checks` (the forward pass and the checks' measurements) and `train_and_predict`
(the standardised training and the predictions the grading process scores) are called by
the verifier on a captured program (grader.verifier) and, for a model that could not be
captured, by the worker beside student code (grader.worker). Both report plain data over a
`send(event, **data)` function; neither judges anything.
"""

from __future__ import annotations

import functools
import hashlib
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from grader.shared.protocol import TrainingRequest, VariantRequest

Send = Callable[..., None]


def short_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= 500 else text[:497] + "..."


def traceback_tail(lines: int = 12, chars: int = 8000) -> str:
    tail = "".join(traceback.format_exc().splitlines(keepends=True)[-lines:])
    # The innermost frame of the submission's own code (the worker runs in its folder) when the
    # tail starts below it (`self.cuda()` fails ~20 frames deep in torch): kept, so that a
    # message can name the student's line.
    own = _innermost_own_frame()
    if own and own not in tail:
        tail = own + "  ...\n" + tail
    return tail[-chars:]


def _innermost_own_frame() -> str | None:
    import os
    import sys

    exc = sys.exc_info()[1]
    if exc is None:
        return None
    folder = os.getcwd().rstrip(os.sep) + os.sep
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.startswith(folder):
            return "".join(traceback.format_list([frame]))
    return None


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or "can't allocate memory" in str(exc) or "out of memory" in str(exc)


def failure(exc: BaseException) -> dict[str, Any]:
    return {"ok": False, "error": short_error(exc), "traceback": traceback_tail(), "oom": is_oom(exc)}


def measure_checks(model, variant: VariantRequest, device, batch_size: int, send: Send,
                   restore: Callable[[], None], identified: dict[str, Any] | None,
                   structure: Callable[[Any], list[str]] | None = None) -> dict[str, Any]:
    """The checks' observations on a built model: parameters, one forward pass (batch
    `batch_size`, eval mode), then other sizes, FLOPs, gradients or the backbone's training
    steps, the dataflow fingerprint and the layers. `identified`: the backbone
    (probes.identify_backbone or the verifier's identification), None when unknown;
    `restore` runs before each measurement (the worker's torch guard; nothing in the verifier)."""
    import torch

    from grader.measure import graph, probes
    from grader.measure.logits import to_logits

    result: dict[str, Any] = {}
    params = list(model.parameters())
    result["parameters"] = {"total": sum(p.numel() for p in params),
                            "trainable": sum(p.numel() for p in params if p.requires_grad)}
    send("phase", phase="forward", id=variant.id)
    x = torch.randn(batch_size, variant.in_channels, variant.input_size, variant.input_size,
                    generator=torch.Generator().manual_seed(0))
    started = time.perf_counter()
    forward: dict[str, Any] = {"input_shape": list(x.shape)}
    try:
        model.to(device).eval()
        with torch.no_grad():
            raw = model(x.to(device))
    except BaseException as exc:
        return result | {"forward": forward | failure(exc)}
    forward |= {"ok": True, "seconds": round(time.perf_counter() - started, 3), "output_type": type(raw).__name__}
    try:
        out = to_logits(raw)  # a dict with "out" or a tuple is accepted; anything else is reported
    except TypeError as exc:
        return result | {"forward": forward | {"output_error": str(exc)}}
    forward |= {"output_shape": list(out.shape),
                "dtype": str(out.dtype).removeprefix("torch."),
                "finite": bool(torch.isfinite(out).all()) if out.is_floating_point() else None}
    result["forward"] = forward
    if out.is_floating_point():
        result["output_statistics"] = probes.output_statistics(out)
        try:
            result["output_statistics"]["eval_change"] = probes.eval_change(
                model, to_logits, variant.probe_size or probes.PROBE_SIZE, device, variant.in_channels)
        except Exception:   # the checks below say what fails at that size
            pass
        try:
            result["output_statistics"]["normaliser"] = probes.output_normaliser(
                model, to_logits, variant.probe_size or probes.PROBE_SIZE, device, variant.in_channels)
        except Exception:   # not measured: the range alone decides, as before
            pass

    # The checks' measurements: other sizes, gradients, the backbone under training, cost.
    send("phase", phase="check", id=variant.id)
    checks_started = time.perf_counter()
    size, channels = variant.input_size, variant.in_channels
    probe_size = variant.probe_size or probes.PROBE_SIZE  # the grading side's, from the spec
    measurements = {
        # batch 1 in eval mode, another size, not square (forward was batch 2 at `size`)
        "sizes": lambda: probes.shapes_at(model, to_logits, [(1, size - 32, size + 32), (2, size - 32, size - 32)],
                                          device, channels),
        "figures": lambda: probes.figures(model, to_logits, size, device, channels),
        "gradients": lambda: probes.gradients(model, to_logits, variant.num_classes, device, probe_size, channels),
    }
    if variant.family == "fcn":   # the gradients come from the backbone's first training step
        del measurements["gradients"]

        def backbone() -> dict[str, Any]:
            seen, result["gradients"] = probes.backbone_training(model, variant.num_classes, device, identified,
                                                                 probe_size, channels)
            return seen

        measurements["backbone"] = backbone
    measurements["architecture"] = lambda: graph.fingerprint(model, probe_size, channels).to_json()
    if structure is not None:
        measurements["structure"] = lambda: {"layers": structure(model)}  # for grader.similarity
    seconds: dict[str, float] = {}
    for name, measure in measurements.items():
        restore()
        started = time.perf_counter()
        try:
            result[name] = measure()
        except Exception as exc:
            result[name] = {"error": short_error(exc), "traceback": traceback_tail(), "oom": is_oom(exc)}
        seconds[name] = round(time.perf_counter() - started, 3)
    if "error" in (result.get("backbone") or {}) and "gradients" not in result:
        result["gradients"] = result["backbone"]   # the step that would have measured them failed
    result["check_seconds"] = {"total": round(time.perf_counter() - checks_started, 3), **seconds}
    return result


def trainable(result: dict[str, Any]) -> bool:
    """Worth training: it built and its forward pass gave N x C x H x W floating logits."""
    forward = result.get("forward") or {}
    shape = forward.get("output_shape") or []
    return bool(forward.get("ok")) and forward.get("finite") is not None and len(shape) == 4 \
        and shape[2:] == forward.get("input_shape", [])[2:]


def train_and_predict(build: Callable[[], Any], variant: VariantRequest, device, training: TrainingRequest,
                      send: Send, restore: Callable[[], None]) -> dict[str, Any]:
    """The standardised training (or, in checkpoint mode, the model as built, its weights
    loaded) and the predictions the grading process scores: on the validation images at every
    evaluation interval, on the test images before training (the untrained baseline) and at
    the end. `build()` returns (model, weights source or None). No validation or test labels
    are read here."""
    import torch

    from grader.measure.probes import LogitsOnly
    from grader.measure.train import SegmentationTensors, TrainConfig, predict, train
    from grader.shared.protocol import encode_predictions

    vid, family = variant.id, variant.family
    folder = Path(training.data[family])
    config = TrainConfig(**asdict(training.config[family]))
    started = time.perf_counter()
    try:
        data = evaluation_data(str(folder))
        torch.manual_seed(config.seed)
        built, source = build()
        model = LogitsOnly(built)
    except BaseException as exc:
        return {"stage": "setup"} | failure(exc)
    val = SegmentationTensors(data["val"]["images"])
    test = SegmentationTensors(data["test"]["images"])
    batch = training.predict_batch

    def predictions(split: str, dataset, encoded: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        if encoded is None:
            restore()
            encoded = encode_predictions(predict(model, dataset, batch_size=batch, device=device))
        send("predictions", id=vid, split=split, **extra, **encoded)
        return encoded

    try:
        if training.mode == "weights":
            send("phase", phase="evaluate", id=vid)
            predictions("test", test, train_seconds=0.0)
            return {"ok": True, "mode": "weights", "weights": source, "seconds": round(time.perf_counter() - started, 2)}
        send("phase", phase="evaluate", id=vid)
        predictions("test_untrained", test)
        send("phase", phase="train", id=vid)
        reported = 0
        last_val: dict[str, Any] | None = None

        def on_eval(step: int, log) -> None:
            nonlocal reported, last_val
            last_val = predictions("val", val, step=step, seconds=round(log.seconds, 3), losses=log.losses[reported:])
            reported = len(log.losses)

        restore()
        before = state_digests(built)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        last_sent = time.monotonic()

        def on_step(step: int) -> None:  # at most twice a second: the display needs no more
            nonlocal last_sent
            if step == config.steps or time.monotonic() - last_sent >= 0.5:
                last_sent = time.monotonic()
                send("step", id=vid, step=step, steps=config.steps)

        send("step", id=vid, step=0, steps=config.steps)
        log = train(model, SegmentationTensors(data["train"]["images"], data["train"]["masks"]), config, device,
                    on_eval=on_eval, on_step=on_step)
        peak_mb = round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None
        send("phase", phase="evaluate", id=vid)
        # A self-check scores the validation images (the grading process says so): the last
        # step's validation predictions are the final ones, from the same weights; not run twice.
        final = last_val if training.test_is_val and len(log.losses) == config.steps else None
        predictions("test", test, final, train_seconds=round(log.seconds, 3))
        # After the last predictions: a model that puts its weights back before being read gains nothing.
        after = state_digests(built)
    except BaseException as exc:
        return {"stage": "train"} | failure(exc)
    result = {"ok": True, "mode": "train", "steps": len(log.losses), "train_seconds": round(log.seconds, 3),
              "peak_gpu_memory_mb": peak_mb, "changed": [name for name, digest in before.items()
                                                          if after.get(name) != digest]}
    # Skip ablation on the trained model (at init, zero-initialised score layers or deep
    # skips barely register): zero each long skip's encoder operand, measure the change.
    restore()
    try:
        from grader.measure import graph, probes

        result["skip_ablation"] = graph.skip_ablation(model, variant.probe_size or probes.PROBE_SIZE,
                                                      variant.in_channels)
    except Exception as exc:
        result["skip_ablation"] = {"error": short_error(exc)}
    return result | {"seconds": round(time.perf_counter() - started, 2)}


def state_digests(model) -> dict[str, str]:
    """A sha256 of each tensor of the model's state, to tell what the training changed without
    keeping a copy (a VGG16's 0.55 GB of weights hash in about 0.4 s on 2 cores)."""
    import torch

    digests = {}
    for name, tensor in model.state_dict().items():
        if not isinstance(tensor, torch.Tensor):
            continue
        data = tensor.detach().reshape(-1).contiguous().cpu()
        try:
            raw = data.view(torch.uint8).numpy()
        except (RuntimeError, TypeError):   # a dtype without a byte view (quantized): its values' text
            raw = repr(data.tolist()).encode()
        digests[name] = hashlib.sha256(raw).hexdigest()
    return digests


@functools.cache
def evaluation_data(folder: str) -> dict[str, dict[str, Any]]:
    """The family's splits, read once per process (every variant of a family shares them).
    Only a submission's own later variants could see a change made to them."""
    import torch

    return {split: torch.load(Path(folder) / f"{split}.pt", weights_only=True) for split in ("train", "val", "test")}
