"""The example submissions go through the real loading path (formats -> adapters -> worker).

Three are correct, each in one of the real-world shapes of BRIEF §3 (a package with a family
class and flags, an inverted freeze flag with other class names, a Colab notebook with a
freeze method), and every variant is mapped, and every built one passes, with no manifest:
anything less there is a grader bug, or an adapter that no longer recognises a real shape. The mapping sentence of
each variant must name the adapter that found it, because that sentence is what tells a
student (or an instructor) how segrade read the code. alice_package and carol_notebook live
in submissions/ (the examples a newcomer reads); bob_inverted_flag is an adapter fixture in
tests/data/submissions/. The fourth shape, a contract follower, is the reference itself
(its self-check in test_reference_grade.py builds, checks and trains two variants at the
assignment's sizes; benchmarks/bench_check.py all ten); the
contract-following fixture dave_contract is mapped without building in
test_real_submissions.py.

Two more examples in submissions/ are wrong on purpose: erin_mistakes plants three typical
mistakes (a no-skip U-Net that still concatenates encoder features, a freeze flag that
freezes nothing, a softmax at the end of forward) and each must be caught by the right check
on the right variants and nothing else; frank_import_error forgot to hand in its utils.py,
and every variant must say so.

Every variant of each is *mapped* (how segrade reads the code: class, arguments, adapter) by
the worker without building (`planned`), and some are built and checked (`graded`): the four
U-Nets (carol's gated-attention one and bob's no-skip one only: all seven of carol's classes and
bob's four U-Nets are judged by both graph builders in test_graph) and one of the six VGG16 FCNs (~134M parameters each, ~10-20 s each to build, capture
and check on 2 cores), a different one per example so that each FCN class (32s, 16s, 8s) and
each backbone mode (frozen, fine-tuned) is built somewhere; the others are the same classes
with other arguments, which the mapping shows. erin builds the frozen FCN whose freeze flag
freezes nothing. frank_import_error builds nothing, so it is graded whole. Each submission is
graded once per module, at 64 px inputs (the same checks; the assignment's own 224/256 px are
exercised by the reference's self-check).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.grading.pipeline import GradeOptions, grade_submission
from grader.records.results import CheckStatus, VariantStatus
from grader.spec import load_spec
from tiny_submission import small_inputs, spec_with, worker_plan

EXAMPLES = Path(__file__).resolve().parent.parent / "submissions"   # what a newcomer reads
FIXTURES = Path(__file__).resolve().parent / "data" / "submissions"  # adapter fixtures
SUBMISSIONS = {
    "alice_package": EXAMPLES / "alice_package",
    "bob_inverted_flag": FIXTURES / "bob_inverted_flag",
    "carol_notebook": EXAMPLES / "carol_notebook",
    "erin_mistakes": EXAMPLES / "erin_mistakes",
    "frank_import_error": EXAMPLES / "frank_import_error",
}
NAMES = ("alice_package", "bob_inverted_flag", "carol_notebook")   # correct: all mapped, all built pass
FCN_IDS = ("fcn32s_frozen", "fcn16s_frozen", "fcn8s_frozen", "fcn32s_finetune", "fcn16s_finetune", "fcn8s_finetune")
UNET_IDS = ("unet", "unet_noskip", "unet_residual", "unet_attention")
# The one FCN each example builds: every class and both backbone modes across the examples.
BUILT_FCN = {"alice_package": "fcn32s_frozen", "bob_inverted_flag": "fcn16s_finetune",
             "carol_notebook": "fcn8s_frozen", "erin_mistakes": "fcn8s_frozen"}


# carol's and bob's U-Nets: one built here each (the notebook through the real worker; bob's no-skip
# subclass that overrides forward); the architecture of all seven of carol's classes and bob's four
# U-Nets is judged by both graph builders in test_graph (test_no_false_alarm_on_carol_notebook,
# test_no_false_alarm_on_bob_s_unets).
BUILT_UNETS = {"carol_notebook": ("unet_attention",), "bob_inverted_flag": ("unet_noskip",)}


def built(name: str) -> tuple[str, ...]:
    return (BUILT_FCN[name], *BUILT_UNETS.get(name, UNET_IDS))


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    """The default assignment at 64 px inputs: the same checks, cheap (tiny_submission.small_inputs)."""
    return load_spec(small_inputs(tmp_path_factory.mktemp("spec") / "spec.toml"))


@pytest.fixture(scope="module")
def graded(spec, tmp_path_factory):
    """Grade each example once (lazily), offline: no ImageNet weights anywhere. Its `built`
    variants (the assignment at 64 px, cut); frank_import_error (nothing builds) whole."""
    results = {}
    torch_home = tmp_path_factory.mktemp("no_weights_here")

    def grade(name: str):
        if name not in results:
            cut = spec if name == "frank_import_error" else load_spec(
                spec_with(list(built(name)), tmp_path_factory.mktemp("spec") / "spec.toml", input_size=64))
            with pytest.MonkeyPatch.context() as mp:
                mp.delenv("SEGRADE_VGG16_WEIGHTS", raising=False)
                mp.setenv("TORCH_HOME", str(torch_home))
                results[name] = grade_submission(SUBMISSIONS[name], cut, GradeOptions(profile=None))
        return results[name]

    return grade


@pytest.fixture(scope="module")
def planned(spec, tmp_path_factory):
    """How the worker maps every variant of each example (`plan_only`: nothing built), offline:
    variant id -> the mapping sentence (or what was unresolved)."""
    plans = {}

    def plan(name: str) -> dict[str, str]:
        if name not in plans:
            with pytest.MonkeyPatch.context() as mp:
                mp.delenv("SEGRADE_VGG16_WEIGHTS", raising=False)
                run, _ = worker_plan(SUBMISSIONS[name], spec, tmp_path_factory.mktemp(name))
            plans[name] = {vid: v.mapping or f"unresolved: {v.message}" for vid, v in run.variants.items()}
        return plans[name]

    return plan


def by_id(result):
    return {v.variant_id: v for v in result.variants}


def describe(result) -> str:
    """Everything needed to see why a variant did not pass, for assertion messages."""
    lines = [f"{v.variant_id}: {v.status.value} | {v.mapping} | "
             + "; ".join(f"{c.id}={c.status.value}: {c.message}" for c in v.checks)
             for v in result.variants]
    lines += [f"module {m.get('path')}: ok={m.get('ok')} {m.get('error') or ''}" for m in result.modules]
    if result.environment.get("worker_problem"):
        lines.append(f"worker problem: {result.environment['worker_problem']}")
    return "\n".join(lines)


@pytest.mark.slow  # the real worker on the example submissions
@pytest.mark.parametrize("name", NAMES)
def test_every_variant_passes_without_a_manifest(graded, planned, name):
    assert not (SUBMISSIONS[name] / "segrade.toml").exists(), "the examples must be read without a manifest"
    mappings = planned(name)
    assert set(mappings) == set(FCN_IDS + UNET_IDS)
    for vid, mapping in mappings.items():
        assert "←" in mapping and "adapter: manifest" not in mapping, (vid, mapping)
        if vid in FCN_IDS:
            assert "=False" in mapping and "pretrained" in mapping, mapping  # the offline switch is passed
    result = graded(name)
    variants = by_id(result)
    assert set(variants) == set(built(name))
    failed = [vid for vid, v in variants.items() if v.status is not VariantStatus.PASSED]
    assert not failed, describe(result)
    assert result.grade.passed_variants == len(built(name))
    assert result.environment["pretrained_backbone"] is False  # built offline, nothing downloaded
    for v in result.variants:
        assert v.mapping == mappings[v.variant_id]   # built as planned
        if v.variant_id in FCN_IDS:
            params = v.figures["parameters"]
            assert params["total"] > 130e6, params  # VGG16 conv1-5 + fc6/fc7 as convs
            if v.variant_id.endswith("_frozen"):
                assert params["trainable"] < 1e6, params  # only the score layers and upsampling
            else:
                assert params["trainable"] == params["total"], params


@pytest.mark.slow  # the real worker on the example submissions
def test_alice_package_family_classes_by_variant_argument_and_flags(graded, planned):
    result = graded("alice_package")
    mappings = planned("alice_package")
    for size in ("32s", "16s", "8s"):
        for kind, frozen in (("frozen", True), ("finetune", False)):
            mapping = mappings[f"fcn{size}_{kind}"]
            assert mapping.startswith(f"FCN{size} ← FCN(")
            assert f"variant='fcn{size}'" in mapping and f"freeze_backbone={frozen}" in mapping, mapping
            assert "from segmodels/fcn.py" in mapping and "adapter: variant argument" in mapping, mapping
    flags = {
        "unet": "use_skip_connections=True, use_residual_block=False, use_gated_attention=False",
        "unet_noskip": "use_skip_connections=False, use_residual_block=False, use_gated_attention=False",
        "unet_residual": "use_skip_connections=True, use_residual_block=True, use_gated_attention=False",
        "unet_attention": "use_skip_connections=True, use_residual_block=False, use_gated_attention=True",
    }
    for vid, text in flags.items():
        mapping = mappings[vid]
        assert text in mapping and "n_classes=13" in mapping, mapping
        assert "from segmodels/unet.py" in mapping and "flags" in mapping, mapping
    # train.py trains and calls wandb at top level: those statements are left out (and
    # listed), so the file still imports; the package imports with its relative imports.
    modules = {m["path"]: m for m in result.modules}
    assert {"segmodels/__init__.py", "segmodels/blocks.py", "segmodels/fcn.py", "segmodels/unet.py",
            "train.py"} <= set(modules)
    assert all(m["ok"] for m in modules.values()), modules
    skipped = result.submission.skipped["train.py"]
    assert any("wandb.init(" in line for line in skipped), skipped
    assert any("model = train(" in line for line in skipped), skipped


@pytest.mark.slow  # the real worker on the example submissions
def test_bob_inverted_freeze_flag_and_other_names(planned):
    mappings = planned("bob_inverted_flag")
    for size in ("32", "16", "8"):
        frozen = mappings[f"fcn{size}s_frozen"]
        finetune = mappings[f"fcn{size}s_finetune"]
        assert f"FCN{size}(" in frozen and "update_weights=False" in frozen, frozen
        assert "update_weights=True" in finetune, finetune
        assert "pretrained_backbone=False" in frozen, frozen
        assert "inverted freeze flag" in frozen and "from models.py" in frozen, frozen
    for vid, cls in (("unet", "VanillaUNet"), ("unet_noskip", "NoSkipUNet"), ("unet_residual", "ResUNet"),
                     ("unet_attention", "AttentionUNet")):
        mapping = mappings[vid]
        assert f"{cls}(" in mapping and "out_channels=13" in mapping, mapping


@pytest.mark.slow  # the real worker on the example submissions
def test_carol_notebook_freeze_method(graded, planned):
    result = graded("carol_notebook")
    mappings = planned("carol_notebook")
    for size in ("32s", "16s", "8s"):
        frozen = mappings[f"fcn{size}_frozen"]
        finetune = mappings[f"fcn{size}_finetune"]
        assert f"FCN_{size}(" in frozen and ".freeze_backbone()" in frozen and "freeze method" in frozen, frozen
        assert ".freeze_backbone()" not in finetune, finetune
    for vid, cls in (("unet", "UNet"), ("unet_noskip", "UNet_NoSkip"), ("unet_residual", "ResidualUNet"),
                     ("unet_attention", "GatedAttentionUNet")):
        mapping = mappings[vid]
        assert f"← {cls}(num_classes=13) from hw3.py" in mapping, mapping
    # The notebook is converted to hw3.py: the shell and cell magics go, and the top-level
    # data loading, training loops, wandb calls and plots are left out, so it imports offline.
    assert [m["path"] for m in result.modules] == ["hw3.py"] and result.modules[0]["ok"], result.modules
    assert any("hw3.ipynb" in note and "hw3.py" in note for note in result.submission.notes), result.submission.notes
    skipped = result.submission.skipped["hw3.py"]
    for statement in ("drive.mount(", "model.freeze_backbone()", "for epoch in range(EPOCHS):", "plt.show()"):
        assert any(statement in line for line in skipped), (statement, skipped)
    # Her answers are bold-led paragraphs under one "## 5. Discussion" Markdown cell.
    cells = "hw3.ipynb (Markdown cells) § "
    assert {item: a["source"] for item, a in result.answers.items()} == {
        "dataset_visualisation": cells + "Q1: one binary mask per class",
        "fcn_discussion": f"{cells}FCN-32s vs 16s vs 8s; {cells}Frozen vs fine-tuned",
        "unet_noskip_discussion": cells + "U-Net without skip connections",
        "unet_attention_discussion": cells + "Gated attention",
    }


def test_examples_folder_holds_what_its_readme_describes():
    """submissions/ is what a newcomer reads first: the four examples, each in its README."""
    folders = sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir())
    assert folders == ["alice_package", "carol_notebook", "erin_mistakes", "frank_import_error"]
    readme = (EXAMPLES / "README.md").read_text()
    for name in folders:
        assert f"`{name}/" in readme, name
    for name in ("bob_inverted_flag", "dave_contract"):
        assert (FIXTURES / name).is_dir() and name in readme, name


# erin_mistakes: variant -> the one check that must not pass, and how. Every other check of
# every variant passes.
ERIN_PLANTED = {
    "fcn32s_frozen": ("frozen_backbone", CheckStatus.FAIL),   # `self.features.requires_grad = False`
    "fcn16s_frozen": ("frozen_backbone", CheckStatus.FAIL),
    "fcn8s_frozen": ("frozen_backbone", CheckStatus.FAIL),
    "unet_noskip": ("architecture", CheckStatus.FAIL),        # a renamed copy of U_Net, cats and all
    "unet_residual": ("logits", CheckStatus.WARN),            # F.softmax at the end of forward
}


@pytest.mark.slow  # the real worker on the example submissions
def test_erin_each_planted_mistake_is_caught_by_the_right_check(graded, planned):
    result = graded("erin_mistakes")
    variants = by_id(result)
    assert set(variants) == set(built("erin_mistakes"))
    assert all(m["ok"] for m in result.modules), result.modules   # the mistakes are in the models, not the imports
    for vid, v in variants.items():
        checks = {c.id: c for c in v.checks}
        not_passed = {cid: c.status for cid, c in checks.items() if c.status is not CheckStatus.PASS}
        planted = dict([ERIN_PLANTED[vid]]) if vid in ERIN_PLANTED else {}
        assert not_passed == planted, (vid, describe(result))
        failed = any(status is CheckStatus.FAIL for status in planted.values())
        assert v.status is (VariantStatus.FAILED if failed else VariantStatus.PASSED), (vid, describe(result))
    assert result.grade.passed_variants == 3   # the U-Nets but unet_noskip

    # What segrade says about each mistake: the sentence a student reads.
    noskip = {c.id: c for c in variants["unet_noskip"].checks}["architecture"]
    assert noskip.message == ("UNetNoSkip still concatenates encoder features at 1/1, 1/2, 1/4, 1/8: "
                              "it has skip connections"), noskip.message
    for vid in ("fcn8s_frozen",):
        frozen = {c.id: c for c in variants[vid].checks}["frozen_backbone"]
        # Every backbone tensor moved: VGG16's 13 convolutions and fc6/fc7 copied from it, weight and bias
        assert frozen.message.startswith("30 of 30 backbone tensors changed during 3 training steps although the "
                                         "backbone should be frozen"), frozen.message
        assert "Set requires_grad=False on every backbone parameter" in frozen.message, frozen.message
        changed = frozen.details["backbone_changed"]
        assert {"features.0.weight", "features.28.weight"} <= set(changed), changed
        params = variants[vid].figures["parameters"]
        assert params["trainable"] == params["total"], params   # the flag froze nothing
    logits = {c.id: c for c in variants["unet_residual"].checks}["logits"]
    assert "sum to 1 over classes: forward seems to apply softmax" in logits.message, logits.message

    # How segrade found each class: name pattern for the VGG16_FCN*s, the contract for U_Net and
    # U_Net_NoSkip (underscores ignored), aliases for ResU_Net and AttU_Net.
    mappings = planned("erin_mistakes")
    for size in ("32s", "16s", "8s"):
        mapping = mappings[f"fcn{size}_frozen"]
        assert mapping == (f"FCN{size} ← VGG16_FCN{size}(n_classes=13, weights=None, freeze_backbone=True) "
                           "from models/fcn.py, adapter: name pattern"), mapping
    for vid, cls, source, adapter in (("unet", "U_Net", "models/unet.py", "contract"),
                                      ("unet_noskip", "U_Net_NoSkip", "models/unet.py", "contract"),
                                      ("unet_residual", "ResU_Net", "models/res_unet.py", "alias"),
                                      ("unet_attention", "AttU_Net", "models/att_unet.py", "alias")):
        mapping = variants[vid].mapping
        assert mapping.endswith(f"← {cls}(output_ch=13) from {source}, adapter: {adapter}"), mapping

    # train.py trains at top level (argparse, loops): left out, so it imports; the LLM prompt
    # is declared in a comment; the README's discussion sections are found as answers.
    skipped = result.submission.skipped["train.py"]
    assert any("args = parser.parse_args()" in line for line in skipped), skipped
    assert {c.id: c.status for c in result.checks}.get("llm_declaration") is CheckStatus.PASS, result.checks
    assert {"fcn_discussion", "unet_noskip_discussion", "unet_attention_discussion"} <= set(result.answers)
    assert "Discussion: U-Net without skips" in result.answers["unet_noskip_discussion"]["source"]


@pytest.mark.slow  # the real worker on the example submissions
def test_frank_import_error_is_named_for_every_variant(graded):
    assert not (SUBMISSIONS["frank_import_error"] / "utils.py").exists()   # the file Frank forgot
    result = graded("frank_import_error")
    modules = {m["path"]: m for m in result.modules}
    assert set(modules) == {"models.py", "train.py"}
    for path in modules:
        assert not modules[path]["ok"], modules[path]
        assert modules[path]["error"] == "ModuleNotFoundError: No module named 'utils'", modules[path]
    assert "from utils import" in modules["models.py"]["traceback"], modules["models.py"]["traceback"]
    variants = by_id(result)
    assert set(variants) == set(FCN_IDS + UNET_IDS)
    for vid, v in variants.items():
        assert v.status is not VariantStatus.PASSED, (vid, describe(result))
        message = " ".join(c.message for c in v.checks)
        assert "models.py: ModuleNotFoundError: No module named 'utils'" in message, (vid, message)
        # Nothing imported: the import is named as the cause, with what to do, before any manifest talk.
        assert v.status is VariantStatus.ERROR, (vid, v.status)
        assert message.index("did not import") < message.index("segrade.toml"), message
        assert "hand it in (utils.py)" in message, message
    assert result.grade.passed_variants == 0
