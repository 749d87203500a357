"""What a built model is made of, independent of how its code is written (runs in the worker).

`layers(model)`: one line per module that holds parameters or is a torch.nn layer with no
children, in registration order: torch.nn layers by class name and their own settings
(`Conv2d(64, 128, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)`), a
student's own module by its parameter shapes only (its class name is the student's choice).
Attribute and class names, comments and code layout do not appear, so a copy whose names
were changed gives the same lines. Used by grader.similarity.structural.
"""

from __future__ import annotations

MAX_LAYERS = 2000


def layers(model) -> list[str]:
    out = []
    for module in model.modules():
        own = [tuple(p.shape) for p in module.parameters(recurse=False)]
        is_torch = type(module).__module__.startswith("torch.")
        if is_torch and not any(True for _ in module.children()):
            out.append(f"{type(module).__name__}({_settings(module)})")
        elif own:
            out.append("Module(" + ", ".join("x".join(map(str, s)) for s in own) + ")")
        if len(out) >= MAX_LAYERS:
            break
    return out


def _settings(module) -> str:
    try:
        text = module.extra_repr()
    except Exception:  # noqa: BLE001 (a layer that cannot describe itself is still a layer)
        return "?"
    return " ".join(text.split())[:200]
