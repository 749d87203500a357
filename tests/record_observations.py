"""Record what the real worker observes of each planted defect (tests/planted.py) into
tests/data/observations/<case>.json, for the judgment tests in test_checks.py.

    .venv/bin/python tests/record_observations.py [CASE ...]

Run it after changing a planted source or what the worker reports; review the diff.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from grader import __version__  # noqa: E402
from grader.submission.load import load_submission  # noqa: E402
from grader.grading.pipeline import GradeOptions, probe_request  # noqa: E402
from grader.grading.sandbox import run_worker  # noqa: E402
from grader.spec import load_spec  # noqa: E402
from grader.grading.weights import BackboneWeights  # noqa: E402
from planted import CASES, OBSERVATIONS, source_sha256  # noqa: E402
from tiny_submission import spec_with, write_submission  # noqa: E402


def record(case: str, tmp: Path) -> dict:
    spec = load_spec(spec_with(["unet"], tmp / "spec.toml", architecture=False))
    root = write_submission(tmp / case, {"models.py": CASES[case]})
    submission = load_submission(root, tmp / "load")
    request = probe_request(spec, submission, BackboneWeights(None), None, GradeOptions())
    run = run_worker(submission.root, request)
    return {"source_sha256": source_sha256(case), "segrade": __version__, "observation": run.variants["unet"].to_json()}


def main(cases: list[str]) -> None:
    OBSERVATIONS.mkdir(parents=True, exist_ok=True)
    for case in cases or list(CASES):
        with tempfile.TemporaryDirectory() as tmp:
            data = record(case, Path(tmp))
        (OBSERVATIONS / f"{case}.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        print(f"recorded {case}")


if __name__ == "__main__":
    main(sys.argv[1:])
