"""Reports from saved results: HTML that is one self-contained file, a PDF whose pages hold
the figures, student text that cannot reach out, the class outputs, and `segrade report`.
(The reports of a real graded reference and of a failing submission are in
test_reference_grade.py.)"""

import json
from pathlib import Path

import nbformat
import numpy as np
import pytest

from grader.submission.answers import find_answers
from grader.cli import main
from grader.records.files import read_results
from grader.report.html import html_to_pdf, render_html, render_markdown
from grader.report.outputs import ReportOptions, write_submission_report
from grader.spec import SpecError, load_spec
from report_tools import SUBMISSION_BLUE, external_references, has_colour, pdf_pages, screenshot

DATA = Path(__file__).parent / "data"
HOSTILE_ANSWER = """## FCN discussion
FCN-8s keeps the poles. <script>alert('x')</script> <img src="http://example.com/track.png">
![a plot](http://example.com/plot.png) ![local](/etc/passwd) [my blog](http://example.com/)
"""


def small_results(tmp_path: Path, name: str = "alice", answers: bool = True) -> Path:
    """tests/data/results_small.json as a graded submission folder, with grid samples and an
    answer that tries to load things."""
    folder = tmp_path / name
    folder.mkdir(parents=True)
    data = json.loads((DATA / "results_small.json").read_text())
    data["submission"]["id"] = name
    if answers:
        data["answers"] = {"fcn_discussion": {"source": "answers.md § FCN discussion", "markdown": HOSTILE_ANSWER}}
    (folder / "results.json").write_text(json.dumps(data))
    rng = np.random.default_rng(0)
    samples = {}
    for family, size in (("fcn", 64), ("unet", 64)):
        samples[f"images_{family}"] = rng.integers(0, 255, (2, 3, size, size), dtype=np.uint8)
        samples[f"masks_{family}"] = rng.integers(0, 13, (2, size, size), dtype=np.uint8)
    for v in data["variants"]:
        samples[f"pred_{v['variant_id']}"] = rng.integers(0, 13, (2, 64, 64), dtype=np.uint8)
    np.savez_compressed(folder / "samples.npz", **samples)
    return folder


def test_report_html_is_self_contained_and_student_text_is_inert(tmp_path):
    folder = small_results(tmp_path)
    html = render_html(read_results(folder), dict(np.load(folder / "samples.npz")), load_spec())
    assert external_references(html) == []
    assert "<script>" not in html and "&lt;script&gt;" in html, "raw HTML in an answer must be shown, not run"
    assert "http://example.com/plot.png" not in html and "[image: a plot]" in html
    assert 'href="http://example.com/"' not in html and "my blog" in html
    assert html.count('src="data:image/png;base64,') >= 5  # curves, per-class, grids, comparison charts
    # Recorded under the smoke profile: its comparison (U-Net with and without skips) caveated
    assert html.count("too short to separate the variants") >= 1
    for text in ("alice", "U-Net without skip connections", "still concatenates encoder features",
                 "FCN-8s keeps the poles", "Grader's comments", "Compare FCN-32s, FCN-16s and FCN-8s",
                 "graph built by</td><td>forward-pass recording"):
        assert text in html, text


def test_charts_drawn_in_several_processes_are_the_ones_drawn_in_one(tmp_path, monkeypatch):
    """`segrade check` draws the report's charts in one process per core (issue 18): the
    same report, byte for byte; and a drawing process that dies leaves the drawing to this one."""
    from concurrent.futures.process import BrokenProcessPool

    from grader.report import figures

    folder = small_results(tmp_path)
    results, samples, spec = read_results(folder), dict(np.load(folder / "samples.npz")), load_spec()
    serial = render_html(results, samples, spec)
    assert render_html(results, samples, spec, workers=2) == serial

    class Dying:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            raise BrokenProcessPool("a drawing process was killed")

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(figures, "ProcessPoolExecutor", Dying)
    assert render_html(results, samples, spec, workers=2) == serial


def test_markdown_keeps_structure_but_not_html():
    html = render_markdown("### Q1\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n<b>bold</b> **bold**")
    assert "<h3>Q1</h3>" in html and "<table>" in html and "<strong>bold</strong>" in html
    assert "<b>" not in html


@pytest.mark.slow  # renders a PDF and reads its pages back
def test_pdf_has_pages_with_the_figures(tmp_path):
    folder = small_results(tmp_path)
    paths = write_submission_report(folder, load_spec())
    assert [p.name for p in paths] == ["report.html", "report.pdf", "results_gradescope.json"]
    pages = pdf_pages(folder / "report.pdf", tmp_path)
    # header + score, discussions, then each of the 3 variants on its own pages
    assert 5 <= len(pages) <= 20, len(pages)
    assert sum(has_colour(page, SUBMISSION_BLUE) for page in pages) >= 3, "the charts should be drawn"
    assert all(page.min() < 100 for page in pages), "no blank page"


def test_pdf_renderer_refuses_anything_outside_the_file(tmp_path):
    with pytest.raises(BaseException, match="example.com|Error fetching"):
        html_to_pdf('<img src="http://example.com/x.png">', tmp_path / "x.pdf")
    assert not (tmp_path / "x.pdf").exists()


@pytest.mark.slow  # starts chromium
def test_html_report_in_a_browser(tmp_path):
    folder = small_results(tmp_path)
    write_submission_report(folder, load_spec(), ReportOptions(pdf=False))
    shot = screenshot(folder / "report.html", tmp_path / "shot.png")
    assert shot.shape[0] > 1000 and shot.min() < 50, "the browser drew text"
    assert has_colour(shot, (0x1E, 0x7B, 0x34)), "passed statuses are green"


@pytest.mark.slow  # `segrade report` over a results folder (reports, summary, gradebook, PDFs by default): ~6 s on 2 busy cores
def test_class_outputs_keep_going_past_a_broken_results_folder(tmp_path):
    small_results(tmp_path / "out", "alice")
    small_results(tmp_path / "out", "bob", answers=False)
    broken = tmp_path / "out" / "carol"
    broken.mkdir()
    (broken / "results.json").write_text("{ not json")
    rc = main(["report", str(tmp_path / "out")])
    assert rc == 1, "a folder that cannot be reported on is an error in the exit code"
    out = tmp_path / "out"
    for name in ("summary.html", "gradebook.csv", "index.html", "alice/report.html", "bob/report.html",
                 "alice/results_gradescope.json"):
        assert (out / name).is_file(), name
    summary = (out / "summary.html").read_text()
    assert "carol" in summary and "not graded" in summary and external_references(summary) == []
    assert "unet_noskip" in summary or "U-Net without skip connections" in summary
    gradebook = (out / "gradebook.csv").read_text().splitlines()
    assert len(gradebook) == 4 and gradebook[0].startswith("submission,") and "error" in gradebook[-1]
    index = (out / "index.html").read_text()
    assert 'href="alice/report.html"' in index and 'href="alice/report.pdf"' in index
    assert 'href="summary.html"' in index


def test_report_command_on_one_folder_and_wrong_assignment(tmp_path, capsys):
    folder = small_results(tmp_path)
    assert main(["report", str(folder), "--no-pdf", "--visibility", "visible"]) == 0
    assert json.loads((folder / "results_gradescope.json").read_text())["visibility"] == "visible"
    data = json.loads((folder / "results.json").read_text())
    data["assignment_id"] = "another-course"
    (folder / "results.json").write_text(json.dumps(data))
    assert main(["report", str(folder), "--no-pdf"]) == 2
    assert "graded for assignment 'another-course'" in " ".join(capsys.readouterr().out.split())  # wrapped at any width


def test_answers_found_in_answer_files_and_notebooks_not_in_code_docs(tmp_path):
    spec = load_spec()
    (tmp_path / "answers.md").write_text("# HW3\n## FCN discussion\nFCN-8s wins.\n### Q2\nFine-tuning helps.\n"
                                         "## U-Net without skips\nBlurry edges.\n")
    (tmp_path / "README.md").write_text("## FCN backbone weights\nHow to load VGG16.\n"
                                        "## Attention U-Net discussion\nGates focus on cars.\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Gated attention U-Net"), nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_markdown_cell("## Code notes\nnothing to see")]
    nbformat.write(nb, tmp_path / "hw.ipynb")
    answers = find_answers(tmp_path, spec.rubric)
    assert answers["fcn_discussion"]["markdown"].endswith("Fine-tuning helps."), "sub-sections belong to it"
    assert "VGG16" not in answers["fcn_discussion"]["markdown"], "a README heading needs an answer word"
    assert "Blurry" in answers["unet_noskip_discussion"]["markdown"]
    assert "Gates focus" in answers["unet_attention_discussion"]["markdown"]
    assert answers["unet_attention_discussion"]["source"] == "README.md § Attention U-Net discussion"


def test_notebook_discussion_under_a_section_heading(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# U-Net without skip connections"), nbformat.v4.new_code_cell("1"),
                nbformat.v4.new_markdown_cell("## Discussion\nThin poles vanish.")]
    nbformat.write(nb, tmp_path / "hw.ipynb")
    answers = find_answers(tmp_path, load_spec().rubric)
    assert list(answers) == ["unet_noskip_discussion"]
    assert answers["unet_noskip_discussion"]["source"] == "hw.ipynb (Markdown cells) § Discussion"


def test_spec_comparisons_are_checked(tmp_path):
    from grader.shared.resources import DEFAULT_SPEC

    text = DEFAULT_SPEC.read_text().replace('variants = ["unet", "unet_noskip"]', 'variants = ["unet", "unet_nope"]')
    (tmp_path / "spec.toml").write_text(text)
    with pytest.raises(SpecError, match="unknown variants"):
        load_spec(tmp_path / "spec.toml")
    spec = load_spec()
    assert [c.id for c in spec.comparisons] == ["fcn_strides", "frozen_vs_finetuned", "skips", "attention"]
    assert spec.dataset.thin_classes == ("RoadLine", "Pole", "TrafficSign")


def test_bundled_templates_travel_with_the_package():
    from grader.shared.resources import templates_dir

    names = {p.name for p in templates_dir().iterdir()}
    assert {"report.html.j2", "summary.html.j2", "index.html.j2", "comparison.html.j2", "style.css"} <= names


def test_bold_lead_paragraphs_under_a_discussion_and_results_tables_are_not_answers(tmp_path):
    """Carol answers three prompts as bold-led paragraphs under one "## 5. Discussion"; a
    README's "## Results (test mIoU)" table is not the FCN discussion, though it shares words
    with the prompts."""
    (tmp_path / "README.md").write_text(
        "# HW3: FCN and U-Net\n\n## Results (test mIoU)\n| FCN-8s | 0.85 |\n\n## 5. Discussion\n\n"
        "**FCN-32s vs 16s vs 8s.** Finer fusion keeps poles.\n\n"
        "**U-Net without skip connections.** Blurry edges.\n\n**Gated attention.** Gates focus on cars.\n\n"
        "## Usage\n\n**Attention:** run train.py first.\n")
    answers = find_answers(tmp_path, load_spec().rubric)
    assert {k: v["source"] for k, v in answers.items()} == {
        "fcn_discussion": "README.md § FCN-32s vs 16s vs 8s",
        "unet_noskip_discussion": "README.md § U-Net without skip connections",
        "unet_attention_discussion": "README.md § Gated attention",
    }
    assert answers["unet_attention_discussion"]["markdown"] == "**Gated attention.** Gates focus on cars."


def test_a_report_from_the_record_in_memory_is_the_one_from_its_files(tmp_path):
    """A job renders the record it has just graded, without reading back what it wrote;
    `segrade report` renders from the files. The same report, byte for byte."""
    from dataclasses import replace

    from grader.records.files import write_results
    from grader.records.results import RESULTS_SCHEMA

    folder = small_results(tmp_path)
    samples = dict(np.load(folder / "samples.npz"))
    fresh = replace(read_results(folder), samples=samples, schema=RESULTS_SCHEMA)  # as a grade makes it
    write_results(fresh, tmp_path / "written")
    spec = load_spec()
    assert render_html(fresh, fresh.samples, spec) == render_html(read_results(tmp_path / "written"),
                                                                  dict(np.load(tmp_path / "written" / "samples.npz")),
                                                                  spec)
