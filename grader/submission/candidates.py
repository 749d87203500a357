"""Which of a submission's files matter to its models, read from the source (never run).

A file that fails to import is a problem to fix first only when a variant depends on it:
when it defines a model candidate (a class deriving from `nn.Module`, directly or through
other classes of the submission, or named like a variant's class), or when such a file
imports it. An EDA script that imports cv2, or a trainer that needs wandb, is only
informational. Read with `ast` in the grading process: nothing here executes student code.
"""

from __future__ import annotations

import ast
from pathlib import Path

# Base class names that make a class a model: torch's own, however it was imported.
MODULE_BASES = {"Module", "LightningModule"}
# Deep-learning frameworks segrade does not grade: a submission written for one is told so.
OTHER_FRAMEWORKS = {"tensorflow": "TensorFlow", "keras": "Keras", "tf_keras": "Keras", "jax": "JAX", "flax": "JAX/Flax",
                    "paddle": "PaddlePaddle", "mxnet": "MXNet", "mindspore": "MindSpore"}


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return None


def _base_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):  # Generic[...] and the like
        return _base_name(node.value)
    return None


def _imported_names(tree: ast.Module, path: str) -> list[str]:
    """Dotted module names this file imports, relative imports made absolute from its folder."""
    package = Path(path).parent.parts
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level - 1 <= len(package) else ()
                stem = ".".join((*base, node.module)) if node.module else ".".join(base)
            else:
                stem = node.module or ""
            names.append(stem)
            names += [f"{stem}.{alias.name}" if stem else alias.name for alias in node.names]
    return [n for n in names if n]


def _resolve(name: str, files: list[str]) -> list[str]:
    """The submission's files a dotted module name can mean (from any folder on its path)."""
    tail = name.replace(".", "/")
    return [f for f in files if f == f"{tail}.py" or f.endswith(f"/{tail}.py") or f == f"{tail}/__init__.py"
            or f.endswith(f"/{tail}/__init__.py")]


def model_files(root: Path, paths: list[str], class_names: set[str]) -> set[str]:
    """Of `paths` (relative to `root`), the files a variant can depend on: those defining a
    model candidate, and every file they import, transitively. A file that cannot be parsed
    counts as one (it might define anything)."""
    trees = {p: _parse(root / p) for p in paths}
    bases: dict[str, set[str]] = {}        # class name -> base names, over the whole submission
    defined: dict[str, set[str]] = {}      # file -> class names it defines
    for path, tree in trees.items():
        if tree is None:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases.setdefault(node.name, set()).update(filter(None, map(_base_name, node.bases)))
                defined.setdefault(path, set()).add(node.name)
    models = set(class_names) & set(bases)
    changed = True
    while changed:  # classes deriving from a model class are models too
        changed = False
        for name, parents in bases.items():
            if name not in models and parents & (MODULE_BASES | models):
                models.add(name)
                changed = True
    needed = {p for p, tree in trees.items() if tree is None or defined.get(p, set()) & models}
    queue = list(needed)
    while queue:
        tree = trees.get(path := queue.pop())
        for name in _imported_names(tree, path) if tree is not None else []:
            for target in _resolve(name, paths):
                if target not in needed:
                    needed.add(target)
                    queue.append(target)
    return needed


def source_facts(path: Path) -> dict[str, list[str]]:
    """What a file that failed to import defines (top-level classes and functions) and which
    other deep-learning frameworks it imports: so a missing variant can name the file that
    defines it, and a Keras submission can be told it is one."""
    tree = _parse(path)
    if tree is None:
        return {}
    defines = [n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))]
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported.add(node.module.split(".")[0])
    return {"defines": defines, "frameworks": sorted({OTHER_FRAMEWORKS[n] for n in imported if n in OTHER_FRAMEWORKS})}


def mark_blocking(root: Path, modules: list[dict], class_names: set[str]) -> list[dict]:
    """The worker's per-file import outcomes, each failed one with what its source defines and
    imports (source_facts) and marked `blocking`: whether a variant can depend on it
    (model_files). Only blocking failures are problems to fix."""
    paths = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if p.is_file())
    needed = model_files(root, paths, class_names)
    return [m if m.get("ok") else {**m, **source_facts(root / m["path"]), "blocking": m.get("path") in needed}
            for m in modules]
