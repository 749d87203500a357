"""What `segrade check` keeps between runs, so that a student's second self-check re-runs only the
variants whose result can have changed.

Beside its output (`<out>/.segrade-check/`), a self-check keeps each variant's evaluated result
(before scoring: points are recomputed every time) and its prediction grid, under a key made of
everything that decides it: the variant's own code and what it reaches (grader.submission.
dependencies), and the run's context (spec, profile, training seed, data, bands, segrade and
torch versions, device type, mode, backbone start, manifest, the top-level freezing,
limits, evaluation split). An entry
whose key matches is reused; anything else runs again. Only `segrade check` opens one: `segrade
grade` and its Slurm jobs never read a kept result (a submission could carry a forged one).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from grader.records.files import write_atomic
from grader.records.results import VariantResult

FOLDER = ".segrade-check"
SCHEMA = "segrade.check-memory/1"


def digest(value: Any) -> str:
    """A stable digest of plain data."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def file_digest(*paths: Path) -> str:
    """The digest of files' contents (a missing file counts as missing)."""
    h = hashlib.sha256()
    for path in paths:
        h.update(f"\0{path.name}\0".encode())
        h.update(path.read_bytes() if path.is_file() else b"<missing>")
    return h.hexdigest()


@dataclass
class Kept:
    """One variant's result as a previous self-check left it."""

    key: str
    at: str                          # ISO time of the self-check that produced it
    classes: list[str] | None        # the classes its model was built from (the digest's roots)
    result: VariantResult
    grid: Any = None                 # its prediction grid (numpy), or None


@dataclass
class CheckMemory:
    """The kept results of one self-check output folder."""

    folder: Path
    context: str = ""
    run: dict[str, Any] = field(default_factory=dict)      # files digest, modules, environment, log
    variants: dict[str, Kept] = field(default_factory=dict)

    @classmethod
    def open(cls, out: Path, context: str, fresh: bool = False) -> CheckMemory:
        """What was kept in `out` under the same context; nothing when `fresh` or unreadable
        (a damaged memory is only a slower run)."""
        memory = cls(Path(out) / FOLDER, context)
        if fresh:
            return memory
        try:
            index = json.loads((memory.folder / "index.json").read_text())
            if index.get("schema") != SCHEMA or index.get("context") != context:
                return memory
            memory.run = index.get("run") or {}
            for vid, entry in (index.get("variants") or {}).items():
                grid = None
                if entry.get("grid"):
                    import numpy as np

                    with np.load(memory.folder / entry["grid"], allow_pickle=False) as npz:
                        grid = npz["grid"]
                memory.variants[vid] = Kept(entry["key"], entry["at"], entry.get("classes"),
                                            VariantResult.from_json(entry["result"]), grid)
        except (OSError, ValueError, KeyError, TypeError):   # RecordError is a ValueError
            return cls(Path(out) / FOLDER, context)
        return memory

    def reusable(self, variant_id: str, key: str) -> Kept | None:
        kept = self.variants.get(variant_id)
        return kept if kept is not None and kept.key == key else None

    def keep(self, variant_id: str, key: str, at: str, classes: list[str] | None, result: VariantResult,
             grid: Any = None) -> None:
        self.variants[variant_id] = Kept(key, at, classes, replace(result, reused_since=None), grid)

    def save(self) -> None:
        import numpy as np

        self.folder.mkdir(parents=True, exist_ok=True)
        entries = {}
        for vid, kept in self.variants.items():
            grid_file = None
            if kept.grid is not None:
                grid_file = f"{vid}.npz"
                tmp = self.folder / f"{vid}.tmp.npz"
                np.savez_compressed(tmp, grid=kept.grid)
                tmp.replace(self.folder / grid_file)
            entries[vid] = {"key": kept.key, "at": kept.at, "classes": kept.classes, "grid": grid_file,
                            "result": kept.result.to_json()}
        write_atomic(self.folder / "index.json", json.dumps(
            {"schema": SCHEMA, "context": self.context, "run": self.run, "variants": entries}, allow_nan=True))


def since(iso: str) -> str:
    """"14:02" today, else "3 Dec 14:02", in local time."""
    try:
        when = datetime.fromisoformat(iso).astimezone()
    except ValueError:
        return iso
    now = datetime.now().astimezone()
    return when.strftime("%H:%M") if when.date() == now.date() else when.strftime("%-d %b %H:%M")
