"""What a variant's result depends on in a submission's code, as one digest, read from the
source with `ast` (never run): so `segrade check` can tell an unchanged variant from an edited
one and reuse the first (grader.grading.reuse).

A variant depends on the classes its built model is made of (the worker reports their names),
on every top-level definition those reach by name, transitively and across files (helper
functions, block classes, constants), and on every top-level statement of the model files that
is not a definition (imports, module constants, code run at import), all of which can change
what a model does. It also depends on *which* class builds it: adding, renaming or re-basing a
model class can change the adapter's choice, so the digest covers every model class's name,
file and bases too. Matching names across files is deliberately generous (a name defined in two
files counts both): an unneeded re-run costs seconds, a wrong reuse costs a wrong figure.
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from grader.submission.candidates import model_files


@dataclass
class SourceIndex:
    """A submission's Python sources, by top-level definition."""

    definitions: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # name -> [(file, source)]
    other: dict[str, list[str]] = field(default_factory=dict)     # file -> non-definition statements' source
    models: list[str] = field(default_factory=list)               # "file:Class(bases)" for every model class
    model_files: set[str] = field(default_factory=set)
    unreadable: list[str] = field(default_factory=list)           # files that do not parse: hashed whole
    texts: dict[str, str] = field(default_factory=dict)


def _names_used(node: ast.AST) -> set[str]:
    """Every identifier a definition mentions: names, attribute names (`blocks.ResBlock`), and
    strings that look like identifiers (getattr(module, "Name"))."""
    used = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            used.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            used.add(sub.attr)
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str) and sub.value.isidentifier():
            used.add(sub.value)
    return used


def _defined_names(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        return [node.name]
    return []


def index_sources(root: Path, class_names: set[str]) -> SourceIndex:
    """Read every .py file under `root` (a prepared submission) once."""
    paths = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if p.is_file())
    index = SourceIndex()
    index.model_files = model_files(root, paths, class_names)
    for path in paths:
        try:
            text = (root / path).read_text(encoding="utf-8", errors="replace")
            tree = ast.parse(text)
        except (OSError, SyntaxError, ValueError):
            index.unreadable.append(path)
            index.texts[path] = (root / path).read_bytes().decode("utf-8", "replace") if (root / path).is_file() else ""
            continue
        index.texts[path] = text
        for node in tree.body:
            source = ast.get_source_segment(text, node) or ast.dump(node)
            names = _defined_names(node)
            for name in names:
                index.definitions.setdefault(name, []).append((path, source))
            if not names and path in index.model_files:
                index.other.setdefault(path, []).append(source)
            if isinstance(node, ast.ClassDef) and path in index.model_files:
                bases = ",".join(ast.unparse(b) for b in node.bases)
                index.models.append(f"{path}:{node.name}({bases})")
    return index


def reachable(index: SourceIndex, roots: set[str]) -> dict[str, list[tuple[str, str]]]:
    """The top-level definitions `roots` reach by name, transitively."""
    seen: dict[str, list[tuple[str, str]]] = {}
    queue = [r for r in roots if r in index.definitions]
    while queue:
        name = queue.pop()
        if name in seen:
            continue
        seen[name] = index.definitions[name]
        for _, source in index.definitions[name]:
            try:
                tree = ast.parse(source)
            except SyntaxError:
                continue
            queue += [n for n in _names_used(tree) if n in index.definitions and n not in seen]
    return seen


def code_digest(index: SourceIndex, roots: set[str] | None) -> str:
    """The digest of what a variant built from classes `roots` depends on; `roots` None (not
    known: the variant never built) means every model file, whole."""
    h = hashlib.sha256()
    h.update("\n".join(sorted(index.models)).encode())
    for path in sorted(index.other):
        h.update(f"\0{path}\0".encode() + "\n".join(index.other[path]).encode())
    for path in sorted(index.unreadable):
        h.update(f"\0{path}\0".encode() + index.texts.get(path, "").encode())
    if roots is None:
        for path in sorted(index.model_files):
            h.update(f"\0{path}\0".encode() + index.texts.get(path, "").encode())
        return h.hexdigest()
    found = reachable(index, roots)
    if not found:  # the classes are gone or were never the submission's own: depend on everything
        return code_digest(index, None)
    for name in sorted(found):
        for path, source in sorted(found[name]):
            h.update(f"\0{name}\0{path}\0".encode() + source.encode())
    return h.hexdigest()


def files_digest(root: Path) -> str:
    """Every file of a prepared submission (what the worker imports, and what it may read)."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(f"\0{path.relative_to(root)}\0".encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()
