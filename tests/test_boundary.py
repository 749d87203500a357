"""The trust boundary as the tree shows it (issue 16), checked by reading imports (ast):

- nothing on the grading side imports the worker package (grader.worker);
- the worker package imports from the grading side only the protocol and a few neutral
  helpers (listed below, each imported for a reason);
- the neutral modules import nothing from segrade;
- no engine module imports the report package (it presents; it does not grade);
- no import circles among segrade's modules, lazy (in-function) imports included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grader

PACKAGE = Path(grader.__file__).resolve().parent

# What the worker may import from outside grader.worker, and why.
WORKER_MAY_IMPORT = {
    "grader": "__version__ only, the package itself",
    "grader.protocol": "the messages it sends",
    "grader.processes": "die_with_parent after dropping privileges",
    "grader.manifest": "the manifest format the request carries",
    "grader.structure": "each variant's layers, recorded for structural similarity (neutral)",
    "grader.names": "how class names are compared (neutral)",
    "grader.device": "picking the device it computes on",
    "grader.data": "IGNORE_INDEX, the label convention the training loop follows",
    "grader.data.transforms": "ImageNet normalisation in the training loop",
    "grader.spec": "OPTIMIZERS, the names of the optimisers the training loop knows",
}
# Modules both sides import: they import nothing from segrade.
NEUTRAL = ("grader.protocol", "grader.processes", "grader.manifest", "grader.errors", "grader.structure",
           "grader.names")
# Modules that only present results (and the commands that call them).
# Orchestrators that write reports: the batch, its jobs, its backends and rescoring.
PRESENTATION = ("grader.report", "grader.commands", "grader.cli", "grader.__main__", "grader.batch", "grader.job",
                "grader.rescore", "grader.backends", "grader.similarity.page")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """The segrade modules a file imports, at the top or inside functions."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "grader"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "grader":
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES}
    return out


IMPORTS = {name: _imports(path) for name, path in MODULES.items()}


def _is_worker(name: str) -> bool:
    return name == "grader.worker" or name.startswith("grader.worker.")


def _under(name: str, packages) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_the_tree_has_a_worker_package_and_a_protocol():
    assert "grader.worker.__main__" in MODULES and "grader.protocol" in MODULES
    for name in ("probes", "stubs", "train", "adapters", "graph"):
        assert f"grader.worker.{name}" in MODULES and f"grader.{name}" not in MODULES


def test_the_grading_side_never_imports_the_worker_package():
    bad = {name: sorted(i for i in imported if _is_worker(i))
           for name, imported in IMPORTS.items() if not _is_worker(name)}
    assert {k: v for k, v in bad.items() if v} == {}


def test_the_worker_imports_only_the_protocol_and_neutral_helpers():
    bad = {name: sorted(i for i in imported if not _is_worker(i) and i not in WORKER_MAY_IMPORT)
           for name, imported in IMPORTS.items() if _is_worker(name)}
    assert {k: v for k, v in bad.items() if v} == {}


def test_neutral_modules_import_nothing_from_segrade():
    assert {name: sorted(IMPORTS[name]) for name in NEUTRAL if IMPORTS[name]} == {}


def test_engine_modules_do_not_import_the_report_package():
    bad = {name: sorted(i for i in imported if _under(i, ("grader.report",)))
           for name, imported in IMPORTS.items() if not _under(name, PRESENTATION)}
    assert {k: v for k, v in bad.items() if v} == {}


def test_no_import_circles():
    graph = {name: {i for i in imported if i in MODULES and i != name} for name, imported in IMPORTS.items()}
    circles = []

    def visit(node, path, on_path, done):
        on_path.add(node)
        path.append(node)
        for nxt in sorted(graph[node]):
            if nxt in on_path:
                circles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in done:
                visit(nxt, path, on_path, done)
        path.pop()
        on_path.discard(node)
        done.add(node)

    done: set[str] = set()
    for start in sorted(graph):
        if start not in done:
            visit(start, [], set(), done)
    assert circles == []


def test_the_import_reader_sees_lazy_imports():
    """A guard on the guard: the checker finds imports inside functions too."""
    assert "grader.records" in IMPORTS["grader.job"]            # imported inside a function there
    assert "grader.worker.graph" in IMPORTS["grader.worker.__main__"]
