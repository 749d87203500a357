"""Time one submission's report (HTML + PDF) against a baseline measured in the same run.

    .venv/bin/python benchmarks/bench_report.py [--results DIR] [--repeats 3]

DIR is a graded submission's folder (`segrade check SUBMISSION --out DIR`; all ten variants
trained gives the realistic case). Without it, the benchmark builds a ten-variant results
folder from tests/data/results_small.json (each variant a copy of its U-Net entry, 64 px grids),
which has the same number of figures and pages as a real one.

Baseline: WeasyPrint rendering a one-page PDF of plain text, the fixed cost of any PDF. Prints
seconds for the figures and HTML (charts drawn in one process, then in one per core as
`segrade check` does), for the PDF, the total (target: at most 3 s per submission), and the
total as a ratio of the baseline.
"""

import argparse
import copy
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from grader.records.files import read_results, read_samples
from grader.report.html import html_to_pdf, render_html
from grader.spec import load_spec

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "data" / "results_small.json"


def synthetic_results(folder: Path) -> Path:
    spec = load_spec()
    data = json.loads(FIXTURE.read_text())
    unet = next(v for v in data["variants"] if v["variant_id"] == "unet")
    data["variants"] = [dict(copy.deepcopy(unet), variant_id=v.id, title=v.title) for v in spec.variants]
    (folder / "results.json").write_text(json.dumps(data))
    rng = np.random.default_rng(0)
    samples = {}
    for family in spec.families:
        samples[f"images_{family}"] = rng.integers(0, 255, (4, 3, 64, 64), dtype=np.uint8)
        samples[f"masks_{family}"] = rng.integers(0, 13, (4, 64, 64), dtype=np.uint8)
    for v in spec.variants:
        samples[f"pred_{v.id}"] = rng.integers(0, 13, (4, 64, 64), dtype=np.uint8)
    np.savez_compressed(folder / "samples.npz", **samples)
    return folder


def best(fn, repeats):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - started)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    spec = load_spec()
    workers = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = args.results or synthetic_results(tmp)
        results, samples = read_results(folder), read_samples(folder)
        html_to_pdf("<p>warm-up</p>", tmp / "warm.pdf")  # imports and font loading, once
        render_html(results, samples, spec)
        baseline, _ = best(lambda: html_to_pdf("<h1>baseline</h1><p>" + "text " * 200 + "</p>",
                                               tmp / "baseline.pdf"), args.repeats)
        serial_s, _ = best(lambda: render_html(results, samples, spec), args.repeats)
        html_s, html = best(lambda: render_html(results, samples, spec, workers=workers), args.repeats)
        pdf_s, _ = best(lambda: html_to_pdf(html, tmp / "report.pdf"), args.repeats)
    total = html_s + pdf_s
    print(f"results: {folder if args.results else 'synthetic, 10 variants'}; {len(results.variants)} variants, "
          f"HTML {len(html) / 1e6:.1f} MB")
    print(f"baseline (one-page PDF):  {baseline:6.2f} s")
    print(f"figures + HTML, 1 process: {serial_s:5.2f} s")
    print(f"figures + HTML, {workers} processes (what segrade check does): {html_s:5.2f} s")
    print(f"PDF from the HTML:        {pdf_s:6.2f} s")
    print(f"report total:             {total:6.2f} s  (target <= 3 s; {total / baseline:.1f}x the baseline)")


if __name__ == "__main__":
    main()
