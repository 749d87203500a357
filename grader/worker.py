"""The worker: the only process that imports and runs student code.

Started by grader.sandbox as `python -I -m grader.worker REQUEST RESPONSE` with a
temporary copy of the submission as its working directory. It reports raw
observations (what imported, what built, the output's shape); it judges nothing.
The grading process turns observations into check results (grader.checks), so a
submission that tampers with this process can only lie about itself, and every
lie shows up as a failed or implausible observation.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> int:
    request_path, response_path = map(Path, argv)
    request = json.loads(request_path.read_text())
    response: dict[str, Any] = {"modules": [], "variants": [], "environment": {}}

    def save() -> None:  # after every step, so a crash loses only the step it hit
        response_path.write_text(json.dumps(response))

    import torch

    from grader.device import best_device, describe

    device = best_device() if request.get("device", "auto") == "auto" else torch.device(request["device"])
    response["environment"] = {
        "device": describe(device),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
    }
    save()

    # Student files import each other by plain name (`from model import UNet`).
    sys.path.insert(0, str(Path.cwd()))
    classes: dict[str, list[tuple[str, type]]] = {}
    for rel in request["python_files"]:
        response["modules"].append(_import(rel, classes, torch.nn.Module))
        save()

    for variant in request["variants"]:
        response["variants"].append(_probe(variant, classes, device, request, torch))
        save()
    # Student code can end the process early, even with exit code 0 (os._exit);
    # only this flag tells the grading process that the worker got to the end.
    response["complete"] = True
    save()
    return 0


def normalise(name: str) -> str:
    """Contract names match case- and underscore-insensitively: `unet_noskip` ~ `UNetNoSkip`."""
    return name.replace("_", "").lower()


def _import(rel: str, classes: dict[str, list[tuple[str, type]]], module_base: type) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        module = _import_file(rel)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt from student code too
        return {"path": rel, "ok": False, "error": _short_error(exc), "traceback": traceback.format_exc(limit=-8)}
    for attr, value in vars(module).items():
        if isinstance(value, type) and issubclass(value, module_base) and value.__module__ == module.__name__:
            classes.setdefault(normalise(attr), []).append((rel, value))
    return {"path": rel, "ok": True, "error": None, "seconds": round(time.perf_counter() - started, 3)}


def _import_file(rel: str):
    """Import a file under its dotted name, so that `from model import X` elsewhere in the
    submission gets the same module object; fall back to a private name when the path is
    not a valid module name or the name is already taken (a student file called `types.py`)."""
    import importlib
    import importlib.util

    path = (Path.cwd() / rel).resolve()
    dotted = rel[:-3].replace("/", ".").removesuffix(".__init__")
    if all(part.isidentifier() for part in dotted.split(".")):
        module = importlib.import_module(dotted)
        if getattr(module, "__file__", None) and Path(module.__file__).resolve() == path:
            return module
    name = "segrade_submission_" + "".join(c if c.isalnum() else "_" for c in rel[:-3])
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _probe(variant: dict[str, Any], classes, device, request, torch) -> dict[str, Any]:
    """Build one variant and run one forward pass; record what happened."""
    result: dict[str, Any] = {"id": variant["id"], "class_name": variant["class_name"]}
    found = classes.get(normalise(variant["class_name"]), [])
    result["candidates"] = [f"{cls.__name__} in {rel}" for rel, cls in found]
    if len(found) != 1:
        return result
    rel, cls = found[0]
    kwargs = variant["kwargs"]
    result["mapping"] = f"{cls.__name__}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) from {rel}"

    torch.manual_seed(request.get("seed", 0))
    started = time.perf_counter()
    try:
        model = cls(**kwargs)
    except BaseException as exc:
        result["build"] = {"ok": False, "error": _short_error(exc), "traceback": traceback.format_exc(limit=-8)}
        return result
    result["build"] = {"ok": True, "seconds": round(time.perf_counter() - started, 3)}
    if not isinstance(model, torch.nn.Module):
        result["build"] = {"ok": False, "error": f"{cls.__name__}(...) returned {type(model).__name__}, not an nn.Module"}
        return result
    params = list(model.parameters())
    result["parameters"] = {
        "total": sum(p.numel() for p in params),
        "trainable": sum(p.numel() for p in params if p.requires_grad),
    }

    size = variant["input_size"]
    x = torch.randn(request.get("batch_size", 2), 3, size, size, generator=torch.Generator().manual_seed(0))
    started = time.perf_counter()
    try:
        model.to(device).eval()
        with torch.no_grad():
            out = model(x.to(device))
    except BaseException as exc:
        result["forward"] = {"ok": False, "input_shape": list(x.shape), "error": _short_error(exc),
                             "traceback": traceback.format_exc(limit=-8)}
        return result
    forward: dict[str, Any] = {"ok": True, "input_shape": list(x.shape), "seconds": round(time.perf_counter() - started, 3),
                               "output_type": type(out).__name__}
    if isinstance(out, torch.Tensor):
        forward |= {"output_shape": list(out.shape), "dtype": str(out.dtype).removeprefix("torch."),
                    "finite": bool(torch.isfinite(out).all()) if out.is_floating_point() else None}
    result["forward"] = forward
    return result


def _short_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= 500 else text[:497] + "..."


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
