"""The worker: the only process that imports and runs student code.

Started by grader.grading.sandbox as `python -I -u -B -m grader.worker REQUEST FD` in a copy
of the submission. It reports raw observations (what imported, how each variant was
built, the output's shape) as JSON events, one per line, on file descriptor FD; it
judges nothing. The grading process turns observations into check results
(grader.grading.checks) and computes every score, so code that tampers with this process
can only misreport itself.

Events: {"event": "environment"}, {"event": "module"} per imported file,
{"event": "phase", "phase": P, "id": VARIANT} when a phase starts (the sandbox
enforces a deadline per phase), {"event": "result", "result": {...}} per variant,
{"event": "done"}.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from grader.measure import observe
from grader.shared.channel import Channel
from grader.shared.processes import drop_privileges, end_now
from grader.shared.protocol import ModuleRequest, TrainingRequest, VariantRequest, WorkerRequest


class TorchGuard:
    """Undoes student monkeypatching of torch between steps: a snapshot of the attributes
    of the torch namespaces the grader's own measurements use, restored before each
    variant and before measuring it (so a patched cross_entropy or torch.equal cannot
    fake a check; code that patches deeper can still misreport itself, see
    docs/security.md)."""

    def __init__(self, torch) -> None:
        owners = [torch, torch.nn.functional, torch.Tensor, torch.nn.Module, torch.optim.Optimizer,
                  torch.optim.AdamW, torch.autograd, torch.nn.CrossEntropyLoss, torch.nn.modules.loss]
        self._saved = [(owner, name, value) for owner in owners for name, value in list(vars(owner).items())
                       if not name.startswith("__")]

    def restore(self) -> None:
        for owner, name, value in self._saved:
            if getattr(owner, name, None) is not value:
                try:
                    setattr(owner, name, value)
                except (AttributeError, TypeError):
                    pass


def main(argv: list[str]) -> int:
    request = WorkerRequest.from_json(json.loads(Path(argv[0]).read_text()), "request")
    channel = Channel(int(argv[1]))
    if request.drop_to is not None:
        drop_privileges(request.drop_to)

    import torch

    from grader.shared import structure  # noqa: F401  (imported before student code can shadow anything)
    from grader.measure import graph, probes  # noqa: F401

    probes.install_vgg_recorder()
    if request.random_init_weights:   # a random-init profile: downloads get random-init weights
        from grader.worker import downloads

        downloads.install_random_init()
    from grader.worker.adapters import Candidate, Unresolved, plan_variant
    from grader.worker.adapters.plans import BuildContext
    from grader.shared.device import describe, resolve_device
    from grader.worker.stubs import install_stub_finder, stood_in

    device = resolve_device(request.device)
    if request.threads:  # a batch runs several workers side by side
        torch.set_num_threads(request.threads)
    if device.type == "cuda" and request.cuda_memory_fraction:  # jobs sharing one GPU
        torch.cuda.set_per_process_memory_fraction(request.cuda_memory_fraction, device)
    channel.send("environment", environment={
        "device": describe(device), "torch": torch.__version__, "python": sys.version.split()[0]})

    # Student files import each other by plain name (`from model import UNet`); logging-only
    # packages that are not installed (wandb, icecream, google.colab...) become stubs.
    for entry in reversed(request.sys_path):
        sys.path.insert(0, str((Path.cwd() / entry).resolve()))
    stubbed = install_stub_finder()
    guard = TorchGuard(torch)
    candidates: list[Candidate] = []
    channel.send("phase", phase="import")
    roots = _Roots(request.sys_path)
    for module in request.modules:
        roots.activate(module.root)
        channel.send("module", **_import(module, candidates, torch.nn.Module))
    if stubbed:
        print(f"[segrade] missing logging-only packages replaced by stubs: {', '.join(sorted(set(stubbed)))}")
    standing_in = stood_in()
    if standing_in:
        print(f"[segrade] missing packages stood in (they fail only where used): {', '.join(sorted(standing_in))}")
    channel.send("packages", stubbed=sorted({n.split(".")[0] for n in stubbed}), stood_in=standing_in)

    manifest, training = request.manifest, request.training
    context = BuildContext(device=device, freezes=request.freezes, classes=tuple(candidates))
    captured: set[str] = set()   # the variants whose checks' build the verifier measures
    for variant in request.variants:
        guard.restore()
        channel.send("phase", phase="build", id=variant.id)
        plan = plan_variant(variant, candidates, manifest, context=context)
        if request.plan_only:   # how each variant would be built, nothing built (tests, tools)
            channel.send("result", result=_describe_plan(plan, variant))
            continue
        result = _probe(plan, variant, device, request, torch, channel, guard, captured)
        # A candidate whose forward raises NotImplementedError (an abstract base segrade could
        # not tell from its source) gives way to the next one that fits.
        tried: list[Any] = []
        while _not_implemented(result) and not isinstance(plan, Unresolved) and plan.adapter != "manifest":
            tried.append(plan)
            following = plan_variant(variant, candidates, manifest, exclude=[t.factory for t in tried],
                                      context=context)
            if isinstance(following, Unresolved):
                break
            skipped = "; ".join(f"{getattr(t.factory, '__name__', t.factory)} in {t.source} not used: its forward "
                                "raised NotImplementedError" for t in tried)
            following.description += f"; {skipped}"
            following.notes = (skipped, *following.notes)
            plan = following
            guard.restore()
            result = _probe(plan, variant, device, request, torch, channel, guard, captured)
        channel.send("result", result=result)
        if training and _trainable(result):
            guard.restore()
            # Built again for training: the checks' measurements have trained it a little, and
            # the profile decides whether the backbone starts from ImageNet weights.
            train_plan = plan_variant(replace(variant, pretrained=training.pretrained
                                              if variant.pretrained is not None else None),
                                      candidates, manifest, exclude=[t.factory for t in tried],
                                      context=context)
            # The training build differs from the checks' build: captured again.
            differs = (training.mode == "weights" or variant.pretrained is not None
                       and training.pretrained != variant.pretrained
                       or training.config[variant.family].seed != request.seed)
            trained = _train(train_plan, variant, device, training, channel, guard, request,
                             variant.id in captured, differs)
            if trained is not None:
                channel.send("training", id=variant.id, training=trained)
    channel.send("done")
    return 0


class _Roots:
    """Subprojects with same-named modules (`FCN/src/model.py` and `UNet/src/model.py`, both
    `src.model`): each module is imported with its root first on sys.path, and the submission
    modules another root loaded under the names this root provides are set aside meanwhile
    (built classes keep their own modules), so one subproject never shadows another."""

    def __init__(self, roots: list[str]) -> None:
        self.here = Path.cwd().resolve()
        self.roots = [r for r in roots if r != "."]
        self.active = "."
        self.stash: dict[str, dict[str, Any]] = {}

    def _provided(self, root: str) -> set[str]:
        folder = self.here / root
        return {p.stem if p.suffix == ".py" else p.name for p in folder.iterdir()
                if p.suffix == ".py" or p.is_dir()} if folder.is_dir() else set()

    def activate(self, root: str) -> None:
        if root == self.active:
            return
        provided = self._provided(root)
        aside = self.stash.setdefault(self.active, {})
        for name, module in list(sys.modules.items()):
            if name.split(".")[0] in provided and _in_folder(module, self.here):
                aside[name] = sys.modules.pop(name)
        sys.modules.update(self.stash.pop(root, {}))
        # This root first; roots providing the same names are left out meanwhile (a regular
        # package anywhere on sys.path would beat this root's namespace folder).
        entries = [str((self.here / r).resolve()) for r in self.roots]
        sys.path[:] = [p for p in sys.path if p not in entries]
        keep = [r for r in self.roots if r != root and (root == "." or not self._provided(r) & provided)]
        order = ([root] if root != "." else []) + keep
        sys.path[0:0] = [str((self.here / r).resolve()) for r in order]
        import importlib

        importlib.invalidate_caches()
        self.active = root


def _in_folder(module: Any, folder: Path) -> bool:
    """Whether a module was loaded from the submission (a file, or a namespace package there)."""
    files = [getattr(module, "__file__", None)] + list(getattr(module, "__path__", None) or [])
    return any(f and folder in Path(f).resolve().parents for f in files)


def _import(module: ModuleRequest, candidates: list, module_base: type) -> dict[str, Any]:
    from grader.worker.adapters import Candidate

    started = time.perf_counter()
    try:
        loaded = _import_module(module.path, module.name)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt from student code too
        return {"path": module.path, "ok": False, "error": _short_error(exc),
                "traceback": _traceback_tail()}
    for attr, value in list(vars(loaded).items()):
        defined_here = getattr(value, "__module__", None) == loaded.__name__
        is_model_class = isinstance(value, type) and issubclass(value, module_base)
        is_function = callable(value) and not isinstance(value, (type, module_base))  # not model instances
        if defined_here and (is_model_class or is_function):
            candidates.append(Candidate(attr, value, module.path))
    return {"path": module.path, "ok": True, "error": None, "seconds": round(time.perf_counter() - started, 3)}


def _import_module(path: str, name: str):
    """Import under its dotted name when it has one (so `from model import X` elsewhere in
    the submission gets the same module object), else by file path under a private name."""
    import importlib
    import importlib.util

    file = (Path.cwd() / path).resolve()
    if name:
        module = importlib.import_module(name)
        if getattr(module, "__file__", None) and Path(module.__file__).resolve() == file:
            return module
    private = "segrade_submission_" + "".join(c if c.isalnum() else "_" for c in path[:-3])
    spec = importlib.util.spec_from_file_location(private, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[private] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(private, None)
        raise
    return module


def _describe_plan(plan, variant: VariantRequest) -> dict[str, Any]:
    from grader.worker.adapters import Unresolved

    if isinstance(plan, Unresolved):
        return {"id": variant.id, "unresolved": plan.status, "message": plan.message,
                "looked_for": list(plan.looked_for), "candidates": list(plan.candidates)}
    return {"id": variant.id, "mapping": plan.description, "adapter": plan.adapter, "notes": list(plan.notes)}


def _probe(plan, variant: VariantRequest, device, request: WorkerRequest, torch, channel: Channel,
           guard: TorchGuard, captured: set[str]) -> dict[str, Any]:
    """Build one variant; capture it for the verifier (its id then joins `captured`), or (when
    it cannot be captured) measure it here; record what happened."""
    from grader.measure import probes
    from grader.worker.adapters import Unresolved

    result: dict[str, Any] = {"id": variant.id}
    if isinstance(plan, Unresolved):
        return result | {"unresolved": plan.status, "message": plan.message,
                         "looked_for": list(plan.looked_for), "candidates": list(plan.candidates)}
    result |= {"mapping": plan.description, "adapter": plan.adapter, "notes": list(plan.notes)}

    torch.manual_seed(request.seed)
    started = time.perf_counter()
    from grader.worker.downloads import SUBSTITUTED

    SUBSTITUTED.clear()
    try:
        with probes.recording_vggs(request.seed) as vggs:
            model = plan.build()
    except BaseException as exc:
        return result | {"build": _failure(exc) | _downloads(exc)}
    result["notes"] = list(plan.notes)   # the build may say a step was not applied
    result["build"] = {"ok": True, "seconds": round(time.perf_counter() - started, 3)}
    if SUBSTITUTED:   # the constructor asked for pretrained weights and got random-init ones (downloads.py)
        result["build"]["random_init_for"] = sorted(set(SUBSTITUTED))[:64]
    if not isinstance(model, torch.nn.Module):
        result["build"] = {"ok": False, "error": f"the factory returned {type(model).__name__}, not an nn.Module"}
        return result
    # The classes the model is made of: where a self-check looks for what changed (grader.submission.dependencies)
    result["classes"] = sorted({type(m).__name__ for m in model.modules()}
                               | {getattr(plan.factory, "__name__", type(model).__name__)})[:2000]
    try:   # before any measurement trains it: copies of VGG weights are recognised by value
        identified = probes.identify_backbone(model, list(vggs))
        if identified.get("how") != "torchvision" and variant.pretrained:
            # ImageNet weights supplied, no torchvision VGG built: what a second build with
            # another seed shares with the first was loaded by the model itself.
            vggs.clear()
            torch.manual_seed(request.seed + 1)
            with probes.recording_vggs(request.seed + 1):
                other = plan.build()
            loaded = probes.identify_loaded_weights(model, other) if isinstance(other, torch.nn.Module) else None
            del other
            identified = loaded or identified
    except Exception as exc:
        identified = None
        result["backbone_found"] = {"error": _short_error(exc)}
    else:
        result["backbone_found"] = {k: v for k, v in identified.items() if k != "tensors"}
    vggs.clear()
    captured.discard(variant.id)
    if request.capture_folder:
        capture = _capture(model, variant, request, channel, "check")
        if capture.get("ok"):
            captured.add(variant.id)
            # The verifier measures the captured program; here only what the build did.
            params = list(model.parameters())
            result["parameters"] = {"total": sum(p.numel() for p in params),
                                    "trainable": sum(p.numel() for p in params if p.requires_grad)}
            return result | _forward_only(model, variant, device, request, torch, channel)
    from grader.shared import structure

    return result | observe.measure_checks(model, variant, device, request.batch_size, channel.send,
                                           guard.restore, identified, structure.layers)


def _capture(model, variant: VariantRequest, request: WorkerRequest, channel: Channel, purpose: str,
             weights: str | None = None) -> dict[str, Any]:
    """Capture the built model for the verifier (grader.worker.capture); the capture message
    says what was written, or why the model could not be captured."""
    from grader.worker.capture import capture

    try:
        captured = capture(model, variant.input_size, Path(request.capture_folder), f"{variant.id}.{purpose}",
                           batch_size=request.batch_size, probe_size=variant.probe_size, channels=variant.in_channels)
    except Exception as exc:   # saving failed (disk, file size limit...): measured here instead
        captured = {"ok": False, "error": f"the captured program could not be saved: {_short_error(exc)}"}
    channel.send("capture", id=variant.id, purpose=purpose, **captured,
                 **({"weights": weights} if weights else {}))
    return captured


def _forward_only(model, variant: VariantRequest, device, request: WorkerRequest, torch,
                  channel: Channel) -> dict[str, Any]:
    """One forward pass, as the measurements' first (a forward that raises
    NotImplementedError makes the worker try the next candidate; its output shape decides
    whether the variant is trained). The verifier measures the program again."""
    from grader.measure import probes
    from grader.measure.logits import to_logits

    channel.send("phase", phase="forward", id=variant.id)
    x = torch.randn(request.batch_size, variant.in_channels, variant.input_size, variant.input_size,
                    generator=torch.Generator().manual_seed(0))
    started = time.perf_counter()
    forward: dict[str, Any] = {"input_shape": list(x.shape)}
    try:
        model.to(device).eval()
        with torch.no_grad():
            out = to_logits(model(x.to(device)))
    except BaseException as exc:
        return {"forward": forward | _failure(exc)}
    forward |= {"ok": True, "seconds": round(time.perf_counter() - started, 3), "output_type": type(out).__name__,
                "output_shape": list(out.shape), "dtype": str(out.dtype).removeprefix("torch."),
                "finite": bool(torch.isfinite(out).all()) if out.is_floating_point() else None}
    return {"forward": forward} | ({"output_statistics": probes.output_statistics(out)}
                                   if out.is_floating_point() else {})


def _not_implemented(result: dict[str, Any]) -> bool:
    return any(str((result.get(step) or {}).get("error", "")).startswith("NotImplementedError")
               for step in ("build", "forward"))


_trainable = observe.trainable


def _train(plan, variant: VariantRequest, device, training: TrainingRequest, channel: Channel,
           guard: TorchGuard, request: WorkerRequest, captured: bool, differs: bool) -> dict[str, Any] | None:
    """The standardised training and the predictions (grader.measure.observe), in this
    process only for a model that could not be captured. With capture, the training build is
    captured (when it `differs` from the checks' build: another pretrained switch, the
    submission's own weights loaded, another seed) and the verifier trains it; None then:
    nothing to report. `captured`: the checks' build was captured."""
    import torch

    def build():
        model = plan.build()
        source = _load_weights(model, training.weights.get(variant.id)) if training.mode == "weights" else None
        return model, source

    if request.capture_folder and captured:
        if not differs:   # the checks' program is also the one to train
            return None
        channel.send("phase", phase="capture", id=variant.id)
        try:
            torch.manual_seed(training.config[variant.family].seed)
            model, source = build()
        except BaseException as exc:
            return {"stage": "setup"} | _failure(exc)
        captured = _capture(model, variant, request, channel, "train", weights=source)
        if captured.get("ok"):
            return None
    return observe.train_and_predict(build, variant, device, training, channel.send, guard.restore)


def _load_weights(model, path: str | None) -> str:
    """A submitted state dict, never unpickled: torch.load(weights_only=True) or safetensors."""
    import torch

    if not path:
        raise FileNotFoundError("no weights file for this variant in the submission (checkpoint mode)")
    file = (Path.cwd() / path).resolve()
    if Path.cwd().resolve() not in file.parents:
        raise PermissionError(f"weights file {path} lies outside the submission")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(file))
    else:
        state = torch.load(file, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model_state_dict", "model"):  # common checkpoint wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise TypeError(f"{path} holds a {type(state).__name__}, not a state dict")
    state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from DataParallel
    model.load_state_dict(state, strict=True)
    return path


def _downloads(exc: BaseException) -> dict[str, Any]:
    """The weights URLs a failed build was fetching (torch.hub's `url` in the traceback's
    frames): so the message can say which weights the code asked for (VGG19's, not VGG16's)."""
    urls: list[str] = []
    tb = exc.__traceback__
    while tb is not None:
        url = tb.tb_frame.f_locals.get("url")
        if isinstance(url, str) and url.startswith(("http://", "https://")) and url not in urls:
            urls.append(url)
        tb = tb.tb_next
    return {"downloads": urls} if urls else {}


_failure, _is_oom, _traceback_tail, _short_error = (observe.failure, observe.is_oom, observe.traceback_tail,
                                                     observe.short_error)


if __name__ == "__main__":
    end_now(main(sys.argv[1:]))
