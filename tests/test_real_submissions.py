"""Issue 19: the shapes real submissions take, each as a fixture of its own in
tests/data/submissions/ (written for segrade, in the students' style, copied from nowhere), run
through the real worker: the mapping segrade chooses and the verdict of the checks.

| fixture               | class of problem                                                   |
|-----------------------|--------------------------------------------------------------------|
| gina_extra_packages   | cv2/albumentations/sklearn/dotenv/einops imported by model files, a  |
|                       | U-Net derived from segmentation_models_pytorch's (not installed)     |
| hana_enum_variant     | FCN(variant: FCNVariant, num_classes) with an Enum                 |
| ivan_subprojects      | FCN/src and UNet/src, each `from src.model import ...`             |
| jack_abstract_base    | abstract `UNet` base subclassed by VanillaUNet, NoSkipUNet         |
| kate_class_count      | UNet(image_channels=3, output_classes=33)                          |
| liam_own_head         | VGG16 features plus the student's own random fc6/fc7, frozen right |
| mia_no_vgg            | an "FCN8s" with its own VGG-shaped encoder and no VGG              |
| noah_vgg19            | FCN(backbone_name="vgg19")                                         |
| olga_downloads_vgg19  | a constructor that always downloads VGG19 weights                  |
| pete_keras            | a Keras submission                                                 |
| dave_contract         | the contract's names and arguments, in a student's own style       |
| quinn_colab_cuda      | a Colab notebook that hard-codes `cuda:0`: `x.to(device)` in        |
|                       | forward, `self.cuda()` in a constructor                            |
| tess_finetune_names   | the fine-tuning tutorial's feature_extract flag; FCN8s frozen by   |
|                       | default and FCN8s_FT(FCN8s) unfreezing it                          |
| uma_torch_hub         | torch.hub.load('pytorch/vision:v0.10.0', 'vgg16') in a constructor |
| vera_paper_unet       | the U-Net paper's unpadded convolutions, skips center-cropped      |
| rosa_unet_modes       | UNet(mode="vanilla"|"noskip"|"residual"|"attention") and an FCN    |
|                       | family class not named FCN, SegModel(arch="fcn8s", freeze=True)    |
| xena_data_constants   | a notebook whose class defaults (n_classes=NUM_CLASSES, in_ch=IN_CH) |
|                       | are computed from its data by cells segrade leaves out             |
| zoe_vggnet_fcns       | FCN8s(pretrained_net, n_class): a VGGNet class of the submission,  |
|                       | built outside and passed in, frozen by its requires_grad flag      |
| wendy_notebook_freezing | a Colab notebook whose FCN classes have no freeze option: the    |
|                       | backbone frozen in top-level cells (the tutorial's helper, a       |
|                       | parameters() loop, a named_parameters() prefix)                    |

To stay fast, each test asks the worker for the variants it needs only, and for the mapping
alone (`plan_only`) where nothing has to be built.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import textwrap
from pathlib import Path

import pytest

from grader.submission.candidates import mark_blocking
from grader.grading.checks import check_variant
from grader.grading.pipeline import GradeOptions
from grader.records.view import package_notes
from grader.records.results import CheckStatus, VariantStatus
from grader.shared.protocol import Observation
from grader.spec import load_spec
from tiny_submission import small_inputs, worker_run

FIXTURES = Path(__file__).resolve().parent / "data" / "submissions"
# The assignment at 64 px inputs: the same checks on inputs ~15x cheaper for a VGG16.
_SPEC_FOLDER = Path(tempfile.mkdtemp(prefix="segrade-spec-"))
atexit.register(shutil.rmtree, _SPEC_FOLDER, True)   # the spec is read again while grading: kept to the end
SPEC = load_spec(small_inputs(_SPEC_FOLDER / "spec.toml"))
FCN_IDS = ("fcn32s_frozen", "fcn16s_frozen", "fcn8s_frozen", "fcn32s_finetune", "fcn16s_finetune", "fcn8s_finetune")
UNET_IDS = ("unet", "unet_noskip", "unet_residual", "unet_attention")


def observe(path: Path, ids, tmp_path: Path, *, plan_only: bool = False, manifest: str | None = None,
            options: GradeOptions = GradeOptions()):
    """Run the worker on some variants of a submission, offline (no ImageNet weights); return
    the worker run and each variant's judged result."""
    if manifest is not None:
        (tmp_path / "manifest.toml").write_text(textwrap.dedent(manifest))
    run, sub = worker_run(path, SPEC, tmp_path, ids, plan_only=plan_only, options=options,
                          manifest=tmp_path / "manifest.toml" if manifest is not None else None)
    # As the pipeline does: the grading process reads what each failed file defines from its source.
    failed = tuple(m for m in mark_blocking(sub.root, run.modules, SPEC.model_class_names) if not m.get("ok"))
    errors = tuple(f"{m['path']}: {m['error']}" for m in failed)
    results = {vid: check_variant(SPEC.variant(vid), run.variants[vid], SPEC, batch_size=2, import_errors=errors,
                                  imported_any=any(m.get("ok") for m in run.modules), failed_modules=failed)
               for vid in ids}
    return run, results


def explain(results) -> str:
    return "\n".join(f"{vid}: {r.status.value} | {r.mapping} | "
                     + "; ".join(f"{c.id}={c.status.value}: {c.message}" for c in r.checks)
                     for vid, r in results.items())


# --------------------------------------------------------------------------- 1. missing packages


@pytest.mark.slow  # the real worker
def test_missing_packages_are_stood_in_and_fail_only_where_used(tmp_path):
    run, results = observe(FIXTURES / "gina_extra_packages", ("unet", "unet_noskip", "unet_residual"), tmp_path)
    assert all(m["ok"] for m in run.modules), run.modules
    assert set(run.environment["stood_in"]) == {"cv2", "albumentations", "sklearn", "segmentation_models_pytorch"}
    assert run.environment["stubbed"] == ["dotenv"]
    # einops is installed with segrade (model code uses it in forward): UNet passes
    assert results["unet"].status is VariantStatus.PASSED, explain(results)
    # UNetNoSkip really calls cv2 in its constructor: the message names the package and the line
    noskip = results["unet_noskip"]
    assert noskip.status is VariantStatus.ERROR
    message = noskip.check("builds").message
    assert "`cv2.setNumThreads(...)` at model.py line 50 needs the package `cv2` (opencv-python)" in message
    # ResidualUNet derives from the library's U-Net: found as the model (not "nothing builds
    # ResidualUNet") and an error where it is built, naming the package.
    residual = results["unet_residual"]
    assert residual.status is VariantStatus.ERROR and "ResidualUNet" in residual.mapping
    assert ("building ResidualUNet (derived from `segmentation_models_pytorch.Unet`) at model.py line 75 needs the "
            "package `segmentation_models_pytorch` (segmentation-models-pytorch)") in residual.check("builds").message
    notes = package_notes(run.environment)
    assert notes[0].startswith("not installed, stood in") and "cv2 (data.py)" in notes[0]
    assert "dotenv" in notes[1]


# --------------------------------------------------------------------------- 2. Enum variant argument


@pytest.mark.slow  # the real worker
def test_enum_variant_argument_gets_a_member(tmp_path):
    run, results = observe(FIXTURES / "hana_enum_variant", FCN_IDS, tmp_path, plan_only=True)
    for vid in FCN_IDS:
        stride = vid[3:vid.index("s_")]
        mapping = run.variants[vid].mapping
        assert f"FCN(variant=FCNVariant.FCN{stride}S, num_classes=13, freeze_backbone=" in mapping, mapping
        assert "guess" not in " ".join(run.variants[vid].notes)


@pytest.mark.slow  # the real worker
def test_enum_variant_builds_and_passes(tmp_path):
    run, results = observe(FIXTURES / "hana_enum_variant", ("fcn8s_frozen",), tmp_path)
    assert results["fcn8s_frozen"].status is VariantStatus.PASSED, explain(results)
    assert results["fcn8s_frozen"].figures["backbone"] == "VGG16 (from torchvision)"


@pytest.mark.slow  # the real worker
def test_a_manifest_names_an_enum_member(tmp_path):
    run, _ = observe(FIXTURES / "hana_enum_variant", ("fcn16s_frozen", "fcn8s_frozen"), tmp_path, plan_only=True,
                     manifest="""
                         [variants.fcn16s_frozen]
                         factory = "fcn.py:FCN"
                         kwargs = { variant = "FCNVariant.FCN16S", freeze_backbone = true }

                         [variants.fcn8s_frozen]
                         factory = "fcn.py:FCN"
                         kwargs = { variant = "fcn32s" }
                     """)
    assert "FCN(variant=FCNVariant.FCN16S, num_classes=13" in run.variants["fcn16s_frozen"].mapping
    # a value works as well as a name (here deliberately the wrong variant: the manifest wins)
    assert "FCN(variant=FCNVariant.FCN32S" in run.variants["fcn8s_frozen"].mapping


# --------------------------------------------------------------------------- 3. sibling subprojects


@pytest.mark.slow  # the real worker
def test_sibling_subprojects_import_with_their_own_root(tmp_path):
    run, results = observe(FIXTURES / "ivan_subprojects", FCN_IDS + UNET_IDS, tmp_path, plan_only=True)
    assert all(m["ok"] for m in run.modules), run.modules
    sources = {vid: run.variants[vid].mapping.rsplit(" from ", 1)[1].split(",")[0] for vid in FCN_IDS + UNET_IDS}
    assert {sources[v] for v in FCN_IDS} == {"FCN/src/model.py"}
    assert sources["unet"] == sources["unet_noskip"] == "UNet/src/model.py"
    assert sources["unet_residual"] == sources["unet_attention"] == "UNet/src/unet.py"


@pytest.mark.slow  # the real worker
def test_sibling_subproject_builds_and_passes(tmp_path):
    run, results = observe(FIXTURES / "ivan_subprojects", ("unet_attention",), tmp_path)
    assert results["unet_attention"].status is VariantStatus.PASSED, explain(results)


@pytest.mark.slow  # the real worker
def test_a_missing_variant_names_the_file_that_defines_it(tmp_path):
    copy = tmp_path / "ivan"
    shutil.copytree(FIXTURES / "ivan_subprojects", copy)
    (copy / "UNet" / "src" / "blocks.py").unlink()   # forgotten in the hand-in
    run, results = observe(copy, ("unet_residual",), tmp_path, plan_only=True)
    message = results["unet_residual"].check("builds").message
    assert message.startswith("ResidualUNet (unet_residual) was not built: UNet/src/unet.py, which defines "
                              "ResidualUNet, failed to import: ModuleNotFoundError: No module named 'src.blocks'. "
                              "'src.blocks' is neither in the submission nor installed: if it is your own file, hand "
                              "it in (src/blocks.py)"), message
    assert results["unet_residual"].status is VariantStatus.ERROR


# --------------------------------------------------------------------------- 4. abstract base


@pytest.mark.slow  # the real worker
def test_abstract_base_gives_way_to_concrete_classes(tmp_path):
    run, results = observe(FIXTURES / "jack_abstract_base", ("unet", "unet_noskip"), tmp_path)
    assert results["unet"].status is VariantStatus.PASSED, explain(results)
    assert results["unet_noskip"].status is VariantStatus.PASSED, explain(results)
    assert results["unet"].mapping.startswith("UNet ← VanillaUNet(num_classes=13) from unets.py, adapter: alias; "
                                              "UNet in unets.py is an abstract base (its decode() raises "
                                              "NotImplementedError; NoSkipUNet, VanillaUNet implement it)")


@pytest.mark.slow  # the real worker
def test_forward_raising_not_implemented_falls_back_to_the_next_candidate(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "nets.py").write_text(textwrap.dedent("""
        import torch.nn as nn

        class UNet(nn.Module):
            def __init__(self, num_classes=13, kind="base"):
                super().__init__()
                self.kind = kind
                self.conv = nn.Conv2d(3, num_classes, 3, padding=1)

            def forward(self, x):
                if self.kind == "base":
                    raise NotImplementedError("use a subclass")
                return self.conv(x)

        class VanillaUNet(UNet):
            def __init__(self, num_classes=13):
                super().__init__(num_classes, kind="vanilla")
    """))
    run, results = observe(sub, ("unet",), tmp_path)
    mapping = results["unet"].mapping
    assert mapping.startswith("UNet ← VanillaUNet(num_classes=13) from nets.py"), mapping
    assert "UNet in nets.py not used: its forward raised NotImplementedError" in mapping
    assert results["unet"].check("forward_shape").status is CheckStatus.PASS


# --------------------------------------------------------------------------- 5. class count by name


@pytest.mark.slow  # the real worker
def test_class_count_found_from_the_signature(tmp_path):
    run, results = observe(FIXTURES / "kate_class_count", ("unet",), tmp_path)
    assert results["unet"].mapping.startswith("UNet ← UNet(output_classes=13) from unet.py")
    assert results["unet"].status is VariantStatus.PASSED, explain(results)


# --------------------------------------------------------------------------- 6. backbone by provenance


@pytest.mark.slow  # the real worker
def test_own_fc6_head_is_not_the_backbone(tmp_path):
    run, results = observe(FIXTURES / "liam_own_head", ("fcn32s_frozen",), tmp_path)
    result = results["fcn32s_frozen"]
    assert result.status is VariantStatus.PASSED, explain(results)
    frozen = result.check("frozen_backbone")
    assert "the 26 backbone tensors are bit-identical, while the head trained (backbone: VGG16 (from torchvision))" \
        in frozen.message, frozen.message
    assert result.figures["backbone"] == "VGG16 (from torchvision)"


@pytest.mark.slow  # the real worker
def test_fcn_without_vgg_fails_the_backbone_check(tmp_path):
    run, results = observe(FIXTURES / "mia_no_vgg", ("fcn8s_frozen",), tmp_path)
    result = results["fcn8s_frozen"]
    frozen = result.check("frozen_backbone")
    assert frozen.status is CheckStatus.FAIL
    assert frozen.message.startswith("FCN8s has no VGG backbone: no layer comes from a torchvision VGG")
    assert result.figures["backbone"] == "none"


def test_a_partial_move_names_the_layers_and_advises_from_what_moved():
    from grader.grading.checks import _backbone

    parts = {"features.24.weight": "conv5_1", "features.24.bias": "conv5_1", "features.26.weight": "conv5_2",
             "features.1.running_mean": "conv1_1 BatchNorm"}
    observed = {"id": "fcn8s_frozen",
                "backbone_found": {"kind": "VGG16-BN", "how": "torchvision", "built": ["VGG16-BN"]},
                "backbone": {"backbone_tensors": 91, "steps": 3, "backbone_changed": list(parts),
                             "changed_parts": parts, "head_changed": ["score.weight"]}}
    check = _backbone(Observation.from_json(observed), SPEC.variant("fcn8s_frozen"))
    assert check.status is CheckStatus.FAIL
    assert ("4 of 91 backbone tensors changed during 3 training steps although the backbone should be frozen "
            "(backbone: VGG16-BN (from torchvision)): the weights of conv5_1, conv5_2 and the BatchNorm statistics of "
            "conv1_1 BatchNorm moved") in check.message, check.message
    assert "requires_grad=False" in check.message and "BatchNorm layers in eval mode" in check.message
    only_weights = {k: v for k, v in parts.items() if "running" not in k}
    observed["backbone"] |= {"backbone_changed": list(only_weights), "changed_parts": only_weights}
    message = _backbone(Observation.from_json(observed), SPEC.variant("fcn8s_frozen")).message
    assert "the weights of conv5_1, conv5_2 moved" in message and "eval mode" not in message


def test_weights_the_model_loads_itself_are_found_by_two_builds():
    import torch
    from torch import nn

    from grader.measure.probes import identify_loaded_weights

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3))
            self.head = nn.Conv2d(8, 13, 1)
            pretrained = torch.Generator().manual_seed(7)   # the same "checkpoint" in every build
            with torch.no_grad():
                for conv in (self.encoder[0], self.encoder[2]):
                    conv.weight.copy_(torch.randn(conv.weight.shape, generator=pretrained))

    torch.manual_seed(0)
    first = Net()
    torch.manual_seed(1)
    found = identify_loaded_weights(first, Net())
    assert found["how"] == "loaded weights" and found["kind"] == "pretrained layers"
    assert set(found["tensors"]) == {"encoder.0.weight", "encoder.0.bias", "encoder.2.weight", "encoder.2.bias"}


def test_the_architecture_table_names_the_backbone():
    from grader.report.html import _architecture_rows

    assert _architecture_rows(None, {}, "VGG19 (from torchvision)", "fcn") == [
        {"property": "backbone", "measured": "VGG19 (from torchvision)", "required": "VGG16 (VGG19 accepted)"}]
    assert _architecture_rows(None, {}, "none", "unet") == []   # a U-Net has no backbone to report


# --------------------------------------------------------------------------- 7. backbone choice, downloads


@pytest.mark.slow  # the real worker
def test_backbone_choice_gets_vgg16(tmp_path):
    run, results = observe(FIXTURES / "noah_vgg19", ("fcn16s_finetune",), tmp_path)
    result = results["fcn16s_finetune"]
    assert "backbone_name='vgg16'" in result.mapping and "backbone argument" in result.mapping
    assert "backbone_name='vgg16' instead of its default 'vgg19': the assignment's backbone is VGG16" in result.notes
    assert result.status is VariantStatus.PASSED, explain(results)
    assert result.figures["backbone"] == "VGG16 (from torchvision)"


@pytest.mark.slow  # the real worker
def test_a_constructor_downloading_vgg19_is_told_so(tmp_path):
    # Under a profile that trains from ImageNet weights (full), a download is what it is: offline, a failure
    run, results = observe(FIXTURES / "olga_downloads_vgg19", ("fcn32s_frozen",), tmp_path,
                           options=GradeOptions(profile="full"))
    builds = results["fcn32s_frozen"].check("builds")
    assert builds.status is CheckStatus.FAIL
    assert "The constructor's own code asked for VGG19 ImageNet weights (vgg19-dcbb9e9d.pth)" in builds.message
    assert "pretrained` flag" not in builds.message


@pytest.mark.slow  # the real worker
def test_under_a_random_init_profile_a_constructors_own_download_gets_random_init_weights(tmp_path):
    """The smoke profile starts every backbone from random init: the constructor's own
    `vgg19(weights=VGG19_Weights.IMAGENET1K_V1)` gets random-init weights, offline, and the
    results say so; what the model is (a VGG19 backbone) is still judged as before."""
    run, results = observe(FIXTURES / "olga_downloads_vgg19", ("fcn32s_frozen",), tmp_path,
                           options=GradeOptions(profile="smoke"))
    result = results["fcn32s_frozen"]
    assert result.check("builds").status is CheckStatus.PASS, explain(results)
    assert run.variants["fcn32s_frozen"].build.random_init_for == ("vgg19-dcbb9e9d.pth",)
    assert any("asked for pretrained weights (vgg19-dcbb9e9d.pth)" in n and "random-init weights" in n
               for n in result.notes)


# --------------------------------------------------------------------------- 8. not PyTorch


@pytest.mark.slow  # the real worker
def test_a_keras_submission_is_told_it_is_not_pytorch(tmp_path):
    run, results = observe(FIXTURES / "pete_keras", ("unet",), tmp_path, plan_only=True)
    message = results["unet"].check("builds").message
    assert "This code is written for TensorFlow, not PyTorch (model.py imports it)" in message, message
    assert "tensorflow.py" not in message


# --------------------------------------------------------------------------- 8. the contract


@pytest.mark.slow  # the real worker
def test_contract_names_need_no_guesswork(tmp_path):
    """The contract's class names and arguments are taken as they are, for every variant (the
    mapping alone: the reference self-check builds and checks a contract follower)."""
    run, results = observe(FIXTURES / "dave_contract", FCN_IDS + UNET_IDS, tmp_path, plan_only=True)
    for vid, result in results.items():
        assert result.mapping.endswith("adapter: contract"), (vid, result.mapping)
    assert "FCN8s(num_classes=13, freeze_backbone=True, pretrained=False) from fcn.py" in results["fcn8s_frozen"].mapping
    assert "UNetNoSkip(num_classes=13) from unets.py" in results["unet_noskip"].mapping


# --------------------------------------------------------------------------- 9. a GPU hard-coded


@pytest.mark.slow  # the real worker
def test_a_gpu_hard_coded_in_a_colab_notebook_is_told_which_line(tmp_path):
    """Without a GPU, torch only says "Cannot re-initialize CUDA in forked subprocess" (or
    "Found no NVIDIA driver"): the message names the student's line and the portable way."""
    run, results = observe(FIXTURES / "quinn_colab_cuda", ("unet", "unet_noskip"), tmp_path)
    forward = results["unet"].check("forward_shape")
    assert results["unet"].status is VariantStatus.ERROR, explain(results)
    assert "`x = x.to(device)` at hw3_unets.py line 27 puts tensors on the GPU, but this run has none" \
        in forward.message, forward.message
    builds = results["unet_noskip"].check("builds")
    assert builds.status is CheckStatus.FAIL
    assert "`self.cuda()` at hw3_unets.py line 45 puts tensors on the GPU" in builds.message, builds.message


# --------------------------------------------------------------------------- 10. a family class chosen by a string


@pytest.mark.slow  # the real worker
def test_a_kind_argument_maps_every_unet_and_a_family_class_every_fcn(tmp_path):
    run, results = observe(FIXTURES / "rosa_unet_modes", FCN_IDS + UNET_IDS, tmp_path, plan_only=True)
    mappings = {vid: run.variants[vid].mapping for vid in FCN_IDS + UNET_IDS}
    assert mappings["unet"] == "UNet ← UNet(num_classes=13) from models.py, adapter: contract"
    for vid, kind in (("unet_noskip", "noskip"), ("unet_residual", "residual"), ("unet_attention", "attention")):
        assert mappings[vid].endswith(f"← UNet(num_classes=13, mode='{kind}') from models.py, adapter: variant argument")
    for vid in FCN_IDS:
        stride, frozen = vid[3:vid.index("s_")], vid.endswith("frozen")
        assert mappings[vid] == (f"FCN{stride}s ← SegModel(arch='fcn{stride}s', num_classes=13, freeze={frozen}, "
                                 "pretrained=False) from models.py, adapter: variant argument + freeze flag")


@pytest.mark.slow  # the real worker
def test_a_unet_built_by_its_kind_argument_has_no_skips(tmp_path):
    run, results = observe(FIXTURES / "rosa_unet_modes", ("unet_noskip",), tmp_path)
    assert results["unet_noskip"].status is VariantStatus.PASSED, explain(results)
    assert "no skips" in results["unet_noskip"].check("architecture").message


# --------------------------------------------------------------------------- 11. fine-tuning by name or tutorial flag


@pytest.mark.slow  # the real worker
def test_fine_tuning_by_the_tutorials_flag_or_an_ft_subclass(tmp_path):
    ids = ("fcn32s_frozen", "fcn32s_finetune", "fcn8s_frozen", "fcn8s_finetune")
    run, results = observe(FIXTURES / "tess_finetune_names", ids, tmp_path, plan_only=True)
    mappings = {vid: run.variants[vid].mapping for vid in ids}
    assert mappings["fcn32s_frozen"] == ("FCN32s ← FCN32s(num_classes=13, feature_extract=True, use_pretrained=False) "
                                         "from fcn.py, adapter: contract + freeze flag")
    assert "feature_extract=False" in mappings["fcn32s_finetune"]
    assert mappings["fcn8s_frozen"].startswith("FCN8s ← FCN8s(num_classes=13, pretrained=False) from fcn.py")
    assert mappings["fcn8s_finetune"].startswith("FCN8s ← FCN8s_FT(num_classes=13, pretrained=False) from fcn.py, "
                                                 "adapter: name pattern")


@pytest.mark.slow  # the real worker
def test_torch_hub_load_in_a_constructor_is_told_so(tmp_path):
    run, results = observe(FIXTURES / "uma_torch_hub", ("fcn8s_frozen",), tmp_path)
    builds = results["fcn8s_frozen"].check("builds")
    assert builds.status is CheckStatus.FAIL
    assert ("`vgg = torch.hub.load('pytorch/vision:v0.10.0', 'vgg16', pretrained=True)` at fcn8s.py line 11 fetches "
            "a model's code from GitHub (pytorch/vision) with torch.hub, but grading runs offline") in builds.message, \
        builds.message


# --------------------------------------------------------------------------- 12. unpadded convolutions


@pytest.mark.slow  # the real worker
def test_unpadded_convolutions_are_explained(tmp_path):
    """The paper's U-Net (valid 3x3 convolutions, center-cropped skips, logits resized at the
    end) runs at 256 px but not at 64: torch's 'Kernel size can't be greater than actual input
    size' comes with why and what to change."""
    run, results = observe(FIXTURES / "vera_paper_unet", ("unet",), tmp_path)
    forward = results["unet"].check("forward_shape")
    assert forward.status is CheckStatus.FAIL
    assert "Kernel size can't be greater than actual input size. A feature map became smaller than a 3x3 kernel: " \
           "each unpadded convolution (padding=0" in forward.message, forward.message


# --------------------------------------------------------------------------- 13. freezing in notebook cells


@pytest.mark.slow  # the real worker
def test_a_backbone_frozen_in_notebook_cells_is_frozen_as_the_notebook_does(tmp_path):
    """FCN classes with no freeze option, frozen by the notebook's top-level cells: the frozen
    variants are built and then frozen as those cells do (said in the mapping and a note), the
    fine-tuned ones as the class defaults; the frozen-backbone check then passes."""
    run, _ = observe(FIXTURES / "wendy_notebook_freezing", FCN_IDS, tmp_path, plan_only=True)
    mappings = {vid: run.variants[vid].mapping for vid in FCN_IDS}
    assert mappings["fcn32s_frozen"] == (
        "FCN32s ← FCN32s(num_classes=13, pretrained=False), then as hw3_fcn.ipynb, cell 7: "
        "set_parameter_requires_grad(fcn32_frozen.features, feature_extract) from hw3_fcn.py, "
        "adapter: contract + top-level freeze")
    assert "then as hw3_fcn.ipynb, cell 8: for p in fcn16_frozen.features.parameters():" in mappings["fcn16s_frozen"]
    assert "then as hw3_fcn.ipynb, cell 9: for name, param in fcn8_frozen.named_parameters():" \
        in mappings["fcn8s_frozen"]
    for vid in ("fcn32s_finetune", "fcn16s_finetune", "fcn8s_finetune"):
        assert mappings[vid].endswith("adapter: contract + no freeze option"), mappings[vid]
    note = " ".join(run.variants["fcn8s_frozen"].notes)
    assert ("FCN8s has no freeze option (no flag, no freeze method); the submission's top-level code freezes an "
            "instance of it (fcn8_frozen, hw3_fcn.ipynb, cell 9: `for name, param in fcn8_frozen.named_parameters():`)"
            ) in note, note

    # The same, pinned by a manifest for the fine-tuned FCN-32s (as a student would to make a point)
    (tmp_path / "pinned").mkdir()
    (tmp_path / "built").mkdir()
    run, _ = observe(FIXTURES / "wendy_notebook_freezing", ("fcn32s_finetune",), tmp_path / "pinned", plan_only=True,
                     manifest="""
                         [variants.fcn32s_finetune]
                         factory = "hw3_fcn.py:FCN32s"
                         freeze = ["features.0", "features.2"]
                     """)
    assert run.variants["fcn32s_finetune"].mapping == (
        "FCN32s ← FCN32s(num_classes=13, pretrained=False), then features.0, features.2 frozen from hw3_fcn.py, "
        "adapter: manifest")

    _, results = observe(FIXTURES / "wendy_notebook_freezing", ("fcn8s_frozen",), tmp_path / "built")
    assert results["fcn8s_frozen"].check("frozen_backbone").status is CheckStatus.PASS, explain(results)


@pytest.mark.slow  # the CLI: worker, capture and verifier on one VGG16 FCN
def test_segrade_check_on_a_notebook_that_freezes_in_its_cells(tmp_path, capsys):
    """`segrade check SUBMISSION --checks-only --variant fcn8s_frozen` as the README writes it:
    the captured program is the frozen one (its backbone does not train in the verifier), and
    the report's results say how it was built."""
    import json

    from grader.cli import main

    out = tmp_path / "out"
    assert main(["check", str(FIXTURES / "wendy_notebook_freezing"), "--checks-only", "--variant", "fcn8s_frozen",
                 "--spec", str(_SPEC_FOLDER / "spec.toml"), "--out", str(out), "--no-pdf"]) == 0, capsys.readouterr()
    [variant] = json.loads((out / "results.json").read_text())["variants"]
    checks = {c["id"]: c["status"] for c in variant["checks"]}
    assert checks["frozen_backbone"] == "pass", variant
    assert variant["program"]["measured_in"] == "captured program", variant["program"]
    assert "then as hw3_fcn.ipynb, cell 9: for name, param in fcn8_frozen.named_parameters():" in variant["mapping"]


# --------------------------------------------------------------------------- 14. constants computed from the data


@pytest.mark.slow  # the real worker
def test_class_defaults_computed_from_the_data_do_not_lose_the_file(tmp_path):
    """`NUM_CLASSES = len(os.listdir(...))` in a left-out cell, used as a default: the notebook
    imported with a NameError and every class in it was lost. The name now holds a placeholder,
    segrade fills the class count and the channels as if they were required, and the U-Net
    builds and passes its checks; the loading notes say which names."""
    run, results = observe(FIXTURES / "xena_data_constants", ("unet", "unet_noskip"), tmp_path)
    assert all(m["ok"] for m in run.modules), run.modules
    assert run.variants["unet"].mapping == "UNet ← UNet(in_ch=3, n_classes=13, skip=True) from unets.py, " \
                                           "adapter: contract + flags"
    assert results["unet"].status is VariantStatus.PASSED, explain(results)
    assert results["unet_noskip"].status is VariantStatus.PASSED, explain(results)
    from grader.submission.load import load_submission

    notes = load_submission(FIXTURES / "xena_data_constants", tmp_path / "loaded").notes
    assert any(n.startswith("unets.py: kept code uses names that only left-out statements set") and
               n.endswith(": NUM_CLASSES (line 12), IN_CH (line 14)") for n in notes), notes


# --------------------------------------------------------------------------- 15. a network passed in


@pytest.mark.slow  # the real worker
def test_a_backbone_passed_into_the_fcn_is_built_from_the_submissions_class(tmp_path):
    """`FCN8s(pretrained_net, n_class)` with the submission's VGGNet(pretrained, requires_grad)
    passed in: unusable before (no manifest value is a network); now the VGGNet is built with
    the pretrained switch and its own flag set for the variant, and the frozen FCN's backbone
    stays frozen through the real worker's checks."""
    run, _ = observe(FIXTURES / "zoe_vggnet_fcns", FCN_IDS, tmp_path, plan_only=True)
    assert run.variants["fcn8s_frozen"].mapping == (
        "FCN8s ← FCN8s(pretrained_net=VGGNet(pretrained=False, requires_grad=False), n_class=13) from fcn.py, "
        "adapter: contract + network argument + freeze flag of the network argument")
    assert "pretrained_net=VGGNet(pretrained=False, requires_grad=True)" in run.variants["fcn32s_finetune"].mapping
    (tmp_path / "built").mkdir()
    _, results = observe(FIXTURES / "zoe_vggnet_fcns", ("fcn8s_frozen",), tmp_path / "built")
    checks = {c.id: c for c in results["fcn8s_frozen"].checks}
    assert checks["builds"].status is CheckStatus.PASS, explain(results)
    assert checks["frozen_backbone"].status is CheckStatus.PASS, explain(results)


@pytest.mark.slow  # the CLI: worker, capture and verifier on one small U-Net
def test_segrade_check_on_a_notebook_whose_defaults_come_from_its_data(tmp_path, capsys):
    """`segrade check SUBMISSION --checks-only --variant unet` as the README writes it, on the
    notebook whose class defaults are computed by left-out cells: exit 0, the U-Net passes every
    check, and the terminal names the left-out names."""
    import json

    from grader.cli import main

    out = tmp_path / "out"
    code = main(["check", str(FIXTURES / "xena_data_constants"), "--checks-only", "--variant", "unet",
                 "--spec", str(_SPEC_FOLDER / "spec.toml"), "--out", str(out), "--no-pdf"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "NUM_CLASSES (line 12), IN_CH (line 14)" in " ".join(printed.split()), printed
    [variant] = json.loads((out / "results.json").read_text())["variants"]
    assert variant["status"] == "passed" and {c["status"] for c in variant["checks"]} == {"pass"}, variant
