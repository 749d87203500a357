"""End to end on CPU: the reference trained in the `smoke` profile with a seed the bands
never saw lands inside its committed bands and earns every automatic mark; a no-skip
U-Net handed in as the vanilla U-Net loses exactly what the rubric says."""

import pytest
from markupsafe import escape

from grader.bands import load_band
from grader.pipeline import GradeOptions, grade_submission
from grader.report import write_results
from grader.report.outputs import write_submission_report
from grader.resources import reference_dir
from grader.results import CheckStatus, VariantStatus
from grader.spec import load_spec
from report_tools import SUBMISSION_BLUE, external_references, has_colour, pdf_pages, screenshot
from tiny_submission import spec_with, write_submission

pytestmark = pytest.mark.slow


def test_reference_with_a_new_seed_lands_in_its_smoke_bands(monkeypatch, tmp_path):
    # A fixed test split makes the test repeatable; the training seed is one the bands never used.
    monkeypatch.setenv("SEGRADE_TEST_SEED", "20261122")
    spec = load_spec()
    result = grade_submission(reference_dir(), spec, GradeOptions(profile="smoke", seed=101))
    outside = []
    for variant in result.variants:
        assert variant.status is VariantStatus.PASSED, (variant.variant_id, variant.checks)
        band = variant.band
        assert band is not None and band.measured, f"no committed smoke band for {variant.variant_id}"
        miou = variant.metrics["miou"]
        if not band.lower <= miou <= band.upper:
            outside.append(f"{variant.variant_id}: {miou:.3f} not in {band.lower:.3f}..{band.upper:.3f}")
    assert not outside, outside
    assert result.grade.total == result.grade.automatic_max == 81

    # Its report, looked at as a person would: every variant's figures drawn, nothing fetched.
    write_results(result, tmp_path)
    write_submission_report(tmp_path, spec)
    html = (tmp_path / "report.html").read_text()
    assert external_references(html) == []
    assert html.count('class="figure grid"') == 10 and "81</span> of 81 automatic points" in html
    pages = pdf_pages(tmp_path / "report.pdf", tmp_path)
    assert 12 <= len(pages) <= 40, len(pages)
    assert sum(has_colour(page, SUBMISSION_BLUE) for page in pages) >= 10
    assert screenshot(tmp_path / "report.html", tmp_path / "shot.png").min() < 50


def test_no_skip_unet_handed_in_as_vanilla_loses_architecture_and_performance(tmp_path):
    spec = load_spec(spec_with(["unet"], tmp_path / "spec.toml"))
    source = (reference_dir() / "unet.py").read_text() + "\n\nUNet = UNetNoSkip  # the student's 'vanilla' U-Net\n"
    root = write_submission(tmp_path / "student", {"unet.py": source})
    result = grade_submission(root, spec, GradeOptions(profile="smoke"))
    (unet,) = result.variants
    assert unet.check("architecture").status is CheckStatus.FAIL
    assert "no long skip" in unet.check("architecture").message or "skip" in unet.check("architecture").message
    assert unet.check("learns").status is CheckStatus.PASS, "it trains fine: it is just not the vanilla U-Net"
    # 25 marks, half performance; the other half over builds, forward_shape, gradients, architecture.
    assert unet.max_points == 25
    assert unet.points == pytest.approx(25 - 12.5 - 12.5 / 4)
    assert unet.points_detail["performance_points"] == 0
    assert load_band(spec.profile("smoke"), "random_init", "unet").measured

    # The failing submission's report says what failed, first, in its own words.
    write_results(result, tmp_path / "out")
    write_submission_report(tmp_path / "out", spec)
    html = (tmp_path / "out" / "report.html").read_text()
    assert f'<div class="problem">{escape(unet.check("architecture").message)}</div>' in html
    assert "last lines of the worker" in html.lower()
    assert pdf_pages(tmp_path / "out" / "report.pdf", tmp_path / "out")
