"""The import plan: which files of a prepared submission the worker imports, under which module
names, and which folders go on sys.path (read statically from the syntax trees). A submission
whose top folder is a package is nested under its name first. See `formats` for the rules.
"""

from __future__ import annotations

import ast
import importlib.machinery
import keyword
import os
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath

from grader.submission.staging import Staging, some

_TEST_DIRS = {"tests", "test"}
_NOT_IMPORTED = {"setup.py", "conftest.py", "__main__.py"}
_GRADER_MODULES = {"grader"}  # imported by the worker before student code


@dataclass(frozen=True)
class Module:
    path: str  # path relative to the prepared folder, posix, e.g. "src/pkg/model.py"
    name: str  # dotted module name to import, e.g. "pkg.model"; "" means: load this file by path
    root: str = "."  # the import root `name` is relative to (a subproject's folder, "src", or ".")


def _ident(s: str) -> bool:
    return s.isidentifier() and not keyword.iskeyword(s)


@cache
def _taken(name: str) -> bool:
    """Whether `name` is a standard, built-in or installed top-level module (which a student
    file of that name cannot be imported as)."""
    if name in sys.stdlib_module_names or name in sys.builtin_module_names or name in _GRADER_MODULES:
        return True
    cwd = os.getcwd()
    search = [p for p in sys.path if p and os.path.abspath(p) != cwd]
    try:
        spec = importlib.machinery.PathFinder.find_spec(name, search)
    except (ImportError, ValueError, OSError):
        return False
    return spec is not None and spec.origin not in (None, "namespace")


def _absolute_imports(tree: ast.Module) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def plan_imports(dest: Path, rels: list[str], trees: dict[str, ast.Module | None],
                  st: Staging) -> tuple[list[Module], list[str]]:
    top = PurePosixPath(".")
    files = [PurePosixPath(r) for r in rels]
    init_dirs = {f.parent for f in files if f.name == "__init__.py"}
    roots: list[PurePosixPath] = [top]
    names: dict[PurePosixPath, str] = {}

    def add_root(d: PurePosixPath) -> None:
        if d not in roots:
            roots.append(d)

    # Packages: named from the topmost package's parent.
    plain = []
    for f in files:
        d = f.parent
        if d != top and d in init_dirs and _ident(d.name):
            pkg = d
            while pkg.parent != top and pkg.parent in init_dirs and _ident(pkg.parent.name):
                pkg = pkg.parent
            root = pkg.parent
            parts = list(f.relative_to(root).parts) if root != top else list(f.parts)
            parts[-1] = parts[-1][:-3]
            if parts[-1] == "__init__":
                parts.pop()
            names[f] = ".".join(parts) if all(map(_ident, parts)) else ""
            add_root(root)
        else:
            plain.append(f)

    # Folders providing plain-name imports that nothing else provides become roots.
    def provides(d: PurePosixPath, n: str) -> bool:
        return (dest / d / f"{n}.py").is_file() or (dest / d / n / "__init__.py").is_file()

    def provides_any(d: PurePosixPath, n: str) -> bool:   # a namespace folder of .py files too
        if provides(d, n):
            return True
        prefix = (*d.parts, n) if d != top else (n,)
        return any(g.parts[:len(prefix)] == prefix and len(g.parts) > len(prefix) for g in files)

    dirs = sorted({f.parent for f in files}, key=lambda p: (len(p.parts), str(p)))
    for f in files:
        tree = trees.get(f.as_posix())
        if tree is None:
            continue
        for n in sorted(_absolute_imports(tree)):
            if _taken(n):
                continue
            # A subproject run from its own folder (`FCN/train.py`, `UNet/src/model.py` doing
            # `from src.model import ...`): the nearest folder above the importing file that
            # provides the name is the root, even when another folder provides it too.
            nearest = next((d for d in [f.parent, *f.parent.parents] if provides_any(d, n)), None)
            if nearest is not None and nearest != top:
                if nearest not in roots:
                    add_root(nearest)
                    st.notes.append(f"added {nearest.as_posix()}/ to sys.path: {f.as_posix()} imports `{n}` "
                                    "from there")
                continue
            if any(provides(r, n) for r in roots) or any(g.parts[0] == n for g in files if len(g.parts) > 1):
                continue  # importable already (a module, a package, or a namespace folder in ".")
            candidates = [d for d in dirs if provides(d, n)]
            if not candidates:
                continue
            d = f.parent if f.parent in candidates else candidates[0]
            if d not in roots:
                add_root(d)
                st.notes.append(f"added {d.as_posix()}/ to sys.path: {f.as_posix()} imports `{n}` from there")

    # Plain files.
    root_of: dict[PurePosixPath, PurePosixPath] = {}
    for f in names:   # package files: named from their topmost package's parent
        root_of[f] = next((r for r in [f.parent, *f.parent.parents] if r in roots), top)
    for f in plain:
        d, stem = f.parent, f.name[:-3]
        parts = list(f.parts[:-1]) + [stem]
        inner = next((r for r in [d, *d.parents] if r in roots and r != top), None)
        if d == top or d in roots:
            names[f] = stem if _ident(stem) and not _taken(stem) else ""
            root_of[f] = d
        elif inner is not None and all(map(_ident, f.relative_to(inner).parts[:-1])) and _ident(stem) \
                and not _taken(f.relative_to(inner).parts[0].removesuffix(".py")):
            # inside a subproject's root: named as that subproject imports it (`src.model`)
            names[f] = ".".join([*f.relative_to(inner).parts[:-1], stem])
            root_of[f] = inner
        elif (all(map(_ident, parts)) and not _taken(parts[0])
              and not any(provides(r, parts[0]) for r in roots)
              and not any((dest / PurePosixPath(*parts[:i])).with_suffix(".py").is_file()
                          for i in range(2, len(parts)))):
            names[f] = ".".join(parts)  # a namespace package path, importable from "."
        elif _ident(stem) and not _taken(stem):
            add_root(d)
            names[f] = stem
            root_of[f] = d
        else:
            names[f] = ""
        if not names[f] and _ident(stem) and _taken(stem):
            st.notes.append(f"{f.as_posix()}: `{stem}` is also a standard or installed module, so it is loaded "
                            f"by path, not by name")
        elif not names[f]:
            st.notes.append(f"{f.as_posix()}: not a valid module name, so it is loaded by path")

    # Which files to import.
    def excluded(f: PurePosixPath) -> bool:
        return (f.name in _NOT_IMPORTED or f.name.startswith("test_") or f.name.endswith("_test.py")
                or any(p in _TEST_DIRS for p in f.parts[:-1]))

    chosen = [f for f in files if not excluded(f)]
    left_out = [f.as_posix() for f in files if excluded(f)]
    if not chosen:
        chosen, left_out = files, []
    if left_out:
        st.notes.append(f"not imported (tests, setup and entry scripts): {some(left_out)}")

    def order(f: PurePosixPath):
        return tuple("" if p == "__init__.py" else p for p in f.parts)

    # The same name under two roots (`FCN/src/model.py` and `UNet/src/model.py`, both `src.model`)
    # is fine: the worker imports each subproject with its own root first and its own modules.
    modules, seen = [], {}
    for f in sorted(chosen, key=order):
        name, root = names[f], root_of.get(f, top)
        if name and (root, name) in seen:
            st.notes.append(f"{f.as_posix()}: its module name `{name}` is also {seen[root, name]}'s, so it is "
                            "loaded by path")
            name = ""
        if name:
            seen[root, name] = f.as_posix()
        modules.append(Module(path=f.as_posix(), name=name, root=root.as_posix() if name else "."))
    shared = sorted({n for (r, n) in seen if sum(1 for (r2, n2) in seen if n2 == n) > 1})
    if shared:
        st.notes.append(f"subprojects with modules of the same name ({some(shared)}): each is imported with its "
                        "own folder first on sys.path, as when it is run from there")
    return modules, [r.as_posix() for r in roots]


def nest_package(st: Staging, hint: str) -> None:
    """The submission's top folder is a package: move it into dest/<name>/ so relative imports work."""
    name = re.sub(r"\W", "_", hint) or "submission"
    if name[0].isdigit():
        name = "_" + name
    if not _ident(name) or _taken(name):
        name = "submission"
    while (st.dest / name).exists():
        name += "_pkg"
    pkg = st.dest / name
    entries = list(st.dest.iterdir())
    pkg.mkdir()
    for entry in entries:
        entry.rename(pkg / entry.name)
    st.notes.append(f"the submission's top folder has an __init__.py, so it is a package: placed it in "
                    f"{name}/ (imported as `{name}`) so that its relative imports work")
