"""How many variants of real submissions capture (issue 26), how long it takes, how big they are.

    .venv/bin/python benchmarks/bench_capture_coverage.py [FOLDER_OR_SUBMISSION ...]

Default: the shipped examples (submissions/), the reference (reference/) and the real-submission
fixtures (tests/data/submissions/). Each submission runs through the real worker in the sandbox
with capture on (build, capture, one forward pass; no measurements, no verifier), and the
capture messages are tabulated: captured or not (with torch.export's reason), seconds, size.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from grader.grading.pipeline import GradeOptions, probe_request  # noqa: E402
from grader.grading.sandbox import run_worker  # noqa: E402
from grader.grading.weights import find_vgg16_weights  # noqa: E402
from grader.spec import load_spec  # noqa: E402
from grader.submission.load import SubmissionError, load_submission, read_manifest  # noqa: E402


def submissions(paths: list[Path]) -> list[Path]:
    out = []
    for path in paths:
        if path.is_dir() and not any(path.glob("*.py")) and not any(path.glob("*.ipynb")):
            out += sorted(p for p in path.iterdir() if not p.name.startswith((".", "README")))
        else:
            out.append(path)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path,
                        default=[ROOT / "submissions", ROOT / "reference", ROOT / "tests" / "data" / "submissions"])
    args = parser.parse_args()
    spec = load_spec()
    weights = find_vgg16_weights()
    totals = {"captured": 0, "not captured": 0, "not built": 0}
    for path in submissions(args.paths):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                submission = load_submission(path, Path(tmp) / "load")
                manifest = read_manifest(submission, None, known_ids=[v.id for v in spec.variants])
            except SubmissionError as exc:
                print(f"{path.name}: not loadable: {exc}")
                continue
            request = probe_request(spec, submission, weights, manifest, GradeOptions(profile=None))
            run = run_worker(submission.root, request, captures=Path(tmp) / "programs", **weights.worker_setup())
            for variant in spec.variants:
                capture = run.captures.get(variant.id, {}).get("check")
                observed = run.variants.get(variant.id)
                build = observed.build if observed is not None else None
                built = bool(build and build.ok)
                if capture is None:
                    totals["not built"] += 1
                    why = (observed and (observed.message or (build and build.error) or observed.unresolved)) or "?"
                    status = (observed and observed.worker_status) or ""
                    print(f"{path.name:28s} {variant.id:18s} not built: {status} {why}"[:300])
                elif capture["ok"]:
                    totals["captured"] += 1
                    size = sum(p["bytes"] for m, p in capture["programs"].items()
                               if m == "train" or p["file"] != capture["programs"]["train"]["file"])
                    print(f"{path.name:28s} {variant.id:18s} captured in {capture['seconds']:5.1f} s, "
                          f"{size / 2**20:6.1f} MB{'' if built else ' (its build failed after?)'}")
                else:
                    totals["not captured"] += 1
                    print(f"{path.name:28s} {variant.id:18s} NOT captured: {capture['error']}")
    print(", ".join(f"{k}: {v}" for k, v in totals.items()))


if __name__ == "__main__":
    main()
