"""The trust boundary and the layers, as the tree shows them, checked by reading imports (ast).

Rules by folder, with no lists of exceptions:

- grader/worker/ runs beside student code: it imports only itself, grader/measure/, grader/shared/
  and the package face (`grader`, for __version__);
- grader/verifier/ measures captured programs and never runs student code: it imports only
  itself, grader/measure/, grader/shared/ and the face; never grader/worker/ (the stubs, the
  stand-ins, the adapters that import submissions) nor grader/submission/;
- grader/measure/ (measurements both the verifier and the worker take) imports only itself and
  grader/shared/;
- the grading side (everything else) imports neither grader/verifier/ nor grader/measure/: it
  starts the verifier as a process, like the worker;
- grader/shared/ is neutral: it imports nothing of segrade outside grader/shared/;
- nothing outside grader/worker/ imports grader/worker/ (the worker is a separate process);
- the engine (shared, spec, data, submission, grading, records, similarity) never imports
  grader/report/: reports are written by the orchestrators (batch, commands, the CLI);
- no import circles among segrade's modules, lazy (in-function) imports included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grader

PACKAGE = Path(grader.__file__).resolve().parent
ENGINE = ("shared", "spec", "data", "submission", "grading", "records", "similarity")
FACE = ("grader", "grader.__main__", "grader.cli")  # the package's face and entry points


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


def _in(name: str, folder: str) -> bool:
    return name == f"grader.{folder}" or name.startswith(f"grader.{folder}.")


def test_the_top_of_the_package_holds_only_its_face_and_folders():
    top = {p.name for p in PACKAGE.iterdir() if p.suffix == ".py"}
    assert top == {"__init__.py", "__main__.py", "cli.py"}
    assert "grader.worker.__main__" in MODULES and "grader.shared.protocol" in MODULES
    for name in ("stubs", "adapters", "capture"):
        assert f"grader.worker.{name}" in MODULES
    for name in ("probes", "train", "graph", "observe", "captured"):
        assert f"grader.measure.{name}" in MODULES
    assert "grader.verifier.__main__" in MODULES and "grader.verifier.load" in MODULES


def test_every_module_lives_in_a_folder_with_a_rule():
    folders = {name.split(".")[1] for name in MODULES if name not in FACE}
    assert folders <= set(ENGINE) | {"worker", "verifier", "measure", "batch", "report", "commands"}


def test_the_grading_side_never_imports_the_worker_package():
    bad = {name: sorted(i for i in imported if _in(i, "worker"))
           for name, imported in IMPORTS.items() if not _in(name, "worker")}
    assert {k: v for k, v in bad.items() if v} == {}


def test_the_worker_imports_only_itself_measure_shared_and_the_package_face():
    bad = {name: sorted(i for i in imported if not (_in(i, "worker") or _in(i, "measure") or _in(i, "shared")
                                                    or i == "grader"))
           for name, imported in IMPORTS.items() if _in(name, "worker")}
    assert {k: v for k, v in bad.items() if v} == {}


def test_the_verifier_imports_only_itself_measure_shared_and_the_package_face():
    """Never the worker (stubs, stand-ins, adapters) nor the submission loader: nothing that
    could bring student code into the process that measures the captured programs."""
    bad = {name: sorted(i for i in imported if not (_in(i, "verifier") or _in(i, "measure") or _in(i, "shared")
                                                    or i == "grader"))
           for name, imported in IMPORTS.items() if _in(name, "verifier")}
    assert {k: v for k, v in bad.items() if v} == {}


def test_measure_imports_only_itself_and_shared():
    bad = {name: sorted(i for i in imported if not (_in(i, "measure") or _in(i, "shared")))
           for name, imported in IMPORTS.items() if _in(name, "measure")}
    assert {k: v for k, v in bad.items() if v} == {}


def test_the_grading_side_starts_the_verifier_and_never_imports_it_or_measure():
    bad = {name: sorted(i for i in imported if _in(i, "verifier") or _in(i, "measure"))
           for name, imported in IMPORTS.items()
           if not any(_in(name, f) for f in ("worker", "verifier", "measure"))}
    assert {k: v for k, v in bad.items() if v} == {}


def test_shared_modules_import_nothing_outside_shared():
    bad = {name: sorted(i for i in imported if not _in(i, "shared"))
           for name, imported in IMPORTS.items() if _in(name, "shared")}
    assert {k: v for k, v in bad.items() if v} == {}


def test_the_engine_does_not_import_the_report_package():
    bad = {name: sorted(i for i in imported if _in(i, "report"))
           for name, imported in IMPORTS.items() if any(_in(name, folder) for folder in ENGINE)}
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
    assert "grader.records.files" in IMPORTS["grader.batch.job"]            # imported inside a function there
    assert "grader.measure.observe" in IMPORTS["grader.worker.__main__"]
