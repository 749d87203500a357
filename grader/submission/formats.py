"""Turning a submission on disk (folder, zip, script, notebook) into a folder the worker can import.

Runs in the GRADING process, so nothing here imports or executes student code: files are
only copied, unzipped, read as JSON (notebooks, with nbformat) and parsed with `ast`.

This module is the entry point; each step lives in its own module of grader/submission/:
`staging` (the folder being prepared, size limits, what is never copied), `archive` (folders
and zips), `notebooks`, `toplevel` (the top-level filter) and `imports` (the import plan).

    prepared = prepare_submission(Path("inbox/alice"), Path("/tmp/job/submission"))
    prepared.modules   # (Module(path="src/seg/__init__.py", name="seg"), Module("src/seg/model.py", "seg.model"), ...)
    prepared.sys_path  # (".", "src"): put root/"." and root/"src" in front of sys.path, then import by name

What `prepare_submission` does, in order:

1. Materialise the source into `dest` (`archive`):
   - a folder: its regular files are copied. Symbolic links are never followed (skipped and
     noted); tooling folders (`__pycache__`, hidden folders such as `.git`/`.venv`/
     `.ipynb_checkpoints`, `__MACOSX`, `node_modules`, `site-packages`, virtual environments,
     i.e. folders holding `pyvenv.cfg` or `conda-meta/`, and `wandb/` run-log folders, which
     would otherwise shadow a stubbed `wandb` as a namespace package) and hidden files are
     skipped; files over 50 MB are skipped (checkpoints `.pt/.pth/.safetensors/.ckpt` up to
     1 GB each, 2 GB together; notebooks up to 200 MB); more than `limits.max_files` files, or
     more than `limits.max_total_bytes` of non-checkpoint files, is a SubmissionError.
     A folder with no `.py`/`.ipynb` file but exactly one `.zip` is that zip.
   - a zip: every entry is checked before anything is written. Rejected (SubmissionError naming
     the entry): absolute paths, drive letters, `..` components, encrypted entries, more than
     `max_files` entries, more than `max_total_bytes` uncompressed (checkpoint files are
     counted against their own caps above instead, so a zipped 300 MB checkpoint is fine), an
     entry over 1 MiB that expands more than `max_ratio` times (bomb). Symlink entries (and
     other special files) are SKIPPED with a note, never created: a symlink is how macOS and
     Linux zip a linked dataset folder, which is harmless once it is not followed, and
     rejecting the whole submission for it would be harsh. Entries are read in chunks and
     the real bytes are counted against the limits (header sizes are not trusted). If,
     ignoring `__MACOSX/` and hidden files, everything sits in a single top-level folder,
     that folder becomes the root (repeatedly: `hw3/code/...` -> `...`).
   - a `.py` or `.ipynb` file: copied.
2. Notebooks (`notebooks`) are turned into `<stem>.py` (unless that file exists next to them): code cells
   in order, each after a `# --- cell N ---` line (N counts all cells, markdown included, as
   Jupyter shows them); line magics, shell escapes (`!pip ...`, `x = !ls`), `get_ipython()`
   lines and help lines (`obj?`) become `pass  # removed: ...` (or a comment at top level);
   cells starting with a cell magic (`%%time`, `%%capture`) are dropped, except that
   `%%writefile name.py` cells are written out as that file (relative paths only), since other
   cells then import it. Notebooks are converted even next to `.py` files (a course `utils.py`
   plus the student's notebook is common); an unreadable notebook is a SubmissionError when
   it is the only code, otherwise it is skipped with a note.
3. A submission whose top folder has `__init__.py` is a package (`imports.nest_package`): it is moved into
   `dest/<its folder name>/` so that its relative imports work.
4. The top-level filter runs on every `.py` file (see `toplevel.filter_source`): imports, definitions,
   docstrings and simple constants stay; everything else (training, logging, I/O, `if
   __name__ == "__main__":`) is blanked out line by line, so line numbers stay the same.
5. Import roots and module names (see `imports.plan_imports`):
   - "." (the prepared folder) always comes first in `sys_path`.
   - A file in a package (a chain of folders with `__init__.py`) is named from the topmost
     package's parent, which becomes a root: `src/seg/model.py` -> root "src", "seg.model".
   - A folder becomes a root too when some file imports a module by plain name that only that
     folder provides (`models/unet.py` doing `from blocks import X` -> root "models"): the
     imports are read statically from the syntax trees.
   - A plain file in "." or in a root is named by its stem (`model.py` -> "model").
     A plain file in another folder is named by its dotted path as a namespace package
     (`models/unet.py` -> "models.unet", which is what `from models.unet import UNet` in the
     student's own code uses) when every part is an identifier and the first part is not a
     module that exists elsewhere (stdlib `code/` would win over a namespace); otherwise its
     folder becomes a root and it is named by its stem.
   - `Module.name == ""` means "load it by path": the name is not an identifier
     (`hw3-final.py`), shadows an installed or standard module (`types.py`, `test.py`), or
     repeats another module's name.
   - Not imported (but still copied and filtered): tests (`test_*.py`, `*_test.py`,
     `tests/`, `test/`, `conftest.py`), `setup.py`, `__main__.py` (unless nothing else is left).
   - Order: sorted by path, each package's `__init__` before its submodules.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from grader.shared.errors import SubmissionError
from grader.submission.archive import copy_file, extract_zip, from_folder
from grader.submission.imports import Module, nest_package, plan_imports
from grader.submission.notebooks import convert_notebooks
from grader.submission.staging import MB, Staging, ZipLimits, size_limit, some, walk_files
from grader.submission.toplevel import filter_file

__all__ = ["Module", "Prepared", "SubmissionError", "ZipLimits", "prepare_submission"]


@dataclass(frozen=True)
class Prepared:
    root: Path
    modules: tuple[Module, ...]
    sys_path: tuple[str, ...]
    skipped: dict[str, list[str]]
    notes: tuple[str, ...]
    freezes: tuple[dict, ...] = ()   # top-level requires_grad statements (grader.submission.freezing)


def prepare_submission(source: Path, dest: Path, limits: ZipLimits = ZipLimits()) -> Prepared:
    """Copy/extract/convert `source` into the empty folder `dest` (created if missing) and say
    how to import it. Raises SubmissionError when the submission cannot be used; `dest` is
    emptied again in that case."""
    source, dest = Path(source), Path(dest)
    if not source.exists():
        raise SubmissionError(f"{source}: no such file or folder")
    source = source.resolve()  # the path the caller names may be a link; links INSIDE are never followed
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise ValueError(f"{dest} must be an empty folder")
    if source.is_dir() and dest.resolve().is_relative_to(source.resolve()):
        raise ValueError(f"{dest} is inside the submission {source}")
    state = Staging(dest, limits)
    try:
        hint = _materialise(source, state)
        return _finish(state, hint)
    except BaseException:
        _empty(dest)
        raise


def _materialise(source: Path, st: Staging) -> str:
    """Put the submission's files in st.dest; return a name for it (used if it is a package)."""
    if source.is_dir():
        return from_folder(source, st)
    suffix = source.suffix.lower()
    if suffix == ".zip":
        return extract_zip(source, st)
    if suffix in (".py", ".ipynb"):
        limit = size_limit(source.name)
        size = source.stat().st_size
        if size > limit:
            raise SubmissionError(f"{source.name} is {size / MB:.0f} MB, more than the {limit / MB:.0f} MB limit "
                                  f"for one file; clear the notebook's outputs or remove embedded data")
        copy_file(source, st.dest / source.name, limit)
        return source.stem
    raise SubmissionError(f"{source.name}: segrade reads a folder, a .zip, a .py or a .ipynb file, not "
                          f"{suffix or 'a file without extension'}; convert or re-pack it as one of those")


def _finish(st: Staging, hint: str) -> Prepared:
    dest = st.dest
    had_py = any(walk_files(dest, ".py"))
    convert_notebooks(st, strict=not had_py)
    if (dest / "__init__.py").is_file():
        nest_package(st, hint)
    rels = sorted(p.relative_to(dest).as_posix() for p in walk_files(dest, ".py"))
    if not rels:
        inner = [p.relative_to(dest).as_posix() for p in walk_files(dest, ".zip")]
        if inner:
            raise SubmissionError(f"the submission holds no .py or .ipynb file, only another zip ({some(inner)}); "
                                  f"submit one zip of the code folder, not a zip inside a zip")
        raise SubmissionError("the submission holds no .py or .ipynb file, so there is no model code to grade")
    trees = {rel: filter_file(dest / rel, rel, st) for rel in rels}
    total = sum(len(v) for v in st.skipped.values())
    if total:
        st.notes.append(f"left out {total} top-level statement(s) in {len(st.skipped)} file(s) "
                        f"(training, logging, I/O; listed per file in `skipped`)")
    modules, sys_path = plan_imports(dest, rels, trees, st)
    return Prepared(root=dest, modules=tuple(modules), sys_path=tuple(sys_path),
                    skipped=dict(st.skipped), notes=tuple(st.notes), freezes=tuple(st.freezes[:1000]))


def _empty(dest: Path) -> None:
    for item in list(dest.iterdir()) if dest.is_dir() else []:
        if item.is_dir() and not item.is_symlink():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)
