"""The folder a submission is prepared in, and the rules for what goes into it: size limits,
the folders and files never copied, and small helpers for the notes shown to the user.

Shared by `archive` (folders and zips) and `notebooks`; see `formats` for the whole flow.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

MB = 1024**2
MAX_FILE_BYTES = 50 * MB
MAX_NOTEBOOK_BYTES = 200 * MB
MAX_CHECKPOINT_BYTES = 1024 * MB
MAX_CHECKPOINT_TOTAL = 2048 * MB
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".safetensors", ".ckpt")
CHUNK = 1 * MB

_SKIP_DIRS = {"__pycache__", "__MACOSX", "venv", "site-packages", "node_modules"}  # plus every hidden folder
_SKIP_FILES = {"Thumbs.db", "desktop.ini"}  # plus every hidden file (.DS_Store, ._x, .gitignore, .env)
DRIVE = re.compile(r"^[A-Za-z]:")  # a Windows drive letter: an absolute path in a zip or %%writefile


@dataclass(frozen=True)
class ZipLimits:
    max_total_bytes: int = 200 * 1024**2  # uncompressed
    max_files: int = 5000
    max_ratio: float = 200.0  # compression ratio guard (zip bombs)


@dataclass
class Staging:
    """The folder being prepared, its limits, and what the steps noted or left out on the way."""
    dest: Path
    limits: ZipLimits
    notes: list[str] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)
    freezes: list[dict] = field(default_factory=list)   # top-level requires_grad statements (freezing.py)


def is_checkpoint(name: str) -> bool:
    return name.lower().endswith(CHECKPOINT_SUFFIXES)


def size_limit(name: str) -> int:
    low = name.lower()
    if is_checkpoint(low):
        return MAX_CHECKPOINT_BYTES
    if low.endswith(".ipynb"):
        return MAX_NOTEBOOK_BYTES
    return MAX_FILE_BYTES


def skip_dir_reason(name: str, has: Callable[[str], bool]) -> str | None:
    """Why a folder is not copied, or None. `has(child)` says whether the folder holds that entry."""
    if name in ("venv", ".venv", "site-packages") or has("pyvenv.cfg") or has("conda-meta"):
        return "virtual environment"
    if name.startswith(".") or name in _SKIP_DIRS:
        return "tooling or cache"
    if name == "wandb" and not has("__init__.py"):
        return "wandb run logs"
    return None


def skip_file(name: str) -> bool:
    return name.startswith(".") or name in _SKIP_FILES


def walk_files(root: Path, suffix: str):
    """Regular files under root with this suffix, never following links (dest holds none anyway)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.endswith(suffix) and path.is_file() and not path.is_symlink():
                yield path


def some(items: list[str], n: int = 5) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


def trim(text: str, n: int = 80) -> str:
    text = text.strip()
    return text if len(text) <= n else text[: n - 3] + "..."
