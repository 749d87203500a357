"""The records a grade leaves on disk, written and read here only (grading side).

- `results.json`: a graded submission, the typed `grader.records.results.SubmissionResult`
  (schema `segrade.results/3`, docs/results.md), with `samples.npz` beside it (the arrays
  of the prediction grids, not JSON);
- `error.json`: a submission that could not be graded at all (`ErrorRecord`, schema
  `segrade.error/1`), written by `segrade grade` in place of results.json.

Every file is written atomically (a temporary file and a rename), so a grade killed
mid-write never leaves a half file behind. The report package and the batch import
from here; nothing here imports the report package.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.records.results import READABLE_SCHEMAS, RecordError, SubmissionResult

RESULTS_FILE = "results.json"
SAMPLES_FILE = "samples.npz"
ERROR_FILE = "error.json"
ERROR_SCHEMA = "segrade.error/1"


class ResultsError(Exception):
    """A results folder that cannot be reported on; the message says why and what to do."""


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write `data` to `path` through a temporary file and a rename: a killed write never
    leaves a half file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data)
    tmp.replace(path)
    return path


# --------------------------------------------------------------------------- results.json

def write_results(result: SubmissionResult, out_dir: str | Path) -> Path:
    """DIR/results.json, and DIR/samples.npz (the prediction grids' images, labels and
    predictions) when the submission was trained and evaluated."""
    import numpy as np

    out_dir = Path(out_dir)
    path = write_atomic(out_dir / RESULTS_FILE, json.dumps(result.to_json(), indent=2, allow_nan=False) + "\n")
    if result.samples:
        tmp = out_dir / "samples.tmp.npz"
        np.savez_compressed(tmp, **result.samples)
        tmp.replace(out_dir / SAMPLES_FILE)
    return path


def read_results(folder: str | Path) -> SubmissionResult:
    """The results.json of `folder` as the typed record it was written from (schema-checked:
    any of READABLE_SCHEMAS; a file of another shape is a ResultsError that says what to do)."""
    path = Path(folder) / RESULTS_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{path} does not exist: grade the submission first (segrade check SUBMISSION --out "
                           f"{Path(folder)})") from None
    except ValueError as exc:
        raise ResultsError(f"{path} is not valid JSON ({exc}); grade the submission again") from None
    if not isinstance(data, dict) or data.get("schema") not in READABLE_SCHEMAS:
        schema = data.get("schema") if isinstance(data, dict) else None
        raise ResultsError(f"{path} has schema {schema!r}; this segrade reads "
                           f"{', '.join(READABLE_SCHEMAS)}: grade the submission again")
    try:
        return SubmissionResult.from_json(data)
    except RecordError as exc:
        raise ResultsError(f"{path} is not a grade this segrade can read ({exc}): grade the submission again") from None


def read_samples(folder: str | Path) -> dict[str, Any]:
    """The prediction grids' arrays (numpy), or {} when the submission was not trained."""
    import numpy as np

    path = Path(folder) / SAMPLES_FILE
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def results_folders(root: str | Path) -> list[Path]:
    """The submission folders under `root` (each holding a results.json), sorted by name."""
    root = Path(root)
    if (root / RESULTS_FILE).is_file():
        return [root]
    return sorted(p.parent for p in root.glob(f"*/{RESULTS_FILE}"))


# --------------------------------------------------------------------------- error.json

@dataclass(frozen=True)
class ErrorRecord:
    """A submission that could not be graded at all: why, in one message for the student
    and the instructor (`detail`: the grading side's traceback tail, when segrade failed)."""

    submission_id: str
    source: str
    assignment_id: str
    segrade_version: str
    error: str
    detail: str = ""
    # A batch task that ended without committing a grade (grader.batch.backends.slurm): the
    # submission's status (timeout, oom, crashed, error) and Slurm's own account of the task.
    status: str = "error"
    slurm: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        return self.submission_id

    def to_json(self) -> dict[str, Any]:
        data = {"schema": ERROR_SCHEMA, "submission": {"id": self.submission_id, "source": self.source},
                "assignment_id": self.assignment_id, "segrade_version": self.segrade_version,
                "error": self.error, "detail": self.detail[-4000:], "status": self.status}
        if self.slurm is not None:
            data["slurm"] = self.slurm
        return data

    @classmethod
    def from_json(cls, data: Any) -> ErrorRecord:
        """Checked: raises ValueError on anything but an error record."""
        if not isinstance(data, dict) or data.get("schema") != ERROR_SCHEMA:
            raise ValueError(f"not a {ERROR_SCHEMA} record")
        submission = data.get("submission")
        fields = {"submission_id": (submission or {}).get("id") if isinstance(submission, dict) else None,
                  "source": (submission or {}).get("source", "") if isinstance(submission, dict) else None,
                  "assignment_id": data.get("assignment_id"), "segrade_version": data.get("segrade_version", ""),
                  "error": data.get("error"), "detail": data.get("detail", ""), "status": data.get("status", "error")}
        wrong = [k for k, v in fields.items() if not isinstance(v, str)]
        slurm = data.get("slurm")
        if slurm is not None and not (isinstance(slurm, dict) and all(isinstance(k, str) for k in slurm)):
            wrong.append("slurm")
        if wrong:
            raise ValueError(f"{', '.join(wrong)} missing or not text")
        return cls(**fields, slurm=slurm)


def write_error(folder: str | Path, record: ErrorRecord) -> Path:
    return write_atomic(Path(folder) / ERROR_FILE, json.dumps(record.to_json(), indent=2) + "\n")


def read_error(folder: str | Path) -> ErrorRecord:
    path = Path(folder) / ERROR_FILE
    try:
        return ErrorRecord.from_json(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path} cannot be read ({exc}): grade the submission again") from None


def read_record(folder: str | Path) -> SubmissionResult | ErrorRecord:
    """What a graded folder holds: its grade (results.json) or, when it could not be graded,
    why (error.json). ResultsError when neither can be read."""
    if not (Path(folder) / RESULTS_FILE).is_file() and (Path(folder) / ERROR_FILE).is_file():
        return read_error(folder)
    return read_results(folder)


def unreadable(folder: str | Path, why: str) -> ErrorRecord:
    """A stand-in for a folder whose record cannot be read, so that the class outputs give it
    a row with the reason rather than leave it out."""
    return ErrorRecord(Path(folder).name, "", "", "", why)


def error_folders(root: str | Path, only: set[str] | None = None) -> dict[str, str]:
    """Folder name -> why, for the submissions under `root` that could not be graded (an
    error.json and no results.json)."""
    found = {}
    for path in sorted(Path(root).glob(f"*/{ERROR_FILE}")):
        folder = path.parent
        if (folder / RESULTS_FILE).exists() or (only is not None and folder.name not in only):
            continue
        try:
            found[folder.name] = read_error(folder).error
        except ResultsError as exc:
            found[folder.name] = str(exc)
    return found
