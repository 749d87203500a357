"""`segrade check` on small hand-made submissions, through the real worker process.

The models here are a single conv so each test takes about a second; the reference
solution is checked end to end in test_reference_grade.py. A test that asserts on some
variants grades a spec cut to those (`spec_for`, conftest.py); hostile submissions (exits,
time-outs, secrets, links) are test_hostile.py's.
"""

import json

import pytest

from grader.cli import main
from grader.submission.load import SubmissionError, load_submission
from grader.grading.pipeline import GradeOptions, grade_submission
from grader.records.results import CheckStatus, VariantStatus
from grader.grading.checks import check_llm_declaration
from tiny_submission import IN_WORKER, TINY, contract_classes, write_submission

ALL_CLASSES = contract_classes().replace(TINY, "")


def make_submission(tmp_path, files: dict[str, str]):
    return write_submission(tmp_path / "student", files)


def grade(path, spec, *, in_worker: bool = False, **options):
    """Checks only. `in_worker`: for tests of how a submission is loaded and mapped, which the
    worker decides before any measurement: no capture and no verifier (~4 s less a grade),
    what the worker measured trusted."""
    if in_worker:
        options = {**IN_WORKER, **options}
    return grade_submission(path, spec, GradeOptions(**{"profile": None, **options}))


def by_id(result):
    return {v.variant_id: v for v in result.variants}


@pytest.mark.slow  # the real worker
def test_each_failure_is_named(tmp_path, spec_for):
    root = make_submission(tmp_path, {
        "models.py": TINY + """
class FCN32s(Tiny):
    def forward(self, x):
        return self.conv(x)[:, :, ::2, ::2]          # half resolution

class fcn_16s(Tiny):                               # contract name, other spelling
    def forward(self, x):                          # dropout without training=self.training: on in eval too
        return nn.functional.dropout(self.conv(x), 0.5)

class FCN8s(Tiny):
    def forward(self, x):
        return {"main": self.conv(x), "aux": self.conv(x)}

class UNet(Tiny):
    def __init__(self, num_classes, in_channels=3):
        raise ValueError("forgot to finish this")

class UNetNoSkip(Tiny):
    def forward(self, x):
        return self.conv(x) / 0 * 0                # NaN everywhere

class ResidualUNet(Tiny):
    def forward(self, x):
        return self.conv(x).argmax(1, keepdim=True).expand(-1, 13, -1, -1)
""",
        "other.py": "import torch.nn as nn\nclass AttentionUNet(nn.Module):\n    pass\n",
        "more.py": "import torch.nn as nn\nclass Attention_UNet(nn.Module):\n    pass\n",
    })
    spec = spec_for("fcn32s_frozen", "fcn16s_frozen", "fcn8s_finetune", "unet", "unet_noskip", "unet_residual",
                    "unet_attention")
    variants = by_id(grade(root, spec))

    shape = variants["fcn32s_frozen"].check("forward_shape")
    assert shape.status is CheckStatus.FAIL
    assert "output shape 2x13x112x112 for a 2x3x224x224 input; expected 2x13x224x224" in shape.message
    assert variants["fcn16s_frozen"].status is VariantStatus.PASSED   # a warning costs nothing
    logits = variants["fcn16s_frozen"].check("logits")
    assert logits.status is CheckStatus.WARN and "dropout left on in eval mode?" in logits.message, logits.message
    assert variants["fcn16s_frozen"].program["measured_in"] == "captured program"
    assert variants["fcn8s_finetune"].status is VariantStatus.FAILED
    assert "dict" in variants["fcn8s_finetune"].check("forward_shape").message
    assert variants["unet"].status is VariantStatus.ERROR
    build = variants["unet"].check("builds")
    assert build.status is CheckStatus.FAIL and "ValueError: forgot to finish this" in build.message
    assert variants["unet"].check("forward_shape").status is CheckStatus.SKIP
    assert "NaN or infinite" in variants["unet_noskip"].check("forward_shape").message
    assert "dtype is int64" in variants["unet_residual"].check("forward_shape").message
    assert variants["unet_attention"].status is VariantStatus.AMBIGUOUS
    ambiguous = variants["unet_attention"].check("builds").message
    assert "more.py" in ambiguous and "other.py" in ambiguous and "segrade.toml" in ambiguous


@pytest.mark.slow  # the real worker
def test_missing_variants_mention_import_errors(tmp_path, spec_for):
    root = make_submission(tmp_path, {
        "models.py": TINY + "class UNet(Tiny):\n    pass\n",
        "broken.py": "import albumentations_not_installed\n",
    })
    result = grade(root, spec_for("fcn8s_frozen", "unet"), in_worker=True)
    variants = by_id(result)
    assert variants["unet"].status is VariantStatus.PASSED
    missing = variants["fcn8s_frozen"]
    assert missing.status is VariantStatus.MISSING
    assert "FCN8s" in missing.checks[0].message
    assert "broken.py: ModuleNotFoundError" in missing.checks[0].message
    assert [m["ok"] for m in result.modules] == [False, True]


@pytest.mark.slow  # the real worker
def test_student_files_import_each_other_and_from_packages(tmp_path, spec_for):
    root = make_submission(tmp_path, {
        "blocks.py": TINY,
        "models/__init__.py": "",
        "models/unets.py": "from blocks import Tiny\nfrom .helpers import WIDTH\nclass UNet(Tiny):\n    pass\n",
        "models/helpers.py": "WIDTH = 8\n",
        "train.py": "from models.unets import UNet\n",  # re-export: not a second candidate
    })
    variants = by_id(grade(root, spec_for("unet"), in_worker=True))
    assert variants["unet"].status is VariantStatus.PASSED
    assert variants["unet"].mapping.endswith("from models/unets.py, adapter: contract")


@pytest.mark.slow  # the real worker
def test_single_file_and_unreadable_inputs(tmp_path, spec_for):
    single = tmp_path / "hw3.py"
    single.write_text(TINY + ALL_CLASSES)
    result = grade(single, spec_for("unet"), in_worker=True)
    assert result.ok and result.submission.id == "hw3"
    with pytest.raises(SubmissionError, match="no such file"):
        load_submission(tmp_path / "absent", tmp_path / "w1")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(SubmissionError, match="not .txt"):
        load_submission(tmp_path / "notes.txt", tmp_path / "w2")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SubmissionError, match="no .py, .ipynb or .zip file found"):
        load_submission(tmp_path / "empty", tmp_path / "w3")


@pytest.mark.slow  # the real worker
def test_cli_exit_codes_and_results_json(tmp_path, capsys, spec):
    """A complete submission passes every variant of the assignment, through the command a
    student types; what results.json says of it; the exit codes."""
    good = make_submission(tmp_path, {"models.py": TINY + ALL_CLASSES})
    spec_file = str(spec.path)
    assert main(["check", str(good), "--checks-only", "--out", str(tmp_path / "out"), "--spec", spec_file]) == 0
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert data["schema"] == "segrade.results/3"
    assert [v["status"] for v in data["variants"]] == ["passed"] * 10
    assert data["grade"]["passed_variants"] == 10
    variants = {v["variant_id"]: v for v in data["variants"]}
    assert variants["fcn8s_frozen"]["mapping"] == (
        "FCN8s ← FCN8s(num_classes=13, freeze_backbone=True, pretrained=False) from models.py, adapter: contract")
    seen = {vid: next(c for c in v["checks"] if c["id"] == "forward_shape")["details"]["seen"]
            for vid, v in variants.items()}
    assert seen["fcn8s_frozen"] == [2, 13, 224, 224] and seen["unet"] == [2, 13, 256, 256]
    assert data["environment"]["pretrained_backbone"] is False
    assert "pretrained=False" in data["environment"]["backbone_weights"]
    # Checks only: every check's marks (half of each variant's share), no performance marks.
    assert data["total"] == 40.5 and data["max_total"] == 100 and data["grade"]["automatic_max"] == 81
    assert data["variants"][0]["checks"][1] == {
        "id": "forward_shape", "status": "pass",
        "message": "output 2x13x224x224 as expected; also right for 1x3x192x256, 2x3x192x192",
        "details": {"expected": [2, 13, 224, 224], "input_shape": [2, 3, 224, 224], "seen": [2, 13, 224, 224]}}
    assert "10/10 variants pass" in capsys.readouterr().out

    (good / "models.py").write_text(TINY)
    assert main(["check", str(good), "--checks-only", "--spec", spec_file]) == 1
    assert "missing" in capsys.readouterr().out
    # Whichever way it ends, no scratch folder is left behind (it left one in the temporary
    # directory on every exit 2, and would have with the captured programs in it)
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tempfile, "tempdir", str(scratch))
        assert main(["check", str(tmp_path / "absent"), "--checks-only"]) == 2
    assert "no such file" in capsys.readouterr().out
    assert not list(scratch.iterdir())


@pytest.mark.slow  # the real worker, through the CLI
def test_a_model_whose_program_would_be_another_model_is_measured_in_its_own_process(tmp_path, capsys, spec_for):
    """`int(h / 2)` in forward: torch.export would capture the capture size's half as a constant
    (another model at every other size). `segrade check` does not grade that program: the
    variant is measured in the student's process, and the student is told why and what to write."""
    student = make_submission(tmp_path, {"models.py": """
        import torch.nn as nn
        import torch.nn.functional as F

        class UNet(nn.Module):
            def __init__(self, num_classes):
                super().__init__()
                self.enc = nn.Conv2d(3, 8, 3, padding=1)
                self.head = nn.Conv2d(8, num_classes, 1)

            def forward(self, x):
                h, w = x.shape[2], x.shape[3]
                y = F.interpolate(F.relu(self.enc(x)), size=(int(h / 2), int(w / 2)), mode="bilinear")
                return self.head(F.interpolate(y, size=(h, w), mode="bilinear"))
        """})
    out = tmp_path / "out"
    assert main(["check", str(student), "--checks-only", "--spec", str(spec_for("unet").path), "--out", str(out),
                 "--no-pdf"]) == 0
    program = json.loads((out / "results.json").read_text())["variants"][0]["program"]
    assert program["measured_in"] == "student process"
    assert program["reason"].startswith("the captured program computes other logits than the model at 1x3x64x96")
    printed = " ".join(capsys.readouterr().out.split())
    assert "unet: measured in the student's process, not captured: the captured program computes other logits" in printed
    assert "integer arithmetic on sizes (x.shape[2] // 2) is captured as it is" in printed


@pytest.mark.slow  # the real worker
def test_a_manifest_pins_what_the_adapters_cannot_decide(tmp_path, spec_for):
    spec = spec_for("unet", "unet_noskip")   # unet_noskip: what the misspelt id below is told to be
    files = {"a.py": TINY + "class UNetA(Tiny):\n    pass\n", "b.py": TINY + "class UNet(Tiny):\n    pass\n",
             "c.py": TINY + "class UNet(Tiny):\n    depth = 4\n" + ALL_CLASSES.replace("class UNet(Tiny):\n    pass\n\n", "")}
    root = make_submission(tmp_path, files)
    assert by_id(grade(root, spec, in_worker=True))["unet"].status is VariantStatus.AMBIGUOUS
    (root / "segrade.toml").write_text('[variants.unet]\nfactory = "a.py:UNetA"\n')
    unet = by_id(grade(root, spec, in_worker=True))["unet"]
    assert unet.status is VariantStatus.PASSED and unet.adapter.startswith("manifest")
    assert "UNetA(num_classes=13) from a.py" in unet.mapping

    (root / "segrade.toml").write_text('[variants.unet_nosk]\nfactory = "a.py:UNetA"\n')
    with pytest.raises(SubmissionError, match="did you mean 'unet_noskip'"):
        grade(root, spec, in_worker=True)


@pytest.mark.slow  # the real worker
def test_llm_declaration_is_reported_not_scored(tmp_path, spec_for):
    """The judgment on both kinds of file, then one grade: a missing declaration is a warning
    in the results that costs nothing (a declared one, graded whole: test_submissions' erin)."""
    spec = spec_for("unet")
    pattern = spec.policy["llm_declaration_pattern"]
    declared = make_submission(tmp_path, {"models.py": "# Prompts used with ChatGPT: write a U-Net\n" + TINY + ALL_CLASSES})
    check = check_llm_declaration(declared, pattern)
    assert check.id == "llm_declaration" and check.status is CheckStatus.PASS
    assert "models.py line 1" in check.message
    silent = write_submission(tmp_path / "silent", {"models.py": TINY + ALL_CLASSES})
    assert check_llm_declaration(silent, pattern).status is CheckStatus.WARN
    result = grade(silent, spec, in_worker=True)
    assert result.checks[0].status is CheckStatus.WARN and result.ok


ARRIVES_TRAINED = """class UNetNoSkip(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        import torch
        from pathlib import Path
        self.net = small_net(num_classes)
        self.load_state_dict(torch.load(Path(__file__).with_name("trained.pt")))

    def forward(self, x):
        return self.net(x)


def small_net(num_classes):
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=2, dilation=2),
                         nn.ReLU(), nn.Conv2d(32, num_classes, 1))
"""


def _train_at_home(path):
    """What a student does at home: 150 steps on the public train split (6 s; val mIoU ~0.17,
    where the reference's no-skip U-Net scores from 0.068 only trained), saved for the constructor."""
    import torch
    from torch import nn

    from grader.data.sources import open_split
    from grader.measure.train import SegmentationTensors, TrainConfig, train
    from grader.spec import load_spec

    data = open_split(load_spec().dataset, "train", size=64, length=120)
    items = [data[i] for i in range(len(data))]
    images = torch.stack([torch.as_tensor(i[0]) for i in items])
    masks = torch.stack([torch.as_tensor(i[1]) for i in items])
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=2, dilation=2),
                        nn.ReLU(), nn.Conv2d(32, 13, 1))
    train(net, SegmentationTensors(images, masks), TrainConfig(batch_size=8, steps=150, lr=3e-3))
    torch.save({f"net.{k}": v for k, v in net.state_dict().items()}, path)


@pytest.mark.slow  # the real worker, training
def test_self_check_scores_the_public_val_split_and_writes_the_report_next_to_it(tmp_path, capsys):
    """A student's `segrade check`: trained and scored on the public validation split (no
    hidden labels on their machine), what to fix first, the report beside the submission,
    exit 1 when a required check fails."""
    from tiny_submission import spec_with

    spec_file = spec_with(["unet", "unet_noskip", "unet_residual"], tmp_path / "spec.toml", architecture=False)
    # A U-Net whose output is half the input's size: forward_shape fails. A no-skip one that
    # arrives trained (its constructor loads weights trained at home on the public train split):
    # `learns` fails. The residual one is fine.
    root = make_submission(tmp_path, {"models.py": TINY + ALL_CLASSES.replace(
        "class UNet(Tiny):\n    pass\n",
        "class UNet(Tiny):\n    def forward(self, x):\n        return self.conv(x)[:, :, ::2, ::2]\n").replace(
        "class UNetNoSkip(Tiny):\n    pass\n", ARRIVES_TRAINED)})
    _train_at_home(root / "trained.pt")
    code = main(["check", str(root), "--profile", "smoke", "--device", "cpu", "--spec", str(spec_file), "--no-pdf"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "val mIoU" in out and "What to fix first" in out
    first_fix = out.split("What to fix first", 1)[1].splitlines()[1]
    assert "1. unet (failed" in first_fix and "forward_shape" not in first_fix and "x13x" in first_fix
    assert "2. unet_noskip (failed" in out and "before the standardised training" in " ".join(out.split())
    report = root.parent / f"{root.name}_segrade"
    data = json.loads((report / "results.json").read_text())
    assert data["environment"]["evaluation_split"] == "val"
    assert "public validation split" in data["environment"]["test_split"]
    variants = {v["variant_id"]: v for v in data["variants"]}
    assert variants["unet_residual"]["metrics"]["miou"] is not None and variants["unet_residual"]["status"] == "passed"
    noskip = variants["unet_noskip"]
    learns = next(c for c in noskip["checks"] if c["id"] == "learns")
    assert learns["status"] == "fail" and "it starts from trained weights" in learns["message"]
    assert learns["details"]["untrained_miou"] >= learns["details"]["band_lower"]
    assert noskip["points_detail"]["performance_points"] == 0 and noskip["points_detail"]["checks_points"] > 0
    html = (report / "report.html").read_text()
    assert "Self-check: mIoU measured on the public validation split" in html and "val mIoU" in html
    assert not (root / "results.json").exists()  # nothing written inside the submission


@pytest.mark.slow  # the real worker
def test_the_specs_variant_kwargs_reach_the_constructor(tmp_path):
    """`[[variants]] kwargs` (a course's own options) are passed to the contract class."""
    from tiny_submission import spec_with

    spec_file = spec_with(["unet"], tmp_path / "spec.toml", architecture=False)
    text = spec_file.read_text().replace('id = "unet"\n', 'id = "unet"\nkwargs = { extra_classes = -3 }\n', 1)
    spec_file.write_text(text)
    # Builds the right class count only when extra_classes=-3 arrives.
    root = make_submission(tmp_path, {"models.py": TINY + (
        "class UNet(Tiny):\n    def __init__(self, num_classes, extra_classes=0):\n"
        "        super().__init__(num_classes + 3 + extra_classes)\n")})
    assert main(["check", str(root), "--checks-only", "--spec", str(spec_file), "--no-report"]) == 0


@pytest.mark.slow  # the real worker
def test_bands_dir_is_where_check_reads_the_reference_figures(tmp_path, spec_for):
    spec = spec_for("fcn32s_frozen")
    good = make_submission(tmp_path, {"models.py": TINY + ALL_CLASSES})
    common = ["check", str(good), "--checks-only", "--spec", str(spec.path), "--no-pdf"]
    assert main(common + ["--out", str(tmp_path / "default")]) == 0
    assert main(common + ["--out", str(tmp_path / "other"), "--bands", str(tmp_path / "no_bands_here")]) == 0
    default, other = (json.loads((tmp_path / name / "results.json").read_text())["variants"][0]["figures"]
                      for name in ("default", "other"))
    assert default["reference"]["parameters"] > 100e6   # reference/bands/figures.json: the VGG16 FCN-32s
    assert "reference" not in other
