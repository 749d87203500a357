"""End to end on CPU: the README's student self-check of the reference, trained in the `smoke`
profile with a seed the bands never saw, lands inside its committed bands and earns every
automatic mark; a no-skip U-Net handed in as the vanilla U-Net loses exactly what the rubric
says.

The self-check runs once (`self_check`, the costliest thing in the suite: every variant built,
checked and trained) and every test that only reads its results shares it."""

import contextlib
import io
import json
import shutil

import pytest
from markupsafe import escape

from grader.grading.bands import load_band
from grader.grading.pipeline import GradeOptions, grade_submission
from grader.report import write_results
from grader.report.outputs import write_submission_report
from grader.shared.resources import reference_dir
from grader.records.results import CheckStatus, VariantStatus
from grader.spec import load_spec
from report_tools import SUBMISSION_BLUE, external_references, has_colour, pdf_pages, screenshot
from tiny_submission import spec_with, write_submission

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def self_check(tmp_path_factory):
    """The README's student command, with training, on a copy of the reference:
    `segrade check SUB --seed 101` (a seed the bands never used). Its exit code, what it
    printed (as a log, not a terminal: the plain progress lines) and its folder."""
    from grader.cli import main

    tmp = tmp_path_factory.mktemp("self_check")
    submission = tmp / "my_submission"
    shutil.copytree(reference_dir(), submission, ignore=shutil.ignore_patterns("bands", "__pycache__"))
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed):
        mp.delenv("SEGRADE_VGG16_WEIGHTS", raising=False)   # offline: no ImageNet weights anywhere
        mp.setenv("TORCH_HOME", str(tmp / "no_weights_here"))
        code = main(["check", str(submission), "--profile", "smoke", "--device", "cpu", "--seed", "101", "--no-pdf"])
    folder = tmp / "my_submission_segrade"
    return code, printed.getvalue(), folder, json.loads((folder / "results.json").read_text())


def test_self_check_of_the_reference_scores_every_variant_in_its_smoke_bands(self_check, tmp_path):
    """`segrade check SUB` scores on the public validation split, every variant's performance
    against the shipped band, labelled val; the reference lands inside the bands."""
    code, printed, folder, data = self_check
    spec = load_spec()
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
    checks_only_total = sum(v["points_detail"]["checks_max"] for v in data["variants"])
    assert data["total"] == 81 > checks_only_total == pytest.approx(40.5)
    assert "performance not scored" not in out and "Automatic points: 81 of 81" in out
    assert "val mIoU" in out and "test mIoU" not in out
    result = data

    # Its report, looked at as a person would: every variant's figures drawn, nothing fetched,
    # the smoke profile's comparisons caveated, no figure called a test figure.
    write_submission_report(folder, spec)
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


def test_the_self_check_shows_its_progress_variant_by_variant(self_check):
    """Not a terminal here, so plain lines: one per variant and phase, with the training
    step, the elapsed time and an estimate of what is left (issue 18)."""
    _, printed, _, data = self_check
    lines = printed.splitlines()
    assert lines[0].startswith("segrade: checking, training and evaluating every variant of ")
    for k, variant in enumerate(data["variants"], start=1):
        vid = variant["variant_id"]
        for what in ("building", "running the checks", "training step 0/30",
                     "evaluating the trained model"):
            assert any(f"] variant {k} of 10, {vid}: {what}" in line for line in lines), (vid, what)
    assert any("s left)" in line for line in lines) and lines.index(next(x for x in lines if "] done" in x)) > 10


def test_every_reference_variant_is_what_the_spec_describes(self_check):
    """Built from the reference's own classes with the contract's arguments; the parameter
    counts of the assignment; the architecture graph from torch.export inside the sandbox."""
    _, _, _, results = self_check
    variants = {v["variant_id"]: v for v in results["variants"]}
    assert set(variants) == {"fcn32s_frozen", "fcn16s_frozen", "fcn8s_frozen", "fcn32s_finetune", "fcn16s_finetune",
                             "fcn8s_finetune", "unet", "unet_noskip", "unet_residual", "unet_attention"}
    params = {vid: v["figures"]["parameters"] for vid, v in variants.items()}
    assert abs(params["unet"]["total"] - 31.0e6) / 31.0e6 < 0.02
    for size in ("32s", "16s", "8s"):
        frozen, finetune = params[f"fcn{size}_frozen"], params[f"fcn{size}_finetune"]
        assert frozen["total"] == finetune["total"] > 130e6
        assert finetune["trainable"] == finetune["total"]
        assert frozen["trainable"] < 1e6  # only score layers and upsampling train
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
