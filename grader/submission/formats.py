"""Turning a submission on disk (folder, zip, script, notebook) into a folder the worker can import.

Runs in the GRADING process, so nothing here imports or executes student code: files are
only copied, unzipped, read as JSON (notebooks, with nbformat) and parsed with `ast`.

    prepared = prepare_submission(Path("inbox/alice"), Path("/tmp/job/submission"))
    prepared.modules   # (Module(path="src/seg/__init__.py", name="seg"), Module("src/seg/model.py", "seg.model"), ...)
    prepared.sys_path  # (".", "src"): put root/"." and root/"src" in front of sys.path, then import by name

What `prepare_submission` does, in order:

1. Materialise the source into `dest`:
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
2. Notebooks are turned into `<stem>.py` (unless that file exists next to them): code cells
   in order, each after a `# --- cell N ---` line (N counts all cells, markdown included, as
   Jupyter shows them); line magics, shell escapes (`!pip ...`, `x = !ls`), `get_ipython()`
   lines and help lines (`obj?`) become `pass  # removed: ...` (or a comment at top level);
   cells starting with a cell magic (`%%time`, `%%capture`) are dropped, except that
   `%%writefile name.py` cells are written out as that file (relative paths only), since other
   cells then import it. Notebooks are converted even next to `.py` files (a course `utils.py`
   plus the student's notebook is common); an unreadable notebook is a SubmissionError when
   it is the only code, otherwise it is skipped with a note.
3. A submission whose top folder has `__init__.py` is a package: it is moved into
   `dest/<its folder name>/` so that its relative imports work.
4. The top-level filter runs on every `.py` file (see `filter_source`): imports, definitions,
   docstrings and simple constants stay; everything else (training, logging, I/O, `if
   __name__ == "__main__":`) is blanked out line by line, so line numbers stay the same.
5. Import roots and module names (see `_plan_imports`):
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

import ast
import builtins
import importlib.machinery
import io
import keyword
import os
import re
import shlex
import shutil
import stat
import sys
import tokenize
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath

from grader.shared.errors import SubmissionError

__all__ = ["Module", "Prepared", "SubmissionError", "ZipLimits", "filter_source", "prepare_submission"]

MB = 1024**2
_MAX_FILE_BYTES = 50 * MB
_MAX_NOTEBOOK_BYTES = 200 * MB
_MAX_CHECKPOINT_BYTES = 1024 * MB
_MAX_CHECKPOINT_TOTAL = 2048 * MB
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".safetensors", ".ckpt")
_RATIO_MIN_BYTES = 1 * MB  # small files of repeated text legitimately compress better than 200:1
_CHUNK = 1 * MB
_MAX_DEPTH = 64  # folder nesting

_SKIP_DIRS = {"__pycache__", "__MACOSX", "venv", "site-packages", "node_modules"}  # plus every hidden folder
_SKIP_FILES = {"Thumbs.db", "desktop.ini"}  # plus every hidden file (.DS_Store, ._x, .gitignore, .env)
_TEST_DIRS = {"tests", "test"}
_NOT_IMPORTED = {"setup.py", "conftest.py", "__main__.py"}
_GRADER_MODULES = {"grader"}  # imported by the worker before student code


@dataclass(frozen=True)
class ZipLimits:
    max_total_bytes: int = 200 * 1024**2  # uncompressed
    max_files: int = 5000
    max_ratio: float = 200.0  # compression ratio guard (zip bombs)


@dataclass(frozen=True)
class Module:
    path: str  # path relative to the prepared folder, posix, e.g. "src/pkg/model.py"
    name: str  # dotted module name to import, e.g. "pkg.model"; "" means: load this file by path
    root: str = "."  # the import root `name` is relative to (a subproject's folder, "src", or ".")


@dataclass(frozen=True)
class Prepared:
    root: Path
    modules: tuple[Module, ...]
    sys_path: tuple[str, ...]
    skipped: dict[str, list[str]]
    notes: tuple[str, ...]


@dataclass
class _State:
    dest: Path
    limits: ZipLimits
    notes: list[str] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)


# =========================================================================== entry point


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
    state = _State(dest, limits)
    try:
        hint = _materialise(source, state)
        return _finish(state, hint)
    except BaseException:
        _empty(dest)
        raise


def _materialise(source: Path, st: _State) -> str:
    """Put the submission's files in st.dest; return a name for it (used if it is a package)."""
    if source.is_dir():
        return _from_folder(source, st)
    suffix = source.suffix.lower()
    if suffix == ".zip":
        return _extract_zip(source, st)
    if suffix in (".py", ".ipynb"):
        limit = _size_limit(source.name)
        size = source.stat().st_size
        if size > limit:
            raise SubmissionError(f"{source.name} is {size / MB:.0f} MB, more than the {limit / MB:.0f} MB limit "
                                  f"for one file; clear the notebook's outputs or remove embedded data")
        _copy_file(source, st.dest / source.name, limit)
        return source.stem
    raise SubmissionError(f"{source.name}: segrade reads a folder, a .zip, a .py or a .ipynb file, not "
                          f"{suffix or 'a file without extension'}; convert or re-pack it as one of those")


def _finish(st: _State, hint: str) -> Prepared:
    dest = st.dest
    had_py = any(_walk_files(dest, ".py"))
    _convert_notebooks(st, strict=not had_py)
    if (dest / "__init__.py").is_file():
        _nest_package(st, hint)
    rels = sorted(p.relative_to(dest).as_posix() for p in _walk_files(dest, ".py"))
    if not rels:
        inner = [p.relative_to(dest).as_posix() for p in _walk_files(dest, ".zip")]
        if inner:
            raise SubmissionError(f"the submission holds no .py or .ipynb file, only another zip ({_some(inner)}); "
                                  f"submit one zip of the code folder, not a zip inside a zip")
        raise SubmissionError("the submission holds no .py or .ipynb file, so there is no model code to grade")
    trees = {rel: _filter_file(dest / rel, rel, st) for rel in rels}
    total = sum(len(v) for v in st.skipped.values())
    if total:
        st.notes.append(f"left out {total} top-level statement(s) in {len(st.skipped)} file(s) "
                        f"(training, logging, I/O; listed per file in `skipped`)")
    modules, sys_path = _plan_imports(dest, rels, trees, st)
    return Prepared(root=dest, modules=tuple(modules), sys_path=tuple(sys_path),
                    skipped=dict(st.skipped), notes=tuple(st.notes))


def _empty(dest: Path) -> None:
    for item in list(dest.iterdir()) if dest.is_dir() else []:
        if item.is_dir() and not item.is_symlink():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)


def _walk_files(root: Path, suffix: str):
    """Regular files under root with this suffix, never following links (dest holds none anyway)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.endswith(suffix) and path.is_file() and not path.is_symlink():
                yield path


# =========================================================================== folders


def _is_checkpoint(name: str) -> bool:
    return name.lower().endswith(_CHECKPOINT_SUFFIXES)


def _size_limit(name: str) -> int:
    low = name.lower()
    if _is_checkpoint(low):
        return _MAX_CHECKPOINT_BYTES
    if low.endswith(".ipynb"):
        return _MAX_NOTEBOOK_BYTES
    return _MAX_FILE_BYTES


def _skip_dir_reason(name: str, has: Callable[[str], bool]) -> str | None:
    """Why a folder is not copied, or None. `has(child)` says whether the folder holds that entry."""
    if name in ("venv", ".venv", "site-packages") or has("pyvenv.cfg") or has("conda-meta"):
        return "virtual environment"
    if name.startswith(".") or name in _SKIP_DIRS:
        return "tooling or cache"
    if name == "wandb" and not has("__init__.py"):
        return "wandb run logs"
    return None


def _skip_file(name: str) -> bool:
    return name.startswith(".") or name in _SKIP_FILES


def _from_folder(source: Path, st: _State) -> str:
    files, links, skipped_dirs, special = [], [], [], []

    def walk(folder: Path, rel: PurePosixPath) -> None:
        if len(rel.parts) > _MAX_DEPTH:
            raise SubmissionError(f"{source}: folders nested more than {_MAX_DEPTH} deep ({rel.as_posix()[:200]}...)")
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise SubmissionError(f"{source}: cannot read {rel.as_posix()}: {exc}") from None
        for entry in entries:
            r = rel / entry.name
            if entry.is_symlink():
                links.append(r.as_posix())
            elif entry.is_dir(follow_symlinks=False):
                child = Path(entry.path)
                why = _skip_dir_reason(entry.name, lambda n, child=child: os.path.lexists(child / n))
                if why:
                    skipped_dirs.append(f"{r.as_posix()}/ ({why})")
                else:
                    walk(child, r)
            elif entry.is_file(follow_symlinks=False):
                if _skip_file(entry.name):
                    continue
                files.append((r.as_posix(), Path(entry.path), entry.stat(follow_symlinks=False).st_size))
                if len(files) > st.limits.max_files:
                    raise SubmissionError(
                        f"{source} holds more than {st.limits.max_files} files; leave datasets, outputs and "
                        f"checkpoints you do not need out of the submission")
            else:
                special.append(r.as_posix())

    walk(source, PurePosixPath())
    if links:
        st.notes.append(f"skipped {len(links)} symbolic link(s), never followed: {_some(links)}")
    if skipped_dirs:
        st.notes.append(f"skipped folders: {_some(skipped_dirs, 12)}")
    if special:
        st.notes.append(f"skipped {len(special)} special file(s) (not regular files): {_some(special)}")

    if not any(rel.endswith((".py", ".ipynb")) for rel, _, _ in files):
        zips = [(rel, path) for rel, path, _ in files if rel.lower().endswith(".zip")]
        if len(zips) == 1:
            st.notes.append(f"{source.name}/ holds no .py or .ipynb file but one zip, {zips[0][0]}: using it")
            return _extract_zip(zips[0][1], st)
        if len(zips) > 1:
            raise SubmissionError(f"{source} holds no .py or .ipynb file and {len(zips)} zip files "
                                  f"({_some([z for z, _ in zips])}); leave only the one to grade")
        raise SubmissionError(f"{source}: no .py, .ipynb or .zip file found, so there is no model code to grade")

    copied, too_big, total, ckpt_total = 0, [], 0, 0
    for rel, path, size in files:
        limit = _size_limit(rel)
        if size > limit or (_is_checkpoint(rel) and ckpt_total + size > _MAX_CHECKPOINT_TOTAL):
            too_big.append(f"{rel} ({size / MB:.0f} MB)")
            continue
        if _is_checkpoint(rel):
            ckpt_total += size
        else:
            total += size
            if total > st.limits.max_total_bytes:
                raise SubmissionError(
                    f"{source} holds more than {st.limits.max_total_bytes / MB:.0f} MB of files (checkpoints not "
                    f"counted); leave datasets and outputs out of the submission")
        target = st.dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy_file(path, target, limit)
        copied += 1
    if too_big:
        st.notes.append(f"skipped {len(too_big)} file(s) over the size limit (50 MB; checkpoints 1 GB): "
                        f"{_some(too_big)}")
    st.notes.append(f"copied {copied} file(s) from {source.name}/")
    return source.resolve().name


def _copy_file(src: Path, dst: Path, limit: int) -> None:
    """Copy one regular file without following a link at `src`, counting the bytes really read."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(src, flags)
    except OSError as exc:
        raise SubmissionError(f"cannot read {src.name}: {exc.strerror or exc}") from None
    written = 0
    with os.fdopen(fd, "rb") as fin, open(dst, "xb") as fout:
        while chunk := fin.read(_CHUNK):
            written += len(chunk)
            if written > limit:
                raise SubmissionError(f"{src.name} is larger than the {limit / MB:.0f} MB limit for one file")
            fout.write(chunk)


def _some(items: list[str], n: int = 5) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


# =========================================================================== zips

_DRIVE = re.compile(r"^[A-Za-z]:")


def _extract_zip(zpath: Path, st: _State) -> str:
    label, lim = zpath.name, st.limits
    try:
        zf = zipfile.ZipFile(zpath)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as exc:
        raise SubmissionError(f"{label} is not a valid zip file: {exc}; create it again (e.g. `zip -r {label} "
                              f"folder/`) or submit the folder itself") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > lim.max_files:
            raise SubmissionError(f"{label} has {len(infos)} entries, more than the limit of {lim.max_files}; "
                                  f"leave datasets and outputs out of the zip")
        entries, links, special = [], [], []
        for info in infos:
            raw = info.filename
            name = raw.replace("\\", "/")
            if name.startswith("/") or _DRIVE.match(name):
                raise SubmissionError(f"{label}: entry {raw!r} has an absolute path; a zip must hold relative "
                                      f"paths (zip the folder from its parent folder: `zip -r {label} folder/`)")
            parts = [p for p in name.split("/") if p not in ("", ".")]
            if ".." in parts:
                raise SubmissionError(f"{label}: entry {raw!r} contains '..' and would be written outside the "
                                      f"submission; re-create the zip from the submission's own folder")
            if info.flag_bits & 0x1:
                raise SubmissionError(f"{label}: entry {raw!r} is encrypted; submit a zip without a password")
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                links.append(name)
                continue
            if name.endswith("/") or stat.S_ISDIR(mode) or not parts:
                continue
            if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
                special.append(name)
                continue
            entries.append((parts, info))

        entries, ignored = _zip_drop_ignored(entries)
        big, total_declared, ckpt_declared = [], 0, 0
        selected = []
        for parts, info in entries:
            size, csize = info.file_size, info.compress_size
            if size > _RATIO_MIN_BYTES and size / max(csize, 1) > lim.max_ratio:
                raise SubmissionError(
                    f"{label}: entry {info.filename!r} expands {size / max(csize, 1):.0f} times ({size} bytes from "
                    f"{csize}), more than the limit of {lim.max_ratio:.0f}; this looks like a zip bomb")
            rel = "/".join(parts)
            ckpt = _is_checkpoint(rel)
            if size > _size_limit(rel) or (ckpt and ckpt_declared + size > _MAX_CHECKPOINT_TOTAL):
                big.append(f"{rel} ({size / MB:.0f} MB)")
                continue
            if ckpt:
                ckpt_declared += size
            else:
                total_declared += size
            selected.append((parts, info))
        if total_declared > lim.max_total_bytes:
            raise SubmissionError(
                f"{label} expands to {total_declared} bytes, more than the limit of {lim.max_total_bytes} "
                f"({lim.max_total_bytes / MB:.0f} MB; checkpoints not counted); leave datasets and outputs out")

        stripped = []
        while selected and all(len(p) > 1 for p, _ in selected) and len({p[0] for p, _ in selected}) == 1:
            stripped.append(selected[0][0][0])
            selected = [(p[1:], info) for p, info in selected]

        _zip_write(zf, label, selected, st)

    st.notes.append(f"extracted {label} ({len(selected)} files)")
    if stripped:
        st.notes.append(f"{label}: used its single top-level folder {'/'.join(stripped)}/ as the submission root")
    if links:
        st.notes.append(f"{label}: skipped {len(links)} symbolic link entr{'y' if len(links) == 1 else 'ies'}, "
                        f"never created: {_some(links)}")
    if special:
        st.notes.append(f"{label}: skipped {len(special)} special entr{'y' if len(special) == 1 else 'ies'}: "
                        f"{_some(special)}")
    if ignored:
        st.notes.append(f"{label}: skipped folders: {_some(ignored, 12)}")
    if big:
        st.notes.append(f"{label}: skipped {len(big)} file(s) over the size limit (50 MB; checkpoints 1 GB): "
                        f"{_some(big)}")
    return stripped[-1] if stripped else zpath.stem


def _zip_drop_ignored(entries):
    """Drop __MACOSX, hidden files/folders, caches, virtual environments and wandb run logs."""
    names = {tuple(p) for p, _ in entries}
    dirs_with: dict[tuple, set[str]] = {}
    for parts in names:
        for i in range(len(parts)):
            dirs_with.setdefault(parts[:i], set()).add(parts[i])
    kept, ignored = [], []
    for parts, info in entries:
        reason = None
        for i, part in enumerate(parts[:-1]):
            reason = _skip_dir_reason(part, lambda n, d=tuple(parts[: i + 1]): n in dirs_with.get(d, ()))
            if reason:
                label = "/".join(parts[: i + 1]) + f"/ ({reason})"
                if label not in ignored:
                    ignored.append(label)
                break
        if reason or _skip_file(parts[-1]):
            continue
        kept.append((parts, info))
    return kept, ignored


def _zip_write(zf: zipfile.ZipFile, label: str, selected, st: _State) -> None:
    lim, dest = st.limits, st.dest.resolve()
    total = 0
    for parts, info in selected:
        target = dest.joinpath(*parts)
        if not target.resolve().is_relative_to(dest):  # cannot happen after the checks above
            raise SubmissionError(f"{label}: entry {info.filename!r} would be written outside the submission")
        ckpt = _is_checkpoint(target.name)
        written = 0
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                while chunk := src.read(_CHUNK):
                    written += len(chunk)
                    if written > info.file_size:
                        raise SubmissionError(f"{label}: entry {info.filename!r} holds more data than its header "
                                              f"says; the zip is damaged or forged")
                    if not ckpt:
                        total += len(chunk)
                        if total > lim.max_total_bytes:
                            raise SubmissionError(f"{label} expands to more than {lim.max_total_bytes} bytes, "
                                                  f"the limit")
                    if written > _RATIO_MIN_BYTES and written / max(info.compress_size, 1) > lim.max_ratio:
                        raise SubmissionError(f"{label}: entry {info.filename!r} expands more than "
                                              f"{lim.max_ratio:.0f} times; this looks like a zip bomb")
                    out.write(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise SubmissionError(f"{label} is not a valid zip file: entry {info.filename!r}: {exc}; create the "
                                  f"zip again or submit the folder itself") from None
        except NotImplementedError as exc:
            raise SubmissionError(f"{label}: entry {info.filename!r} uses a compression method Python cannot "
                                  f"read ({exc}); create the zip again with standard (deflate) compression") from None
        except OSError as exc:
            raise SubmissionError(f"{label}: entry {info.filename!r} could not be written: {exc}") from None


# =========================================================================== notebooks

_ASSIGN_MAGIC = re.compile(r"^\s*[\w.,\s\[\]()*]+=\s*[!%]")
_HELP = re.compile(r"^\s*(\?{1,2}[\w.]+|[\w.]+\?{1,2})\s*$")


def _convert_notebooks(st: _State, *, strict: bool) -> set[str]:
    """Write <stem>.py next to every notebook; return the generated files (relative paths)."""
    generated = set()
    for nb_path in list(_walk_files(st.dest, ".ipynb")):
        rel = nb_path.relative_to(st.dest).as_posix()
        py_path = nb_path.with_suffix(".py")
        if py_path.exists():
            st.notes.append(f"notebook {rel} not converted: {py_path.name} exists next to it")
            continue
        try:
            text, note = _notebook_to_py(nb_path, rel, st)
        except SubmissionError as exc:
            if strict:
                raise
            st.notes.append(f"{exc}; skipped it (the submission has .py files)")
            continue
        py_path.write_text(text, encoding="utf-8")
        generated.add(py_path.relative_to(st.dest).as_posix())
        st.notes.append(note)
    return generated


def _notebook_to_py(path: Path, rel: str, st: _State) -> tuple[str, str]:
    try:
        import nbformat
    except ImportError:  # a missing dependency of segrade, not the student's fault
        raise RuntimeError("reading notebooks needs the `nbformat` package: pip install 'nbformat>=5.9'") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with open(path, encoding="utf-8") as f:
                nb = nbformat.read(f, as_version=4)
        cells = list(nb.cells)
    except Exception as exc:  # noqa: BLE001 -- NotJSONError, UnicodeDecodeError, no "cells" key, ...
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SubmissionError(f"{rel} is not a valid Jupyter notebook ({type(exc).__name__}: {msg[:200]}); open "
                              f"and save it again in Jupyter, or submit the code as a .py file") from None

    out = [f"# Generated by segrade from {path.name}: its code cells, in order, without IPython magics.\n"]
    n_code = magics = cell_magics = 0
    for number, cell in enumerate(cells, 1):
        if cell.get("cell_type") != "code":
            continue
        n_code += 1
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        out.append(f"# --- cell {number} ---\n")
        first = source.lstrip().split("\n", 1)[0]
        if first.startswith("%%"):
            cell_magics += 1
            out.append(f"# cell magic removed: {_trim(first)}\n")
            _writefile(first, source.lstrip().split("\n", 1)[1] if "\n" in source.lstrip() else "",
                       path.parent, rel, st)
            continue
        scan = _LineScanner()
        for line in source.split("\n"):
            line = line.rstrip("\r")
            stripped = line.lstrip()
            at_start = scan.at_statement_start()
            if at_start and (stripped.startswith(("%", "!")) or "get_ipython()" in line
                             or _ASSIGN_MAGIC.match(line) or _HELP.match(line)):
                magics += 1
                indent = line[: len(line) - len(stripped)]
                removed = f"# removed: {_trim(stripped, 60)}"
                line = f"{indent}pass  {removed}" if indent else removed
            else:
                scan.feed(line)
            out.append(line + "\n")
        out.append("\n")
    note = (f"notebook {rel} -> {Path(rel).with_suffix('.py').as_posix()} ({n_code} code cells of {len(cells)}, "
            f"{magics} magic/shell line(s) and {cell_magics} cell magic(s) removed)")
    return "".join(out), note


class _LineScanner:
    """Just enough of Python's lexer to tell whether the next line starts a statement: not
    inside brackets, a triple-quoted string or after a backslash. A line such as
    `       % epoch)` that continues an expression is then not mistaken for a magic."""

    def __init__(self):
        self.depth = 0
        self.triple: str | None = None
        self.continued = False

    def at_statement_start(self) -> bool:
        return self.depth == 0 and self.triple is None and not self.continued

    def feed(self, line: str) -> None:
        i, n = 0, len(line)
        while i < n:
            if self.triple:
                end = line.find(self.triple, i)
                if end < 0:
                    break
                i, self.triple = end + 3, None
                continue
            c = line[i]
            if c == "#":
                n = i
                break
            if c in "\"'":
                if line[i:i + 3] in ('"""', "'''"):
                    self.triple, i = line[i:i + 3], i + 3
                    continue
                j = i + 1
                while j < n and line[j] != c:
                    j += 2 if line[j] == "\\" else 1
                i = j + 1
                continue
            if c in "([{":
                self.depth += 1
            elif c in ")]}":
                self.depth = max(0, self.depth - 1)
            i += 1
        self.continued = self.triple is None and line[:n].rstrip().endswith("\\")


def _writefile(first: str, body: str, folder: Path, rel: str, st: _State) -> None:
    """`%%writefile [-a] name` cells: write the file the notebook would have written."""
    try:
        args = shlex.split(first[2:])
    except ValueError:
        return
    if not args or args[0] not in ("writefile", "file"):
        return
    append = "-a" in args[1:] or "--append" in args[1:]
    names = [a for a in args[1:] if not a.startswith("-")]
    if len(names) != 1:
        return
    name = names[0].replace("\\", "/")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or _DRIVE.match(name) or ".." in parts or not parts or any(_skip_file(p) for p in parts):
        st.notes.append(f"{rel}: did not write `%%writefile {names[0]}` (only relative paths inside the submission)")
        return
    target = folder.joinpath(*parts)
    if target.exists() and not append:
        st.notes.append(f"{rel}: `%%writefile {name}` not applied: the submission has its own {name}")
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "a" if append else "w", encoding="utf-8") as f:
        f.write(body if body.endswith("\n") or not body else body + "\n")
    st.notes.append(f"{rel}: wrote {target.relative_to(st.dest).as_posix()} from its `%%writefile` cell")


def _trim(text: str, n: int = 80) -> str:
    text = text.strip()
    return text if len(text) <= n else text[: n - 3] + "..."


# =========================================================================== top-level filter

# Calls allowed in kept top-level assignments, by canonical dotted name (import aliases
# resolved: `nn` from `import torch.nn as nn` is torch.nn). Pure or trivially cheap.
_ALLOWED_CALLS = frozenset({
    "torch.device", "torch.cuda.is_available", "torch.backends.mps.is_available", "torch.cuda.device_count",
    "torch.tensor", "numpy.array", "numpy.asarray",
    "dict", "list", "tuple", "set", "frozenset", "range", "len", "int", "float", "str", "bool", "min", "max",
    "abs", "round", "sum", "any", "all", "enumerate", "zip", "sorted", "reversed",
    "os.path.join", "os.path.dirname", "os.path.basename", "os.path.abspath", "os.path.splitext",
    "os.path.expanduser", "os.environ.get", "os.getenv",
    "Path", "pathlib.Path", "namedtuple", "collections.namedtuple", "OrderedDict", "collections.OrderedDict",
    "TypeVar", "typing.TypeVar", "logging.getLogger", "partial", "functools.partial",
})
# Methods allowed on a receiver that is not a plain name (so never on a module: `requests.get`
# is out), e.g. Path(__file__).resolve().parent, ", ".join(...), torch.tensor([...]).view(...).
_PURE_METHODS = frozenset({
    "resolve", "absolute", "expanduser", "joinpath", "with_suffix", "with_name", "upper", "lower", "title",
    "format", "split", "rsplit", "strip", "rstrip", "lstrip", "replace", "join", "startswith", "endswith",
    "keys", "values", "items", "copy", "view", "reshape", "unsqueeze", "float",
})
_BUILTIN_NAMES = frozenset(dir(builtins))
_MODULE_DUNDERS = frozenset({"__name__", "__file__", "__doc__", "__spec__", "__loader__", "__package__",
                             "__builtins__", "__path__", "__cached__", "__annotations__"})


def filter_source(text: str) -> tuple[str, list[str], list[str]]:
    """Keep only what is safe to run at import; return (new text, skipped entries, notes).

    Raises SyntaxError (and ValueError for null bytes) from ast.parse: the caller decides.
    Skipped statements' lines are blanked, so line numbers stay the same; when a skipped
    statement shares a line with a kept one (`;`), the kept statements are unparsed instead.
    """
    tree = ast.parse(text)
    lines = re.findall(r"[^\n]*\n|[^\n]+$", text)
    flt = _Filter(tree)
    kept, skipped = [], []
    for node in tree.body:
        (kept if flt.keep(node) else skipped).append(node)
    skipped_ids = {id(node) for node in skipped}

    entries, notes = [], []
    keep_lines, skip_lines = set(), set()
    for node in tree.body:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        span = range(first, node.end_lineno + 1)
        if id(node) in skipped_ids:
            skip_lines.update(span)
            segment = ast.get_source_segment(text, node) or lines[first - 1]
            entries.append(f"line {first}: {_trim(segment.split(chr(10), 1)[0])}")
        else:
            keep_lines.update(span)
    if not skipped:
        return text, [], []

    if keep_lines & skip_lines:
        new = ast.unparse(ast.Module(body=kept, type_ignores=[])) + "\n"
        notes.append("a left-out statement shared a line with kept code (`;`), so the file was rewritten "
                     "from its syntax tree: line numbers in errors no longer match the original")
    else:
        for ln in skip_lines:
            line = lines[ln - 1]
            lines[ln - 1] = "\r\n" if line.endswith("\r\n") else "\n" if line.endswith("\n") else ""
        new = "".join(lines)
        try:
            ast.parse(new)
        except SyntaxError:  # should not happen; be safe rather than clever
            new = ast.unparse(ast.Module(body=kept, type_ignores=[])) + "\n"
            notes.append("the file was rewritten from its syntax tree: line numbers no longer match the original")

    dangling = flt.dangling_names(kept, skipped)
    if dangling:
        notes.append("classes refer to names that only left-out statements set (a NameError if that code runs): "
                     + ", ".join(f"{name} (line {line})" for name, line in dangling))
    return new, entries, notes


class _Filter:
    def __init__(self, tree: ast.Module):
        self.aliases: dict[str, str] = {}
        self.star = False
        for node in _module_level(tree.body):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        self.aliases[a.asname] = a.name
                    else:
                        top = a.name.split(".")[0]
                        self.aliases[top] = top
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for a in node.names:
                    if a.name == "*":
                        self.star = True
                    else:
                        self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"
            elif isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
                self.star = True
        self.defined: set[str] = set(_BUILTIN_NAMES | _MODULE_DUNDERS)

    # ---------------------------------------------------------------- statements

    def keep(self, node: ast.stmt) -> bool:
        if _is_main_guard(node):
            return False
        trial = set(self.defined)
        if self._keepable(node, trial):
            self.defined = trial
            return True
        return False

    def _keepable(self, node: ast.stmt, defined: set[str]) -> bool:
        if isinstance(node, ast.Import):
            defined.update(a.asname or a.name.split(".")[0] for a in node.names)
            return True
        if isinstance(node, ast.ImportFrom):
            defined.update(a.asname or a.name for a in node.names if a.name != "*")
            return True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
            return True
        if isinstance(node, ast.Pass):
            return True
        if isinstance(node, ast.Expr):  # docstrings and `...`; not bare names or calls
            return isinstance(node.value, ast.Constant) and (isinstance(node.value.value, str)
                                                             or node.value.value is Ellipsis)
        if isinstance(node, ast.Assign):
            if not all(_name_target(t) for t in node.targets) or not self._simple(node.value, defined):
                return False
            for t in node.targets:
                defined.update(_bound_names(t))
            return True
        if isinstance(node, ast.AnnAssign):
            if not isinstance(node.target, ast.Name) or not self._simple(node.annotation, defined):
                return False
            if node.value is not None:
                if not self._simple(node.value, defined):
                    return False
                defined.add(node.target.id)
            return True
        if isinstance(node, ast.AugAssign):
            return (isinstance(node.target, ast.Name) and (node.target.id in defined or self.star)
                    and self._simple(node.value, defined))
        if isinstance(node, ast.If):
            if _is_main_guard(node) or not self._simple(node.test, defined):
                return False
            return self._branches(defined, node.body, node.orelse)
        if isinstance(node, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            branches = [node.body + node.orelse]
            for handler in node.handlers:
                if handler.type is not None and not self._simple(handler.type, defined):
                    return False
                branches.append(([ast.Assign(targets=[ast.Name(handler.name, ast.Store())],
                                             value=ast.Constant(None))] if handler.name else []) + handler.body)
            return self._branches(defined, *branches, node.finalbody)
        return False

    def _branches(self, defined: set[str], *bodies: list[ast.stmt]) -> bool:
        union = set()
        for body in bodies:
            trial = set(defined)
            if not all(self._keepable(s, trial) for s in body):
                return False
            union |= trial
        defined |= union
        return True

    # ---------------------------------------------------------------- expressions

    def _simple(self, node: ast.AST | None, defined: set[str], bound: frozenset = frozenset()) -> bool:
        if node is None:
            return True
        s = lambda n: self._simple(n, defined, bound)
        if isinstance(node, ast.Constant):
            return True
        if isinstance(node, ast.Name):
            return node.id in bound or node.id in defined or self.star
        if isinstance(node, ast.Attribute):
            return s(node.value)
        if isinstance(node, ast.Subscript):
            return s(node.value) and s(node.slice)
        if isinstance(node, ast.Slice):
            return s(node.lower) and s(node.upper) and s(node.step)
        if isinstance(node, ast.UnaryOp):
            return s(node.operand)
        if isinstance(node, ast.BinOp):
            return s(node.left) and s(node.right)
        if isinstance(node, ast.BoolOp):
            return all(map(s, node.values))
        if isinstance(node, ast.Compare):
            return s(node.left) and all(map(s, node.comparators))
        if isinstance(node, ast.IfExp):
            return s(node.test) and s(node.body) and s(node.orelse)
        if isinstance(node, ast.JoinedStr):
            return all(map(s, node.values))
        if isinstance(node, ast.FormattedValue):
            return s(node.value) and s(node.format_spec)
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return all(map(s, node.elts))
        if isinstance(node, ast.Starred):
            return s(node.value)
        if isinstance(node, ast.Dict):
            return all(map(s, node.keys)) and all(map(s, node.values))
        if isinstance(node, ast.Lambda):  # the body runs only when called
            return all(map(s, node.args.defaults)) and all(map(s, node.args.kw_defaults))
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            inner = set(bound)
            for gen in node.generators:
                if gen.is_async or not self._simple(gen.iter, defined, frozenset(inner)):
                    return False
                inner |= _bound_names(gen.target)
                if not all(self._simple(c, defined, frozenset(inner)) for c in gen.ifs):
                    return False
            parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            return all(self._simple(p, defined, frozenset(inner)) for p in parts)
        if isinstance(node, ast.Call):
            return self._allowed_call(node, defined, bound)
        return False  # await, yield, walrus, ...

    def _allowed_call(self, node: ast.Call, defined: set[str], bound: frozenset) -> bool:
        s = lambda n: self._simple(n, defined, bound)
        if not (all(map(s, node.args)) and all(s(k.value) for k in node.keywords)):
            return False
        dotted = _dotted(node.func)
        if dotted is not None:
            head, _, rest = dotted.partition(".")
            canon = self.aliases.get(head, head) + ("." + rest if rest else "")
            if (canon in _ALLOWED_CALLS or dotted in _ALLOWED_CALLS or _nn_constructor(canon)
                    or _nn_constructor(dotted)):
                return s(node.func)
        if isinstance(node.func, ast.Attribute) and node.func.attr in _PURE_METHODS:
            base = node.func.value
            while isinstance(base, (ast.Attribute, ast.Subscript)):
                base = base.value
            if not isinstance(base, ast.Name):
                return s(node.func.value)
        return False

    # ---------------------------------------------------------------- diagnostics

    def dangling_names(self, kept: list[ast.stmt], skipped: list[ast.stmt]) -> list[tuple[str, int]]:
        """Names that kept classes load but that only skipped statements bind."""
        set_by: dict[str, int] = {}
        for node in skipped:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    set_by.setdefault(sub.id, node.lineno)
        candidates = {n: ln for n, ln in set_by.items() if n not in self.defined}
        if not candidates:
            return []
        used = set()
        for node in kept:
            if isinstance(node, ast.ClassDef):
                used |= _free_loads(node)
        return sorted(((n, ln) for n, ln in candidates.items() if n in used), key=lambda x: x[1])


def _module_level(body):
    """Statements executed at module level, including inside if/try/with/for bodies (not defs)."""
    for node in body:
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for attr in ("body", "orelse", "finalbody"):
            yield from _module_level(getattr(node, attr, []) or [])
        for handler in getattr(node, "handlers", []) or []:
            yield from _module_level(handler.body)


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare) or len(node.test.ops) != 1:
        return False
    sides = [node.test.left, node.test.comparators[0]]
    names = [x for x in sides if isinstance(x, ast.Name) and x.id == "__name__"]
    consts = [x for x in sides if isinstance(x, ast.Constant) and x.value == "__main__"]
    return bool(names and consts)


def _name_target(t: ast.expr) -> bool:
    if isinstance(t, ast.Name):
        return True
    if isinstance(t, (ast.Tuple, ast.List)):
        return all(_name_target(e.value if isinstance(e, ast.Starred) else e) for e in t.elts)
    return False


def _bound_names(t: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}


def _dotted(node: ast.expr) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _nn_constructor(name: str) -> bool:
    """torch.nn.ReLU / nn.ReLU: a capitalised attribute directly under torch.nn."""
    parts = name.split(".")
    return ((parts[:2] == ["torch", "nn"] and len(parts) == 3) or (parts[0] == "nn" and len(parts) == 2)) \
        and parts[-1][:1].isupper()


def _free_loads(cls: ast.ClassDef) -> set[str]:
    """Names a class (body and methods) loads that are not its methods' parameters or locals."""
    loads = set()
    funcs = [n for n in ast.walk(cls) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))]
    local_of = {}
    for f in funcs:
        a = f.args
        params = {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs}
        params |= {x.arg for x in (a.vararg, a.kwarg) if x is not None}
        stores = {n.id for n in ast.walk(f) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        for n in ast.walk(f):
            local_of.setdefault(id(n), set()).update(params | stores)
    for n in ast.walk(cls):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id not in local_of.get(id(n), ()):
            loads.add(n.id)
    return loads


def _filter_file(path: Path, rel: str, st: _State) -> ast.Module | None:
    """Filter one file in place; return the syntax tree of what is kept (None if unparsable)."""
    raw = path.read_bytes()
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
        text = raw.decode(encoding)
    except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
        st.notes.append(f"{rel}: cannot be decoded ({exc}); left as is, so importing it reports that error")
        return None
    try:
        new, entries, notes = filter_source(text)
    except SyntaxError as exc:
        where = f" on line {exc.lineno}" if exc.lineno else ""
        st.notes.append(f"{rel}: SyntaxError{where}: {exc.msg}; left as is, so importing it reports the error")
        return None
    except ValueError as exc:  # null bytes: Python refuses to import it too
        st.notes.append(f"{rel}: {exc}; left as is, so importing it reports the error")
        return None
    except (RecursionError, MemoryError):
        # Could not check it, so it must not run: replace it by an import error.
        path.write_text(f'raise ImportError("segrade could not parse {rel} (too deeply nested)")\n')
        st.notes.append(f"{rel}: too deeply nested to parse; replaced by an ImportError")
        return None
    if entries:
        st.skipped[rel] = entries
        path.write_bytes(new.encode(encoding))
    st.notes.extend(f"{rel}: {n}" for n in notes)
    return ast.parse(new)


# =========================================================================== import plan


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


def _plan_imports(dest: Path, rels: list[str], trees: dict[str, ast.Module | None],
                  st: _State) -> tuple[list[Module], list[str]]:
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
        st.notes.append(f"not imported (tests, setup and entry scripts): {_some(left_out)}")

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
        st.notes.append(f"subprojects with modules of the same name ({_some(shared)}): each is imported with its "
                        "own folder first on sys.path, as when it is run from there")
    return modules, [r.as_posix() for r in roots]


def _nest_package(st: _State, hint: str) -> None:
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
