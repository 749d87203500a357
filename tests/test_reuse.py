"""segrade check's memory (grader.grading.reuse): what a variant depends on in the code
(grader.submission.dependencies, read with ast: unit tests), and the self-check loop through the
real worker on a tiny submission (slow): unchanged variants are reused, edited ones re-run,
--fresh and --variant, and `segrade grade` never trusts a memory found in a submission."""

import json
import re
import shutil

import pytest

from grader.cli import main
from grader.grading.pipeline import GradeOptions, grade_submission
from grader.grading.reuse import FOLDER
from grader.records.files import read_results
from grader.spec import load_spec
from grader.submission.dependencies import code_digest, index_sources
from tiny_submission import spec_with, write_submission

MODELS = '''
import torch.nn as nn

WIDTH = 4


def block(cin, cout):
    return nn.Conv2d(cin, cout, 3, padding=1)


class Gate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, 1, 1)

    def forward(self, x):
        return x * self.conv(x).sigmoid()


class UNet(nn.Module):
    def __init__(self, num_classes, in_channels=3):
        super().__init__()
        self.conv = block(in_channels, num_classes)

    def forward(self, x):
        return self.conv(x)


class UNetNoSkip(nn.Module):
    def __init__(self, num_classes, in_channels=3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, 3, padding=1)
        self.gate = Gate(num_classes)

    def forward(self, x):
        return self.gate(self.conv(x))
'''


def digests(root, edit=None):
    if edit:
        (root / "models.py").write_text(edit((root / "models.py").read_text()))
    index = index_sources(root, {"UNet", "UNetNoSkip"})
    return {name: code_digest(index, {name}) for name in ("UNet", "UNetNoSkip")}


def test_a_variant_depends_on_its_classes_what_they_reach_and_the_module_statements(tmp_path):
    root = write_submission(tmp_path / "s", {"models.py": MODELS, "eda.py": "import cv2\nprint('plots')\n"})
    first = digests(root)
    assert first["UNet"] != first["UNetNoSkip"]
    # Editing one class's forward changes that class only
    edited = digests(root, lambda t: t.replace("return self.gate(self.conv(x))", "return self.conv(x)"))
    assert edited["UNet"] == first["UNet"] and edited["UNetNoSkip"] != first["UNetNoSkip"]
    # A helper class reached by name (Gate) belongs to the class that uses it only
    again = digests(root, lambda t: t.replace("nn.Conv2d(c, 1, 1)", "nn.Conv2d(c, 1, 3, padding=1)"))
    assert again["UNet"] == edited["UNet"] and again["UNetNoSkip"] != edited["UNetNoSkip"]
    # A helper function reached by name (block) belongs to UNet
    third = digests(root, lambda t: t.replace("def block(cin, cout):\n    return nn.Conv2d(cin, cout, 3, padding=1)",
                                              "def block(cin, cout):\n    return nn.Conv2d(cin, cout, 5, padding=2)"))
    assert third["UNet"] != again["UNet"] and third["UNetNoSkip"] == again["UNetNoSkip"]
    # A module-level statement (a constant, an import) can change any model: every variant re-runs
    fourth = digests(root, lambda t: t.replace("WIDTH = 4", "WIDTH = 8"))
    assert fourth["UNet"] != third["UNet"] and fourth["UNetNoSkip"] != third["UNetNoSkip"]
    # A file no model depends on changes nothing; a new model class can change which class builds a variant
    (root / "eda.py").write_text("import cv2\nprint('other plots')\n")
    assert digests(root) == fourth
    (root / "more.py").write_text("import torch.nn as nn\nclass AttentionUNet(nn.Module):\n    pass\n")
    fifth = digests(root)
    assert fifth["UNet"] != fourth["UNet"] and fifth["UNetNoSkip"] != fourth["UNetNoSkip"]


def test_a_class_in_another_file_is_followed_and_an_unknown_root_means_every_model_file(tmp_path):
    root = write_submission(tmp_path / "s", {
        "blocks.py": "import torch.nn as nn\nclass Down(nn.Module):\n    k = 3\n",
        "net.py": "import torch.nn as nn\nfrom blocks import Down\nclass UNet(nn.Module):\n    d = Down\n"
                  "class UNetNoSkip(nn.Module):\n    pass\n"})
    before = digests(root)
    whole = code_digest(index_sources(root, {"UNet"}), None)
    (root / "blocks.py").write_text("import torch.nn as nn\nclass Down(nn.Module):\n    k = 5\n")
    after = digests(root)
    assert after["UNet"] != before["UNet"] and after["UNetNoSkip"] == before["UNetNoSkip"]
    assert code_digest(index_sources(root, {"UNet"}), None) != whole
    # Classes that are not the submission's own (a torchvision model) fall back to every model file
    index = index_sources(root, {"UNet"})
    assert code_digest(index, {"VGG"}) == code_digest(index, None)


@pytest.fixture(scope="module")
def unet_spec(tmp_path_factory):
    """Two U-Nets, no architecture requirements (one-conv models), and a smoke profile cut to
    3 steps on 8 images: what is tested is the loop, not the training."""
    path = spec_with(["unet", "unet_noskip"], tmp_path_factory.mktemp("spec") / "spec.toml", architecture=False)
    head, smoke = path.read_text().split("[profiles.smoke]", 1)
    smoke, tail = smoke.split("[profiles.full]", 1)
    for field, value in {"steps": 3, "train_images": 8, "val_images": 8, "test_images": 8, "eval_every": 3}.items():
        smoke = re.sub(rf"^{field} = .*$", f"{field} = {value}", smoke, count=1, flags=re.M)
    path.write_text(head + "[profiles.smoke]" + smoke + "[profiles.full]" + tail)
    return path


def check(root, out, spec, *extra):
    code = main(["check", str(root), "--out", str(out), "--spec", str(spec), "--no-pdf",
                 *extra])
    data = read_results(out)
    return code, {v.variant_id: v for v in data.variants}, data.environment


@pytest.mark.slow
def test_the_self_check_loop_reuses_unchanged_variants_and_reruns_edited_ones(tmp_path, unet_spec, capsys):
    root = write_submission(tmp_path / "student", {"models.py": MODELS})
    out = tmp_path / "out"
    _, first, env = check(root, out, unet_spec)
    assert env["reused_variants"] == [] and all(v.reused_since is None for v in first.values())
    assert first["unet"].miou is not None

    _, second, env = check(root, out, unet_spec)     # nothing changed: nothing runs, not even the worker
    assert env["reused_variants"] == ["unet", "unet_noskip"] and env["worker_seconds"] == 0.0
    assert second["unet"].metrics == first["unet"].metrics and second["unet"].curves == first["unet"].curves
    assert second["unet"].reused_since is not None and second["unet"].points == first["unet"].points
    assert "reused: unchanged since" in capsys.readouterr().out

    (root / "models.py").write_text(MODELS.replace("return self.gate(self.conv(x))", "return self.conv(x) * 2"))
    _, third, env = check(root, out, unet_spec)      # one variant edited: only it runs again
    assert env["reused_variants"] == ["unet"]
    assert third["unet_noskip"].reused_since is None and third["unet"].reused_since == second["unet"].reused_since
    assert third["unet_noskip"].metrics != second["unet_noskip"].metrics

    _, fourth, env = check(root, out, unet_spec, "--fresh", "--variant", "unet_noskip")
    # --fresh ignores what was kept; --variant runs only the variant asked for
    assert env["reused_variants"] == [] and env["worker_seconds"] > 0
    assert list(fourth) == ["unet_noskip"] and env["not_checked"] == ["unet"]
    assert "unet" in json.loads((out / FOLDER / "index.json").read_text())["variants"]   # still kept
    assert "not checked this time (--variant)" in capsys.readouterr().out


@pytest.mark.slow
def test_grade_never_trusts_a_memory_found_in_a_submission(tmp_path, unet_spec):
    """A student who ran `segrade check --out` inside their own folder hands in its memory, or
    forges one: `segrade grade` (and so its Slurm jobs, which run grade_submission with the
    batch's options) checks every variant itself."""
    root = write_submission(tmp_path / "student", {"models.py": MODELS})
    code, _, _ = check(root, root / "mine", unet_spec, "--checks-only")
    index = json.loads((root / "mine" / FOLDER / "index.json").read_text())
    for entry in index["variants"].values():        # forge: every check passes with full marks
        entry["result"]["status"] = "passed"
    (root / "mine" / FOLDER / "index.json").write_text(json.dumps(index))
    shutil.copytree(root / "mine" / FOLDER, root / FOLDER)
    (root / "models.py").write_text(MODELS.replace("return self.conv(x)\n", "return self.conv(x)[:, :, ::2]\n", 1))
    result = grade_submission(root, load_spec(unet_spec), GradeOptions(profile=None))
    assert result.environment["reused_variants"] == []
    assert {v.variant_id: v.status.value for v in result.variants}["unet"] == "failed"
    # The batch's command line has no way to ask for it
    with pytest.raises(SystemExit):
        main(["grade", str(tmp_path), "--out", str(tmp_path / "g"), "--fresh"])


def test_an_unknown_variant_is_named_with_the_known_ones():
    from grader.grading.pipeline import selected_variants

    spec = load_spec()
    assert [v.id for v in selected_variants(spec, GradeOptions(variants=("unet_noskip",)))] == ["unet_noskip"]
    assert len(selected_variants(spec, GradeOptions())) == len(spec.variants)
    with pytest.raises(ValueError, match="unknown variant 'unet_no_skip': this assignment's variants are .*unet_noskip"):
        selected_variants(spec, GradeOptions(variants=("unet_no_skip",)))


def test_a_damaged_memory_is_only_a_slower_run(tmp_path):
    from grader.grading.reuse import CheckMemory

    (tmp_path / FOLDER).mkdir()
    (tmp_path / FOLDER / "index.json").write_text('{"schema": "segrade.check-memory/1", "context": "c", '
                                                  '"variants": {"unet": {"key": 1}}}')
    assert CheckMemory.open(tmp_path, "c").variants == {}
    (tmp_path / FOLDER / "index.json").write_text("not json")
    assert CheckMemory.open(tmp_path, "c").variants == {}
