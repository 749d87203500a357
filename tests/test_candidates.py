"""Which failed imports matter: read from the source, ranked by the points they cost."""

from grader.submission.candidates import mark_blocking, model_files
from grader.report.terminal import what_to_fix_first
from grader.records.results import CheckResult, CheckStatus, Grade, Submission, SubmissionResult, VariantResult, VariantStatus
from grader.spec import load_spec
from tiny_submission import write_submission

SPEC = load_spec()


def _student(tmp_path):
    return write_submission(tmp_path, {
        "eda.py": "import cv2\nimport matplotlib.pyplot as plt\n\ndef show(mask):\n    plt.imshow(mask)\n",
        "train.py": "import wandb\nfrom models.unet import UNet\n\nmodel = UNet(13)\n",
        "models/__init__.py": "",
        "models/unet.py": "import torch.nn as nn\nfrom .blocks import DoubleConv\n\n"
                          "class Base(nn.Module):\n    pass\n\nclass VanillaUNet(Base):\n    pass\n",
        "models/blocks.py": "import einops\nfrom torch import nn\n\nclass DoubleConv(nn.Sequential):\n    pass\n",
        "models/fcn.py": "from torchvision.models import vgg16\nimport torch\n\nclass FCN8s(torch.nn.Module):\n"
                         "    pass\n",
        "broken.py": "def oops(:\n",
    })


def test_files_that_define_models_and_what_they_import_are_the_ones_that_matter(tmp_path):
    root = _student(tmp_path)
    paths = sorted(str(p.relative_to(root)) for p in root.rglob("*.py"))
    needed = model_files(root, paths, SPEC.model_class_names)
    # unet.py derives from nn.Module through Base; blocks.py is imported by it (relative import);
    # fcn.py through torch.nn.Module; a file that does not parse might define anything.
    assert needed == {"models/unet.py", "models/blocks.py", "models/fcn.py", "broken.py"}


def test_failed_imports_are_marked_blocking_only_where_a_model_depends_on_them(tmp_path):
    root = _student(tmp_path)
    modules = [{"path": "eda.py", "ok": False, "error": "ModuleNotFoundError: No module named 'cv2'"},
               {"path": "train.py", "ok": False, "error": "ModuleNotFoundError: No module named 'wandb'"},
               {"path": "models/blocks.py", "ok": False, "error": "ModuleNotFoundError: No module named 'einops'"},
               {"path": "models/fcn.py", "ok": True, "error": None}]
    marked = {m["path"]: m.get("blocking") for m in mark_blocking(root, modules, SPEC.model_class_names)}
    assert marked == {"eda.py": False, "train.py": False, "models/blocks.py": True, "models/fcn.py": None}


def _result(modules, variants):
    sub = Submission("s", None, "", None, (), (), {}, ())
    return SubmissionResult(sub, SPEC.id, "", "", {}, tuple(modules), tuple(variants), None,
                            Grade(0, 100, 81, 0, len(variants), (), ""), "", "", 0.0)


def _variant(vid, status, check=None, points=0.0, max_points=4.0):
    checks = (check,) if check else ()
    return VariantResult(vid, vid, status, None, checks, points=points, max_points=max_points)


def test_fix_first_ranks_by_points_and_leaves_informational_imports_out():
    eda = {"path": "eda.py", "ok": False, "error": "ModuleNotFoundError: No module named 'cv2'", "blocking": False}
    arch = CheckResult("architecture", CheckStatus.FAIL, "UNetNoSkip still concatenates encoder features")
    frozen = CheckResult("frozen_backbone", CheckStatus.FAIL, "30 of 30 backbone tensors changed")
    result = _result([eda], [_variant("fcn32s_frozen", VariantStatus.FAILED, frozen, 2.5, 4),
                             _variant("unet_noskip", VariantStatus.FAILED, arch, 1.2, 7),
                             _variant("unet", VariantStatus.PASSED, None, 25, 25)])
    lines = what_to_fix_first(result)
    assert lines[0].startswith("unet_noskip (failed, 5.8 points at stake)") and lines[1].startswith("fcn32s_frozen")
    assert not any("eda.py" in line for line in lines)


def test_points_in_the_terminal_are_shown_to_two_decimals():
    """A rubric whose check weights do not divide the marks evenly (30 marks, weights 1+1+1+4):
    7.714285... points and 22.285714... at stake read 7.71 and 22.29, as the summary line rounds."""
    arch = CheckResult("architecture", CheckStatus.FAIL, "LeafSegNet joins no encoder features")
    result = _result([], [_variant("resunet", VariantStatus.FAILED, arch, 54 / 7, 30)])
    assert what_to_fix_first(result)[0].startswith("resunet (failed, 22.29 points at stake)")


def test_a_failure_says_which_course_option_the_class_did_not_take():
    """The spec builds aspp as LeafSegNet(head='aspp'); a class whose option is called `decoder`
    is built with its default: the architecture failure names the option left out."""
    from dataclasses import replace

    from grader.records.view import problem_text

    arch = CheckResult("architecture", CheckStatus.FAIL, "LeafSegNet joins encoder features at 1/2")
    note = "LeafSegNet has no `head` argument: the spec's head='aspp' was left out"
    variant = replace(_variant("aspp", VariantStatus.FAILED, arch), notes=(note,), adapter="contract")
    assert problem_text(variant, headline=True) == (
        f"LeafSegNet joins encoder features at 1/2 ({note}, so this is the class's default model)")
    assert what_to_fix_first(_result([], [variant]))[0].endswith("so this is the class's default model)")
    # DeepLabV3 found by alias is the variant's own class: its lack of `head` is no cause
    assert problem_text(replace(variant, adapter="alias")) == arch.message
    assert problem_text(_variant("aspp", VariantStatus.FAILED, arch)) == arch.message


def test_a_model_file_that_did_not_import_is_ranked_by_the_variants_it_leaves_unbuilt():
    models = {"path": "models.py", "ok": False, "error": "ModuleNotFoundError: No module named 'utils'",
              "blocking": True}
    not_imported = CheckResult("builds", CheckStatus.FAIL, "could not be found because the code did not import",
                               {"import_failed": True})
    small = CheckResult("gradients", CheckStatus.FAIL, "conv.weight gets no gradient")
    result = _result([models], [_variant("unet", VariantStatus.ERROR, not_imported, 0, 25),
                                _variant("fcn8s_frozen", VariantStatus.FAILED, small, 3, 4)])
    lines = what_to_fix_first(result)
    assert lines[0] == ("models.py did not import (ModuleNotFoundError: No module named 'utils'): the variants "
                        "defined in it cannot be built, 25 points at stake")
    assert len(lines) == 2 and lines[1].startswith("fcn8s_frozen (failed, 1 points at stake)")
