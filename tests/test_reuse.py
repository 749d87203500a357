"""segrade check's memory (grader.grading.reuse): what a variant depends on in the code
(grader.submission.dependencies, read with ast: unit tests), and the self-check loop through the
real worker on a tiny submission (slow): unchanged variants are reused, edited ones re-run,
--fresh and --variant, and `segrade grade` never trusts a memory found in a submission."""

import json
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
