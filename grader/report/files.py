"""results.json and samples.npz: writing them after a grade, reading them back for a report.

`results.json` is the documented record of a grade (docs/results.md); `samples.npz` holds
the arrays of the prediction grids (not JSON). Both are written atomically so that a grade
killed mid-write never leaves a half file behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from grader.results import RESULTS_SCHEMA, SubmissionResult

READABLE_SCHEMAS = ("segrade.results/2", RESULTS_SCHEMA)


def first_check(variant: dict[str, Any], status: str) -> dict[str, Any] | None:
    """A saved variant's first check with this status ("fail", "warn"): what the reports
    name first. The saved-data twin of VariantResult.first_check."""
    return next((c for c in variant.get("checks", []) if c["status"] == status), None)


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


def write_results(result: SubmissionResult, out_dir: str | Path) -> Path:
    """DIR/results.json, and DIR/samples.npz (the prediction grids' images, labels and
    predictions) when the submission was trained and evaluated."""
    out_dir = Path(out_dir)
    path = write_atomic(out_dir / "results.json", json.dumps(result.to_json(), indent=2, allow_nan=False) + "\n")
    if result.samples:
        tmp = out_dir / "samples.tmp.npz"
        np.savez_compressed(tmp, **result.samples)
        tmp.replace(out_dir / "samples.npz")
    return path


class ResultsError(Exception):
    """A results folder that cannot be reported on; the message says why and what to do."""


def read_results(folder: str | Path) -> dict[str, Any]:
    """The results.json of `folder` as plain data."""
    path = Path(folder) / "results.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{path} does not exist: grade the submission first (segrade check SUBMISSION --out "
                           f"{Path(folder)})") from None
    except ValueError as exc:
        raise ResultsError(f"{path} is not valid JSON ({exc}); grade the submission again") from None
    if data.get("schema") not in READABLE_SCHEMAS:
        raise ResultsError(f"{path} has schema {data.get('schema')!r}; this segrade reads "
                           f"{', '.join(READABLE_SCHEMAS)}: grade the submission again")
    return data


def read_samples(folder: str | Path) -> dict[str, np.ndarray]:
    """The prediction grids' arrays, or {} when the submission was not trained."""
    path = Path(folder) / "samples.npz"
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}
