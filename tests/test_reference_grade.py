"""End to end on CPU: the README's student self-check of the reference, trained in the `smoke`
profile with a seed the bands never saw, lands inside its committed bands and earns every
automatic mark; a no-skip U-Net handed in as the vanilla U-Net fails the architecture check
and its report says so.

The self-check runs once (`self_check`, the costliest thing in the suite) and every test that
only reads its results shares it. It checks and trains two of the ten variants, at the
assignment's own sizes: a VGG16 FCN with skips and a frozen backbone, and the gated-attention
U-Net (the vanilla U-Net's path plus its gates; the vanilla U-Net trains in test_training,
test_batch and test_slurm, and the smoke caveat on comparisons is test_reports'). What the
other eight add is the same path at 2-4x the cost (a fine-tuned VGG16 trains at ~1 s a step
on 2 cores):
`benchmarks/bench_check.py` runs the whole self-check of the reference (ten variants, its
points and phases printed) and `segrade bands` trains all ten for the bands (docs/training.md).
What a variant that is not what it claims loses is judged on plain data in test_score.py, and
the worker's detection of an ignored freeze flag is erin_mistakes' (test_submissions.py)."""

import contextlib
import io
import json
import shutil

import pytest
from markupsafe import escape

from grader.grading.pipeline import GradeOptions, grade_submission
from grader.report import write_results
from grader.report.outputs import write_submission_report
from grader.shared.resources import reference_dir
from grader.records.results import CheckStatus
from grader.spec import load_spec
from report_tools import SUBMISSION_BLUE, external_references, has_colour, pdf_pages, screenshot
from tiny_submission import spec_with, write_submission

CHECKED = ("fcn8s_frozen", "unet_attention")


@pytest.fixture(scope="module")
def self_check(tmp_path_factory):
    """The README's student command, with training, on a copy of the reference:
    `segrade check SUB --seed 101` (a seed the bands never used). Its exit code, what it
    printed (as a log, not a terminal: the plain progress lines), its folder and the spec (the
    assignment cut to CHECKED)."""
    from grader.cli import main

    tmp = tmp_path_factory.mktemp("self_check")
    submission = tmp / "my_submission"
    shutil.copytree(reference_dir(), submission, ignore=shutil.ignore_patterns("bands", "__pycache__"))
    spec = spec_with(list(CHECKED), tmp / "spec.toml")   # the assignment's sizes and architecture rules
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed):
        mp.delenv("SEGRADE_VGG16_WEIGHTS", raising=False)   # offline: no ImageNet weights anywhere
        mp.setenv("TORCH_HOME", str(tmp / "no_weights_here"))
        code = main(["check", str(submission), "--spec", str(spec), "--profile", "smoke", "--device", "cpu",
                     "--seed", "101", "--no-pdf"])
    folder = tmp / "my_submission_segrade"
    return code, printed.getvalue(), folder, json.loads((folder / "results.json").read_text()), load_spec(spec)


@pytest.mark.slow  # the self-check: two variants built, checked and trained
def test_self_check_of_the_reference_scores_every_variant_in_its_smoke_bands(self_check, tmp_path):
    """`segrade check SUB` scores on the public validation split, every variant's performance
    against the shipped band, labelled val; the reference lands inside the bands."""
    code, printed, folder, data, spec = self_check
    out = " ".join(printed.split())
    assert code == 0, out
    assert data["environment"]["evaluation_split"] == "val"
    outside = []
    for variant in data["variants"]:
        assert variant["status"] == "passed", (variant["variant_id"], variant["checks"])
        detail, band = variant["points_detail"], variant["band"]
        assert band and band["measured"] and not band.get("refusal"), (variant["variant_id"], band)
        assert detail["performance_points"] is not None, detail
        assert detail["performance"].startswith("val mIoU "), detail["performance"]
        miou = variant["metrics"]["miou"]
        if not band["lower"] <= miou <= band["upper"]:
            outside.append(f"{variant['variant_id']}: {miou:.3f} not in {band['lower']:.3f}..{band['upper']:.3f}")
    assert not outside, outside
    # The frozen backbone was compared through the whole standardised training, not only the check's steps.
    frozen = next(c for v in data["variants"] for c in v["checks"] if c["id"] == "frozen_backbone")
    assert "bit-identical, while the head trained, and stayed so through the standardised training" in frozen["message"]
    checks_only_total = sum(v["points_detail"]["checks_max"] for v in data["variants"])
    automatic = sum(v["max_points"] for v in data["variants"])
    assert [v["variant_id"] for v in data["variants"]] == list(CHECKED)
    # The FCN item's 24 marks fall on its one variant here: 24 + 20, half of each for checks.
    assert data["total"] == automatic == 44 > checks_only_total == pytest.approx(22)
    assert "performance not scored" not in out and "Automatic points: 44 of 44" in out
    assert "val mIoU" in out and "test mIoU" not in out

    # Its report, looked at as a person would: every variant's figures drawn, nothing fetched,
    # no figure called a test figure.
    write_submission_report(folder, spec)
    html = (folder / "report.html").read_text()
    assert external_references(html) == []
    assert html.count('class="figure grid"') == len(CHECKED) and "44</span> of 44 automatic points" in html
    in_prompts = sum(p.count("test mIoU") for item in spec.rubric for p in item.prompts)  # the course's words
    assert html.count("test mIoU") == in_prompts and "Test IoU" not in html
    pages = pdf_pages(folder / "report.pdf", tmp_path)
    assert 4 <= len(pages) <= 20, len(pages)
    assert sum(has_colour(page, SUBMISSION_BLUE) for page in pages) >= len(CHECKED)
    assert screenshot(folder / "report.html", tmp_path / "shot.png").min() < 50


@pytest.mark.slow  # the self-check: two variants built, checked and trained
def test_the_self_check_shows_its_progress_variant_by_variant(self_check):
    """Not a terminal here, so plain lines: one per variant and phase, with the training
    step, the elapsed time and an estimate of what is left (issue 18)."""
    _, printed, _, data, _ = self_check
    lines = printed.splitlines()
    assert lines[0].startswith("segrade: checking, training and evaluating every variant of ")
    for k, variant in enumerate(data["variants"], start=1):
        vid = variant["variant_id"]
        for what in ("building", "running the checks", "training step 0/30",
                     "evaluating the trained model"):
            assert any(f"] variant {k} of {len(CHECKED)}, {vid}: {what}" in line for line in lines), (vid, what)
    assert any("s left)" in line for line in lines) and lines.index(next(x for x in lines if "] done" in x)) > 10


@pytest.mark.slow  # the self-check: two variants built, checked and trained
def test_every_reference_variant_is_what_the_spec_describes(self_check):
    """Built from the reference's own classes with the contract's arguments; the parameter
    counts of the assignment; the architecture graph from torch.export inside the sandbox.
    (Every reference class's own facts, all ten, are test_reference_models.py's.)"""
    _, _, _, results, _ = self_check
    variants = {v["variant_id"]: v for v in results["variants"]}
    assert set(variants) == set(CHECKED)
    params = {vid: v["figures"]["parameters"] for vid, v in variants.items()}
    assert abs(params["unet_attention"]["total"] - 31.4e6) / 31.4e6 < 0.02
    frozen = params["fcn8s_frozen"]
    assert frozen["total"] > 130e6 and frozen["trainable"] < 1e6  # only score layers and upsampling train
    assert variants["fcn8s_frozen"]["mapping"] == (
        "FCN8s ← FCN8s(num_classes=13, freeze_backbone=True, pretrained=False) from fcn.py, adapter: contract")
    # Informational figures against the committed reference figures (segrade bands --figures).
    for vid, v in variants.items():
        reference = v["figures"]["reference"]
        assert reference["parameters_ratio"] == 1.0 and reference["flops_ratio"] == 1.0, vid
        # The architecture graph comes from torch.export inside the sandboxed worker (the
        # dispatch recording is only the fallback), and each variant's check time is recorded.
        fingerprint = next(c for c in v["checks"] if c["id"] == "architecture")["details"]["fingerprint"]
        assert fingerprint["method"] == "export" and fingerprint["export_error"] == "", (vid, fingerprint)
        seconds = v["figures"]["check_seconds"]
        assert seconds["total"] >= seconds["architecture"] > 0, (vid, seconds)


@pytest.mark.slow  # the real worker, no training
def test_no_skip_unet_handed_in_as_vanilla_fails_architecture_and_its_report_says_so(tmp_path):
    """The reference's UNetNoSkip handed in as the vanilla U-Net: the architecture check fails
    and the variant loses that check's weighted share; its report says what failed, first, in
    its own words. Checks only: that the variant then also earns no performance marks is a
    judgment on plain data (test_score.py::test_failing_architecture_forfeits_performance_and_
    its_weighted_check), and that such a model trains is not in question."""
    # At 64 px and a quarter of the width: the same graph, a sixteenth of the work (the
    # assignment's own sizes are the self-check's).
    spec = load_spec(spec_with(["unet"], tmp_path / "spec.toml", input_size=64))
    source = (reference_dir() / "unet.py").read_text() + (
        "\n\nclass UNet(UNetNoSkip):  # the student's 'vanilla' U-Net\n"
        "    def __init__(self, num_classes, in_channels=3, base_channels=16):\n"
        "        super().__init__(num_classes, in_channels, base_channels)\n")
    root = write_submission(tmp_path / "student", {"unet.py": source})
    result = grade_submission(root, spec, GradeOptions(profile=None))
    (unet,) = result.variants
    architecture = unet.check("architecture")
    assert architecture.status is CheckStatus.FAIL
    assert "no skip connection" in architecture.message and "1/16" in architecture.message, architecture.message
    # 25 marks, half performance (not scored: checks only); the other half over builds,
    # forward_shape, gradients and architecture, weighted 1, 1, 1 and 3.
    assert unet.max_points == 25 and unet.points_detail["performance_points"] is None
    assert unet.points == pytest.approx(12.5 * 3 / 6)

    # The failing submission's report says what failed, first, in its own words.
    write_results(result, tmp_path / "out")
    write_submission_report(tmp_path / "out", spec)
    html = (tmp_path / "out" / "report.html").read_text()
    assert f'<div class="problem">{escape(architecture.message)}</div>' in html
    assert "last lines of the worker" in html.lower()
    assert pdf_pages(tmp_path / "out" / "report.pdf", tmp_path / "out")
