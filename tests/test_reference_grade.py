"""End to end on CPU: the README's student self-check of the reference, trained in the `smoke`
profile with a seed the bands never saw, lands inside its committed bands and earns every
automatic mark; a no-skip U-Net handed in as the vanilla U-Net loses exactly what the rubric
says."""

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


def test_self_check_of_the_reference_scores_every_variant_in_its_smoke_bands(tmp_path, capsys):
    """The README's student command, with training: `segrade check SUB` scores on the public
    validation split, every variant's performance against the shipped band, labelled val;
    with a training seed the bands never used, the reference lands inside them."""
    import json
    import shutil

    from grader.cli import main

    spec = load_spec()
    submission = tmp_path / "my_submission"
    shutil.copytree(reference_dir(), submission, ignore=shutil.ignore_patterns("bands", "__pycache__"))
    code = main(["check", str(submission), "--profile", "smoke", "--device", "cpu", "--seed", "101", "--no-pdf"])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0, out
    folder = tmp_path / "my_submission_segrade"
    data = json.loads((folder / "results.json").read_text())
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
    checks_only_total = sum(v["points_detail"]["checks_max"] for v in data["variants"])
    assert data["total"] == 81 > checks_only_total == pytest.approx(40.5)
    assert "performance not scored" not in out and "Automatic points: 81 of 81" in out
    assert "val mIoU" in out and "test mIoU" not in out
    result = data

    # Its report, looked at as a person would: every variant's figures drawn, nothing fetched,
    # the smoke profile's comparisons caveated, no figure called a test figure.
    write_submission_report(folder, spec, results=result)
    html = (folder / "report.html").read_text()
    assert external_references(html) == []
    assert html.count('class="figure grid"') == 10 and "81</span> of 81 automatic points" in html
    assert html.count("too short to separate the variants") >= len(spec.comparisons)
    in_prompts = sum(p.count("test mIoU") for item in spec.rubric for p in item.prompts)  # the course's words
    assert html.count("test mIoU") == in_prompts and "Test IoU" not in html
    pages = pdf_pages(folder / "report.pdf", tmp_path)
    assert 12 <= len(pages) <= 40, len(pages)
    assert sum(has_colour(page, SUBMISSION_BLUE) for page in pages) >= 10
    assert screenshot(folder / "report.html", tmp_path / "shot.png").min() < 50


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
    assert unet.points == pytest.approx(12.5 - 12.5 * 3 / 6)   # weights 1, 1, 1 and 3 for architecture
    assert unet.points_detail["performance_points"] == 0
    assert load_band(spec.profile("smoke"), "random_init", "unet").measured

    # The failing submission's report says what failed, first, in its own words.
    write_results(result, tmp_path / "out")
    write_submission_report(tmp_path / "out", spec)
    html = (tmp_path / "out" / "report.html").read_text()
    assert f'<div class="problem">{escape(unet.check("architecture").message)}</div>' in html
    assert "last lines of the worker" in html.lower()
    assert pdf_pages(tmp_path / "out" / "report.pdf", tmp_path / "out")


IGNORED_FREEZE_FLAG = '''
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import vgg16


class FCN32s(nn.Module):
    def __init__(self, num_classes, freeze_backbone=False, pretrained=True):
        super().__init__()
        self.freeze_backbone = freeze_backbone  # stored, never applied: the backbone trains
        self.backbone = vgg16(weights=None).features
        self.score = nn.Conv2d(512, num_classes, 1)

    def forward(self, x):
        return F.interpolate(self.score(self.backbone(x)), size=x.shape[-2:], mode="bilinear")
'''


def test_a_frozen_variant_whose_backbone_trains_earns_no_performance_marks(tmp_path):
    """The freeze flag is accepted and ignored: with training, the frozen variant is another
    model (a fine-tuned one), so its mIoU earns nothing and the reason says why; the same class
    as the fine-tuned variant is what it claims and is scored."""
    spec = load_spec(spec_with(["fcn32s_frozen", "fcn32s_finetune"], tmp_path / "spec.toml"))
    root = write_submission(tmp_path / "student", {"fcn.py": IGNORED_FREEZE_FLAG})
    result = grade_submission(root, spec, GradeOptions(profile="smoke", device="cpu"))
    frozen, finetune = (next(v for v in result.variants if v.variant_id == vid)
                        for vid in ("fcn32s_frozen", "fcn32s_finetune"))
    assert frozen.check("frozen_backbone").status is CheckStatus.FAIL, frozen.checks
    assert frozen.check("learns").status is CheckStatus.PASS, "it trains: it is just not frozen"
    assert frozen.points_detail["performance_points"] == 0
    assert frozen.points_detail["performance"].startswith(
        "no performance marks: the frozen_backbone check failed, so this model is not FCN-32s, frozen backbone")
    # 24 marks over 2 variants: 12 each, half performance; checks weigh 1+1+1+2+3.
    assert frozen.points == pytest.approx(6 - 6 * 2 / 8)
    assert finetune.status is VariantStatus.PASSED, finetune.checks
    assert finetune.points_detail["performance_points"] is not None, finetune.points_detail
    assert finetune.points_detail["performance"].startswith("test mIoU")
