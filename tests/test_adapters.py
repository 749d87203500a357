"""grader.worker.adapters: mapping the assignment's variants to student code that follows no interface.

The classes below are tiny stand-ins with the constructor signatures seen in real
submissions (BRIEF §3); nothing here builds a real FCN or U-Net.
"""

from __future__ import annotations

import functools
from enum import Enum, auto
from typing import Literal

import pytest
import torch
from torch import nn

from grader.worker.adapters import (
    BuildPlan,
    Candidate,
    ManifestError,
    Unresolved,
    VariantRequest,
    check_manifest_ids,
    parse_manifest,
    plan_variant,
    to_logits,
)
from grader.grading.pipeline import variant_request
from grader.shared.protocol import ProtocolError
from grader.spec import load_spec

SPEC = load_spec()
IDS = [v.id for v in SPEC.variants]


def request(variant_id: str, pretrained: bool = False) -> VariantRequest:
    return variant_request(SPEC, SPEC.variant(variant_id), pretrained)


def plan(variant_id: str, *candidates: Candidate, manifest=None, pretrained: bool = False):
    return plan_variant(request(variant_id, pretrained), list(candidates), manifest)


def ok(result) -> BuildPlan:
    assert isinstance(result, BuildPlan), getattr(result, "message", result)
    return result


def c(obj, name: str | None = None, source: str = "model.py") -> Candidate:
    return Candidate(name or obj.__name__, obj, source)


class _Net(nn.Module):
    """A 'backbone' and a 1x1 'head'; forward gives N x classes x H x W."""

    def __init__(self, classes: int = 13) -> None:
        super().__init__()
        self.backbone = nn.Conv2d(3, 4, 1)
        self.head = nn.Conv2d(4, classes, 1)

    def forward(self, x):
        return self.head(self.backbone(x))

    def _freeze(self, frozen: bool) -> None:
        for p in self.backbone.parameters():
            p.requires_grad_(not frozen)


# --------------------------------------------------------------------------- contract


class FCN32s(_Net):
    def __init__(self, num_classes: int, freeze_backbone: bool = False, pretrained: bool = True) -> None:
        super().__init__(num_classes)
        self._freeze(freeze_backbone)


class FCN16s(FCN32s):
    pass


class FCN8s(FCN32s):
    pass


class UNet(_Net):
    def __init__(self, num_classes: int, in_channels: int = 3) -> None:
        super().__init__(num_classes)


class UNetNoSkip(UNet):
    pass


class ResidualUNet(UNet):
    pass


class AttentionUNet(UNet):
    pass


CONTRACT = [c(cls, source="fcn.py" if cls.__name__.startswith("FCN") else "unet.py")
            for cls in (FCN32s, FCN16s, FCN8s, UNet, UNetNoSkip, ResidualUNet, AttentionUNet)]


def test_contract_classes_build_every_variant():
    for variant in SPEC.variants:
        p = ok(plan(variant.id, *CONTRACT))
        assert p.adapter == "contract"
        assert p.factory.__name__ == variant.class_name
        if variant.family.id == "fcn":
            assert p.kwargs == {"num_classes": 13, "freeze_backbone": variant.traits["frozen"], "pretrained": False}
        else:
            assert p.kwargs == {"num_classes": 13}
        assert p.after == () and p.notes == ()
    p = ok(plan("fcn8s_frozen", *CONTRACT))
    assert p.description == ("FCN8s ← FCN8s(num_classes=13, freeze_backbone=True, pretrained=False) "
                             "from fcn.py, adapter: contract")
    model = p.build()
    assert not any(q.requires_grad for q in model.backbone.parameters())
    assert ok(plan("fcn8s_finetune", *CONTRACT, pretrained=True)).kwargs["pretrained"] is True


def test_contract_names_ignore_case_and_underscores():
    p = ok(plan("fcn16s_frozen", c(FCN16s, "fcn_16s"), c(FCN8s, "Fcn8S")))
    assert p.factory is FCN16s and p.adapter == "contract"
    assert ok(plan("fcn8s_frozen", c(FCN16s, "fcn_16s"), c(FCN8s, "Fcn8S"))).factory is FCN8s
    assert ok(plan("unet_noskip", c(UNet), c(UNetNoSkip, "unet_no_skip"))).factory is UNetNoSkip


def test_contract_class_taking_kwargs_gets_the_contract_names():
    class KwFCN(_Net):
        def __init__(self, **kwargs):
            super().__init__(kwargs["num_classes"])
            self.seen = kwargs

    p = ok(plan("fcn8s_frozen", c(KwFCN, "FCN8s")))
    assert p.kwargs == {"num_classes": 13, "freeze_backbone": True, "pretrained": False}
    assert any("**kwargs" in note for note in p.notes)
    assert p.build().seen == p.kwargs


def test_function_named_like_the_contract_and_partials():
    def fcn8s(num_classes, pretrained=True):
        return FCN8s(num_classes, pretrained=pretrained)

    def build_model(num_classes):   # not named like anything: ignored
        return FCN8s(num_classes)

    p = ok(plan("fcn8s_frozen", c(fcn8s), c(build_model)))
    assert p.factory is fcn8s and p.kwargs == {"num_classes": 13, "pretrained": False}
    assert "no freeze option" in p.adapter
    q = ok(plan("fcn16s_finetune", c(functools.partial(FCN16s, pretrained=True), "FCN16s")))
    assert q.kwargs == {"num_classes": 13, "freeze_backbone": False, "pretrained": False}


def test_positional_only_parameters_are_passed_positionally():
    class PosOnly(_Net):
        def __init__(self, n_classes, /, in_ch=3):
            super().__init__(n_classes)

    p = ok(plan("unet", c(PosOnly, "UNet")))
    assert p.args == (13,) and p.kwargs == {}
    assert p.description == "UNet ← UNet(13) from model.py, adapter: contract"
    assert p.build().head.out_channels == 13


def test_non_models_are_not_candidates():
    class UNetDataset:                 # not an nn.Module
        def __init__(self, root):
            self.root = root

    class DoubleConv(nn.Module):       # a helper block with an out_channels argument
        def __init__(self, in_channels, out_channels, residual=False):
            super().__init__()

    r = plan("unet", c(UNetDataset, "UNet"), c(DoubleConv, "UNetBlock"), c(UNet(13), "model"))
    assert isinstance(r, Unresolved) and r.status == "missing"
    assert "UNet in model.py is named like UNet but is not a torch.nn.Module" in r.message
    assert isinstance(plan("unet_residual", c(DoubleConv, "UNetResBlock")), Unresolved)


# --------------------------------------------------------------------------- FCN: one class with a variant argument


class FCNByVariant(_Net):
    def __init__(self, num_classes, variant="fcn32s", pretrained=True, update_weights=True):
        super().__init__(num_classes)
        if variant == "fcn8s":
            self.stride = 8
        elif variant == "fcn16s":
            self.stride = 16
        else:
            self.stride = 32
        self._freeze(not update_weights)


class FCNByMode(_Net):
    def __init__(self, n_classes, mode: str = "32s"):
        super().__init__(n_classes)
        self.stride = {"32s": 32, "16s": 16, "8s": 8}[mode]


class FCNByArch(_Net):
    def __init__(self, arch, num_classes=13):
        super().__init__(num_classes)
        self.stride = {"fcn_32s": 32, "fcn_16s": 16, "fcn_8s": 8}[arch]


class FCNByStride(_Net):
    def __init__(self, num_classes, stride: int = 32, freeze=False):
        super().__init__(num_classes)
        self.stride = stride
        self._freeze(freeze)


class FCNByLiteral(_Net):
    def __init__(self, num_classes, type: Literal["FCN-32s", "FCN-16s", "FCN-8s"]):
        super().__init__(num_classes)
        self.stride = int(type[4:-1])


@pytest.mark.parametrize("cls, values", [
    (FCNByVariant, {8: "fcn8s", 16: "fcn16s", 32: "fcn32s"}),
    (FCNByMode, {8: "8s", 16: "16s", 32: "32s"}),
    (FCNByArch, {8: "fcn_8s", 16: "fcn_16s", 32: "fcn_32s"}),
    (FCNByStride, {8: 8, 16: 16, 32: 32}),
    (FCNByLiteral, {8: "FCN-8s", 16: "FCN-16s", 32: "FCN-32s"}),
])
def test_one_fcn_class_with_a_variant_argument(cls, values):
    for stride, value in values.items():
        p = ok(plan(f"fcn{stride}s_frozen", c(cls, "FCN", "fcn.py")))
        assert p.adapter.startswith("variant argument")
        assert value in p.kwargs.values()
        assert p.build().stride == stride


def test_variant_argument_description_and_inverted_freeze_flag():
    frozen = ok(plan("fcn8s_frozen", c(FCNByVariant, "FCN", "fcn.py")))
    assert frozen.description == ("FCN8s ← FCN(num_classes=13, variant='fcn8s', pretrained=False, "
                                  "update_weights=False) from fcn.py, adapter: variant argument + inverted freeze flag")
    assert not any(q.requires_grad for q in frozen.build().backbone.parameters())
    tuned = ok(plan("fcn8s_finetune", c(FCNByVariant, "FCN", "fcn.py")))
    assert tuned.kwargs["update_weights"] is True
    assert all(q.requires_grad for q in tuned.build().backbone.parameters())


def test_fcn_class_without_a_variant_argument_is_reported():
    class FCN(_Net):
        def __init__(self, num_classes):
            super().__init__(num_classes)

    r = plan("fcn16s_frozen", c(FCN, source="fcn.py"))
    assert r.status == "missing"
    assert "FCN in fcn.py has no argument choosing the output stride" in r.message


class SegModel(_Net):
    """One family class not named FCN: its variant argument's values say FCN and the stride."""

    def __init__(self, arch="fcn32s", num_classes=13, freeze=True, pretrained=True):
        super().__init__(num_classes)
        assert arch in ("fcn32s", "fcn16s", "fcn8s"), arch
        self.stride = int(arch[3:-1])
        self._freeze(freeze)


class Segmenter(_Net):   # a variant-like argument whose values are not FCN strides: not an FCN
    def __init__(self, num_classes=13, mode="train"):
        super().__init__(num_classes)
        self.stride = 8 if mode == "8" else 32


def test_a_family_class_under_another_name_with_fcn_values():
    for stride in (8, 16, 32):
        p = ok(plan(f"fcn{stride}s_frozen", c(SegModel, source="models.py"), c(Segmenter, source="models.py")))
        assert p.description == (f"FCN{stride}s ← SegModel(arch='fcn{stride}s', num_classes=13, freeze=True, "
                                 "pretrained=False) from models.py, adapter: variant argument + freeze flag")
        assert p.build().stride == stride
    assert ok(plan("fcn8s_finetune", c(SegModel, source="models.py"))).kwargs["freeze"] is False
    assert isinstance(plan("fcn8s_frozen", c(Segmenter, source="models.py")), Unresolved)


# --------------------------------------------------------------------------- FCN: three classes with other names


class FCN8(FCN32s):
    pass


class VGG16FCN16s(FCN32s):
    pass


class FCN_VGG16_32s(FCN32s):
    pass


class FCN8sHead(nn.Module):     # a building block: never a candidate
    def __init__(self, num_classes):
        super().__init__()


def test_three_fcn_classes_with_other_names():
    cands = [c(cls, source="nets.py") for cls in (FCN8, VGG16FCN16s, FCN_VGG16_32s, FCN8sHead)]
    for stride, cls in ((8, FCN8), (16, VGG16FCN16s), (32, FCN_VGG16_32s)):
        p = ok(plan(f"fcn{stride}s_finetune", *cands))
        assert p.factory is cls and p.adapter == "name pattern"


def test_dedicated_fcn_class_beats_the_family_class():
    p = ok(plan("fcn8s_frozen", c(FCNByVariant, "FCN", "fcn.py"), c(FCN8, source="fcn.py")))
    assert p.factory is FCN8


def test_freeze_words_in_class_names_pick_the_right_class():
    class FCN8sFrozen(FCN32s):
        pass

    class FCN8sFinetuned(FCN32s):
        pass

    cands = [c(FCN8sFrozen), c(FCN8sFinetuned)]
    assert ok(plan("fcn8s_frozen", *cands)).factory is FCN8sFrozen
    assert ok(plan("fcn8s_finetune", *cands)).factory is FCN8sFinetuned


# --------------------------------------------------------------------------- freezing


class FrozenByFlag(_Net):
    def __init__(self, num_classes, frozen=True):
        super().__init__(num_classes)
        self._freeze(frozen)


class FrozenByMethod(_Net):
    def __init__(self, num_classes, pretrained_backbone=True):
        super().__init__(num_classes)

    def freeze_backbone(self):
        self._freeze(True)


class FrozenByDefault(_Net):
    def __init__(self, num_classes):
        super().__init__(num_classes)
        self._freeze(True)


class FrozenUnlessUnfrozen(_Net):
    def __init__(self, num_classes, weights=None):
        super().__init__(num_classes)
        self._freeze(True)

    def unfreeze(self):
        self._freeze(False)


def test_a_fine_tuned_subclass_beats_the_contract_class_frozen_by_default():
    """FCN8s frozen in its constructor, FCN8s_FT(FCN8s) unfreezing it: the fine-tuned
    variant is built from FCN8s_FT (its name says so), the frozen one from FCN8s."""
    class FT(FrozenByDefault):
        def __init__(self, num_classes):
            super().__init__(num_classes)
            self._freeze(False)

    for name in ("FCN8s_FT", "FCN8sFT", "FCN8sFinetune"):
        cands = [c(FrozenByDefault, "FCN8s"), c(FT, name)]
        tuned = ok(plan("fcn8s_finetune", *cands))
        assert tuned.factory is FT and tuned.adapter.startswith("name pattern"), name
        assert all(q.requires_grad for q in tuned.build().backbone.parameters())
        assert ok(plan("fcn8s_frozen", *cands)).factory is FrozenByDefault
    # a name that says nothing about the backbone still loses to the contract name
    assert ok(plan("fcn8s_finetune", c(FrozenByDefault, "FCN8s"), c(FT, "FCN8sLeft"))).factory is FrozenByDefault


def test_the_fine_tuning_tutorials_feature_extract_flag_freezes():
    class FCN8s(_Net):
        def __init__(self, num_classes, feature_extract=True, use_pretrained=True):
            super().__init__(num_classes)
            self._freeze(feature_extract)

    frozen = ok(plan("fcn8s_frozen", c(FCN8s)))
    assert frozen.kwargs == {"num_classes": 13, "feature_extract": True, "use_pretrained": False}
    assert frozen.adapter == "contract + freeze flag"
    tuned = ok(plan("fcn8s_finetune", c(FCN8s)))
    assert tuned.kwargs["feature_extract"] is False
    assert all(q.requires_grad for q in tuned.build().backbone.parameters())


def test_freeze_by_flag():
    p = ok(plan("fcn8s_frozen", c(FrozenByFlag, "FCN8s")))
    assert p.kwargs == {"num_classes": 13, "frozen": True} and p.adapter == "contract + freeze flag"
    assert ok(plan("fcn8s_finetune", c(FrozenByFlag, "FCN8s"))).kwargs["frozen"] is False


@pytest.mark.parametrize("flag", ["train_backbone", "finetune", "fine_tune", "trainable_backbone"])
def test_inverted_freeze_flags(flag):
    cls = type("FCN16s", (_Net,), {"__init__": eval(f"lambda self, num_classes, {flag}=True: _Net.__init__(self, num_classes)",
                                                     {"_Net": _Net})})
    assert ok(plan("fcn16s_frozen", c(cls))).kwargs[flag] is False
    assert ok(plan("fcn16s_finetune", c(cls))).kwargs[flag] is True
    assert "inverted freeze flag" in ok(plan("fcn16s_frozen", c(cls))).adapter


def test_freeze_flags_found_by_pattern_and_look_alikes_left_alone():
    class Odd(_Net):
        def __init__(self, num_classes, training=True, freeze_vgg_layers=False, unfreeze_head=True):
            super().__init__(num_classes)

    p = ok(plan("fcn8s_frozen", c(Odd, "FCN8s")))
    assert p.kwargs == {"num_classes": 13, "freeze_vgg_layers": True}   # training and unfreeze_head untouched

    class OnlyUnfreeze(_Net):
        def __init__(self, num_classes, unfreeze_backbone=False):
            super().__init__(num_classes)

    assert ok(plan("fcn8s_frozen", c(OnlyUnfreeze, "FCN8s"))).kwargs["unfreeze_backbone"] is False
    assert ok(plan("fcn8s_finetune", c(OnlyUnfreeze, "FCN8s"))).kwargs["unfreeze_backbone"] is True


def test_freeze_by_method_is_called_after_construction():
    p = ok(plan("fcn32s_frozen", c(FrozenByMethod, "FCN32s", "fcn.py")))
    assert p.after == (("freeze_backbone", {}),)
    assert p.adapter == "contract + freeze method"
    assert p.kwargs == {"num_classes": 13, "pretrained_backbone": False}
    assert p.description == ("FCN32s ← FCN32s(num_classes=13, pretrained_backbone=False).freeze_backbone() "
                             "from fcn.py, adapter: contract + freeze method")
    model = p.build()
    assert not any(q.requires_grad for q in model.backbone.parameters())
    assert all(q.requires_grad for q in model.head.parameters())

    tuned = ok(plan("fcn32s_finetune", c(FrozenByMethod, "FCN32s", "fcn.py")))
    assert tuned.after == ()
    assert tuned.notes == ("fine-tuned: built as the class defaults, without calling freeze_backbone()",)
    assert all(q.requires_grad for q in tuned.build().backbone.parameters())


def test_frozen_by_default_is_built_as_is_and_said():
    for variant_id in ("fcn8s_frozen", "fcn8s_finetune"):
        p = ok(plan(variant_id, c(FrozenByDefault, "FCN8s")))
        assert p.kwargs == {"num_classes": 13} and p.after == ()
        assert p.adapter == "contract + no freeze option"
        assert any(n.startswith("no freeze option found in FCN8s") for n in p.notes)
        assert any("pretrained switch" in n for n in p.notes)


def test_unfreeze_method_for_fine_tuning_and_weights_argument():
    tuned = ok(plan("fcn8s_finetune", c(FrozenUnlessUnfrozen, "FCN8s")))
    assert tuned.after == (("unfreeze", {}),) and tuned.kwargs == {"num_classes": 13, "weights": None}
    assert all(q.requires_grad for q in tuned.build().backbone.parameters())
    frozen = ok(plan("fcn8s_frozen", c(FrozenUnlessUnfrozen, "FCN8s"), pretrained=True))
    assert frozen.kwargs["weights"] == "IMAGENET1K_V1" and "no freeze option" in frozen.adapter


# --------------------------------------------------------------------------- U-Net: one class with flags, aliases


class FlagUNet(_Net):
    def __init__(self, n_channels, n_classes, use_skip_connections=True, use_residual_block=False,
                 use_gated_attention=False):
        super().__init__(n_classes)
        self.flags = (n_channels, use_skip_connections, use_residual_block, use_gated_attention)


def test_one_unet_class_with_flags_gives_all_four_unets():
    expected = {"unet": (3, True, False, False), "unet_noskip": (3, False, False, False),
                "unet_residual": (3, True, True, False), "unet_attention": (3, True, False, True)}
    for variant_id, flags in expected.items():
        p = ok(plan(variant_id, c(FlagUNet, "UNet")))
        assert p.build().flags == flags
        assert p.adapter == ("contract + flags" if variant_id == "unet" else "flags")
    assert ok(plan("unet_noskip", c(FlagUNet, "UNet"))).description == (
        "UNetNoSkip ← UNet(n_channels=3, n_classes=13, use_skip_connections=False, use_residual_block=False, "
        "use_gated_attention=False) from model.py, adapter: flags")


def test_other_flag_names():
    class Net(_Net):
        def __init__(self, n_classes, in_ch, skip=True, res=False, attn=False, no_skip=False):
            super().__init__(n_classes)
            self.flags = (in_ch, skip, res, attn, no_skip)

    assert ok(plan("unet_noskip", c(Net, "MyUNet"))).build().flags == (3, False, False, False, True)
    assert ok(plan("unet_attention", c(Net, "MyUNet"))).build().flags == (3, True, False, True, False)


def test_dedicated_class_beats_flags():
    cands = [c(FlagUNet, "UNet"), c(UNetNoSkip, source="noskip.py")]
    assert ok(plan("unet_noskip", *cands)).factory is UNetNoSkip
    p = ok(plan("unet", *cands))
    assert p.factory is FlagUNet and p.build().flags == (3, True, False, False)


def test_flag_class_without_the_needed_flag():
    class SkipOnlyUNet(_Net):
        def __init__(self, num_classes, use_skip=True):
            super().__init__(num_classes)

    assert ok(plan("unet_noskip", c(SkipOnlyUNet, "UNet"))).kwargs == {"num_classes": 13, "use_skip": False}
    r = plan("unet_residual", c(SkipOnlyUNet, "UNet"))
    assert r.status == "missing"
    assert "UNet(num_classes, use_skip) has no residual-block flag" in r.message


def test_aliases_and_class_count_names():
    class VanillaUNet(_Net):
        def __init__(self, in_channels=3, out_channels=1):
            super().__init__(out_channels)

    class NoSkipUNet(_Net):
        def __init__(self, classes):
            super().__init__(classes)

    class GatedAttentionUNet(_Net):
        def __init__(self, n_channels=3, n_classes=2):
            super().__init__(n_classes)

    cands = [c(VanillaUNet), c(NoSkipUNet), c(GatedAttentionUNet)]
    assert ok(plan("unet", *cands)).kwargs == {"out_channels": 13}
    assert ok(plan("unet_noskip", *cands)).kwargs == {"classes": 13}
    p = ok(plan("unet_attention", *cands))
    assert p.kwargs == {"n_classes": 13} and p.adapter == "alias"
    assert p.build().head.out_channels == 13
    assert isinstance(plan("unet_residual", *cands), Unresolved)


def test_unet_names_that_say_the_variant():
    class UNetWithoutSkips(_Net):
        def __init__(self, num_classes):
            super().__init__(num_classes)

    class UNetAttn(UNetWithoutSkips):
        pass

    cands = [c(UNetWithoutSkips), c(UNetAttn)]
    assert ok(plan("unet_noskip", *cands)).factory is UNetWithoutSkips
    assert ok(plan("unet_attention", *cands)).adapter == "name pattern"


class KindUNet(_Net):
    """One U-Net class whose string argument chooses the kind, as many students write it."""

    def __init__(self, num_classes=13, mode="vanilla", up_mode="bilinear"):
        super().__init__(num_classes)
        self.kind = mode
        if mode == "residual":
            self.block = "res"
        elif mode == "attention":
            self.gate = True
        self.skip = mode != "noskip"


class LiteralKindUNet(_Net):
    def __init__(self, n_classes, variant: Literal["UNet", "UNet-NoSkip", "ResUNet", "AttUNet"] = "UNet"):
        super().__init__(n_classes)
        self.kind = variant


class UNetKind(Enum):
    PLAIN = "plain"
    NO_SKIP = "no_skip"
    RESIDUAL = "residual"
    GATED_ATTENTION = "gated_attention"


class EnumKindUNet(_Net):
    def __init__(self, num_classes, kind: UNetKind = UNetKind.PLAIN):
        super().__init__(num_classes)
        self.kind = kind


class UpModeUNet(_Net):   # `mode` chooses the upsampling, not the kind of U-Net
    def __init__(self, num_classes, mode="bilinear"):
        super().__init__(num_classes)
        self.kind = "nearest" if mode == "nearest" else "transpose"


def test_one_unet_class_with_an_argument_choosing_the_kind():
    expected = {"unet": "vanilla", "unet_noskip": "noskip", "unet_residual": "residual",
                "unet_attention": "attention"}
    for variant_id, kind in expected.items():
        p = ok(plan(variant_id, c(KindUNet, "UNet")))
        assert p.build().kind == kind
        assert p.adapter == ("contract" if variant_id == "unet" else "variant argument")
    assert ok(plan("unet_noskip", c(KindUNet, "UNet"))).description == (
        "UNetNoSkip ← UNet(num_classes=13, mode='noskip') from model.py, adapter: variant argument")
    literal = {"unet": "UNet", "unet_noskip": "UNet-NoSkip", "unet_residual": "ResUNet", "unet_attention": "AttUNet"}
    for variant_id, kind in literal.items():
        assert ok(plan(variant_id, c(LiteralKindUNet, "MyUNet"))).build().kind == kind
    enum_kinds = {"unet": UNetKind.PLAIN, "unet_noskip": UNetKind.NO_SKIP, "unet_residual": UNetKind.RESIDUAL,
                  "unet_attention": UNetKind.GATED_ATTENTION}
    for variant_id, kind in enum_kinds.items():
        assert ok(plan(variant_id, c(EnumKindUNet, "UNet"))).build().kind is kind
    # a dedicated class still wins over the family class
    assert ok(plan("unet_noskip", c(KindUNet, "UNet"), c(UNetNoSkip, source="noskip.py"))).factory is UNetNoSkip
    r = plan("unet_noskip", c(UpModeUNet, "UNet"))
    assert r.status == "missing"
    assert ("a U-Net class with a skip-connection flag (skip, skips, use_skip, use_skips...); a U-Net class with an "
            "argument choosing the kind of U-Net (mode, variant, type, kind... = \"noskip\")") in r.message


def test_gated_and_misspelled_attention_names_say_attention():
    """`GatedUNet` (the assignment's "gated attention") and the misspelling `AtentionUNet` are
    the attention U-Net, not plain U-Nets that lack an attention flag; `AggregateUNet` is not."""
    for name in ("GatedUNet", "UNetGated", "AtentionUNet", "UNetAtencion"):
        cls = type(name, (_Net,), {"__init__": lambda self, n_channels, n_classes: _Net.__init__(self, n_classes)})
        p = ok(plan("unet_attention", c(cls), c(UNet)))
        assert p.factory is cls and p.adapter == "name pattern", name
        assert ok(plan("unet", c(cls), c(UNet))).factory is UNet
    aggregate = type("AggregateUNet", (_Net,), {})
    r = plan("unet_attention", c(aggregate))
    assert isinstance(r, Unresolved)
    assert "a U-Net class with an attention-gate flag (attention," in r.message


def test_a_plain_unet_with_its_parts():
    """The popular Pytorch-UNet layout: UNet(n_channels, n_classes, bilinear) and its blocks."""

    class DoubleConv(nn.Module):
        def __init__(self, in_channels, out_channels, mid_channels=None):
            super().__init__()

    class OutConv(DoubleConv):
        pass

    class _UNetBase(_Net):
        def __init__(self, num_classes):
            super().__init__(num_classes)

    class PlainUNet(_Net):
        def __init__(self, n_channels, n_classes, bilinear=False):
            super().__init__(n_classes)

    cands = [c(DoubleConv), c(OutConv), c(_UNetBase), c(_UNetBase, "_UNet"), c(PlainUNet, "UNet")]
    p = ok(plan("unet", *cands))
    assert p.kwargs == {"n_channels": 3, "n_classes": 13} and p.adapter == "contract"
    r = plan("unet_noskip", *cands)
    assert r.status == "missing"
    reason = ("UNet in model.py has no skip-connection flag (looked for skip, skips, use_skip, use_skips, "
              "skip_connections, use_skip_connections...)")
    assert r.candidates == (reason,)


def test_input_channels_filled_with_the_courses_channels():
    class GrayUNet(_Net):
        def __init__(self, n_classes, input_channels=1, base_width=64):
            super().__init__(n_classes)

    p = ok(plan("unet", c(FlagUNet, "UNet")))
    assert p.kwargs["n_channels"] == 3
    q = ok(plan("unet", c(GrayUNet, "UNet")))
    assert q.kwargs == {"n_classes": 13, "input_channels": 3}
    assert any("input_channels=3 instead of its default 1" in n for n in q.notes)
    # A grayscale course ([dataset] channels = 1): the same arguments get 1
    from dataclasses import replace

    gray = ok(plan_variant(replace(request("unet", False), in_channels=1), [c(FlagUNet, "UNet")], None))
    assert gray.kwargs["n_channels"] == 1

    class RGBDefault(_Net):
        def __init__(self, n_classes, in_channels=3):
            super().__init__(n_classes)

    r = ok(plan_variant(replace(request("unet", False), in_channels=1), [c(RGBDefault, "UNet")], None))
    assert r.kwargs["in_channels"] == 1
    assert any("in_channels=1 instead of its default 3: the inputs are grayscale images (one channel)" in n
               for n in r.notes)


# --------------------------------------------------------------------------- missing, ambiguous, unusable


def test_missing_lists_what_was_looked_for():
    r = plan("unet_noskip", c(UNet), c(ResidualUNet))
    assert isinstance(r, Unresolved) and r.status == "missing"
    for name in ("UNetNoSkip", "NoSkipUNet", "UNet_NoSkip"):
        assert name in r.looked_for and name in r.message
    assert "skip-connection flag" in r.message
    assert '[variants.unet_noskip]\nfactory = "path/to/file.py:ClassName"' in r.message
    fcn = plan("fcn8s_frozen")
    assert "FCN8s" in fcn.looked_for and "kwargs = { freeze_backbone = true }" in fcn.message


def test_ambiguous_names_the_candidates_and_the_manifest_lines():
    class FCN8sA(FCN32s):
        pass

    class FCN8sB(FCN32s):
        """Another take."""

    r = plan("fcn8s_frozen", c(FCN8sA, "FCN8s", "a.py"), c(FCN8sB, "FCN8s", "b.py"))
    assert isinstance(r, Unresolved) and r.status == "ambiguous"
    assert r.candidates == ("FCN8s in a.py", "FCN8s in b.py")
    assert '[variants.fcn8s_frozen]\nfactory = "a.py:FCN8s"\nkwargs = { freeze_backbone = true }' in r.message
    assert 'factory = "b.py:FCN8s"' in r.message


def test_one_class_under_two_names_is_not_ambiguous():
    p = ok(plan("fcn8s_frozen", c(FCN8s, "FCN8s", "fcn.py"), c(FCN8s, "FCN_8s", "fcn.py"),
                c(FCN8s, "FCN8s", "__init__.py")))
    assert p.factory is FCN8s and p.source == "fcn.py"


def test_required_parameter_segrade_cannot_fill():
    class DeepUNet(_Net):
        def __init__(self, n_channels, n_classes, depth):
            super().__init__(n_classes)

    r = plan("unet", c(DeepUNet, "UNet"))
    assert r.status == "missing"
    assert "UNet(n_channels, n_classes, depth) needs `depth`, which segrade can't guess: add a manifest" in r.message
    # A usable class lower down is taken, and the note says why the better-named one was not.
    p = ok(plan("unet", c(DeepUNet, "UNet"), c(UNet, "VanillaUNet")))
    assert p.adapter == "alias" and any("needs `depth`" in n for n in p.notes)


# --------------------------------------------------------------------------- manifest


MANIFEST = """
[variants.unet_noskip]
factory = "models/net.py:Net"
kwargs = { skip = false }

[variants.fcn8s_frozen]
factory = "models.net:Net"
after = "freeze_backbone"
"""


class Net(_Net):
    def __init__(self, n_class, skip=True, pretrained=True):
        super().__init__(n_class)
        self.skip = skip

    def freeze_backbone(self):
        self._freeze(True)


def test_manifest_parses_and_wins_over_everything():
    manifest = parse_manifest(MANIFEST)
    assert manifest["unet_noskip"] == {"factory": "models/net.py:Net", "kwargs": {"skip": False}, "after": [],
                                       "origin": "segrade.toml", "weights": None, "freeze": []}
    assert manifest["fcn8s_frozen"]["after"] == [{"method": "freeze_backbone", "kwargs": {}}]
    cands = [c(Net, source="models/net.py"), *CONTRACT]
    p = ok(plan("unet_noskip", *cands, manifest=manifest))
    assert p.factory is Net and p.adapter == "manifest"
    assert p.kwargs == {"n_class": 13, "skip": False}
    assert p.description == "UNetNoSkip ← Net(n_class=13, skip=False) from models/net.py, adapter: manifest"
    assert p.build().skip is False
    q = ok(plan("fcn8s_frozen", *cands, manifest=manifest))
    assert q.kwargs == {"n_class": 13, "pretrained": False} and q.after == (("freeze_backbone", {}),)
    assert not any(x.requires_grad for x in q.build().backbone.parameters())
    # Variants the manifest does not name still use the heuristics.
    assert ok(plan("unet", *cands, manifest=manifest)).factory is UNet


def test_manifest_pointing_at_nothing_or_at_wrong_arguments():
    manifest = parse_manifest('[variants.unet]\nfactory = "nets.py:UNet"\n', origin="course.toml")
    r = plan("unet", c(UNet, source="model.py"), c(Net, source="nets.py"), manifest=manifest)
    assert r.status == "missing"
    assert r.message.startswith("course.toml builds unet with nets.py:UNet, but no UNet was found in nets.py")
    assert "failed to import" in r.message and "Found in nets.py: Net" in r.message

    bad = parse_manifest('[variants.unet]\nfactory = "Net"\nkwargs = { depth = 4 }\n')
    r = plan("unet", c(Net, source="nets.py"), manifest=bad)
    assert r.status == "missing" and "has no parameter `depth`" in r.message

    class NeedsDepth(_Net):
        def __init__(self, num_classes, depth):
            super().__init__(num_classes)

    needs = parse_manifest('[variants.unet]\nfactory = "NeedsDepth"\n')
    r = plan("unet", c(NeedsDepth), manifest=needs)
    assert "needs `depth`: add depth to kwargs" in r.message
    ok(plan("unet", c(NeedsDepth), manifest=parse_manifest('[variants.unet]\nfactory = "NeedsDepth"\nkwargs = {depth = 4}')))


def test_manifest_errors_name_the_file_and_the_variant():
    cases = {
        "[variants.unet\n": "segrade.toml is not valid TOML",
        '[variants.unet]\nfactory = "unet.py"\n': 'segrade.toml: [variants.unet]: factory = \'unet.py\': must look like',
        '[variants.unet]\nfactory = "../x.py:UNet"\n': "inside the submission",
        '[variants.unet]\nfactory = "unet.py:UNet"\nkwarg = {}\n': "unknown key 'kwarg' (did you mean 'kwargs'?)",
        '[variants.unet]\nkwargs = {}\n': "[variants.unet] needs factory",
        '[variants.unet]\nfactory = "unet.py:UNet"\nafter = 3\n': "after must be a method name or a list",
        '[variants.unet]\nfactory = "unet.py:UNet"\nafter = ["freeze()"]\n': "not a method name",
        '[unet]\nfactory = "unet.py:UNet"\n': "unknown top-level key(s) 'unet'",
        'variants = 3\n': "must be tables",
        '[variants.unet]\nfactory = "u.py:U"\nkwargs = { when = 2024-01-01 }\n': "kwargs hold a date",
    }
    for text, message in cases.items():
        with pytest.raises(ManifestError) as info:
            parse_manifest(text)
        assert message in str(info.value), (text, str(info.value))
    after = parse_manifest('[variants.a]\nfactory = "m.py:A"\nafter = [{ method = "freeze", kwargs = { n = 2 } }]')
    assert after["a"]["after"] == [{"method": "freeze", "kwargs": {"n": 2}}]


def test_check_manifest_ids():
    manifest = parse_manifest('[variants.unet_noskips]\nfactory = "u.py:U"\n', origin="segrade.toml")
    with pytest.raises(ManifestError, match=r"\[variants.unet_noskips\] is not a variant of this assignment "
                                            r"\(did you mean 'unet_noskip'\?\)"):
        check_manifest_ids(manifest, IDS)
    check_manifest_ids(parse_manifest('[variants.unet]\nfactory = "u.py:U"\n'), IDS)


# --------------------------------------------------------------------------- requests and outputs


def test_variant_request_from_json():
    new = VariantRequest.from_json({"id": "fcn8s_frozen", "family": "fcn", "class_name": "FCN8s", "aliases": [],
                                    "traits": {"stride": 8, "frozen": True}, "num_classes": 13, "pretrained": False,
                                    "input_size": 224})
    assert new == VariantRequest("fcn8s_frozen", "fcn", "FCN8s", (), {"stride": 8, "frozen": True}, 13, False, 224)
    assert new.contract_kwargs() == {"num_classes": 13, "freeze_backbone": True, "pretrained": False}
    with pytest.raises(ProtocolError, match="unknown key 'class'"):   # checked against its schema
        VariantRequest.from_json({**new.to_json(), "class": "FCN8s"})
    assert VariantRequest.from_json(request("unet").to_json()) == request("unet")


def test_to_logits():
    x = torch.zeros(2, 13, 4, 4)
    assert to_logits(x) is x
    assert to_logits({"out": x, "aux": torch.ones(2, 13, 4, 4)}) is x
    assert to_logits({"seg": x}) is x
    assert to_logits((torch.tensor(0.5), x)) is x          # (loss, pred)
    assert to_logits([x, torch.ones(1)]) is x
    with pytest.raises(TypeError, match="forward returned ndarray, not a tensor"):
        to_logits(x.numpy())
    with pytest.raises(TypeError, match="cannot tell which is the logits"):
        to_logits({"a": x, "b": x})
    with pytest.raises(TypeError, match=r"tuple of \(str, int\) with no tensor"):
        to_logits(("loss", 3))


# --------------------------------------------------------------------------- issue 19: real shapes


class FCNVariant(Enum):
    FCN32S = "fcn32s"
    FCN16S = "fcn16s"
    FCN8S = "fcn8s"


class Arch(Enum):   # members by name only
    FCN_32 = auto()
    FCN_16 = auto()
    FCN_8 = auto()


class EnumFCN(_Net):
    def __init__(self, variant: FCNVariant, num_classes: int, freeze_backbone: bool = True) -> None:
        super().__init__(num_classes)


class NetArgFCN(_Net):
    def __init__(self, num_classes=13, net: Arch = Arch.FCN_32) -> None:
        super().__init__(num_classes)


def test_enum_variant_arguments_get_a_member_by_value_or_name():
    p = ok(plan("fcn8s_frozen", c(EnumFCN, "FCN")))
    assert p.kwargs["variant"] is FCNVariant.FCN8S
    assert "FCN(variant=FCNVariant.FCN8S, num_classes=13, freeze_backbone=True)" in p.description
    p = ok(plan("fcn16s_finetune", c(NetArgFCN, "FCN")))
    assert p.kwargs["net"] is Arch.FCN_16


def test_manifest_names_an_enum_member_or_says_which_exist():
    for value in ("FCNVariant.FCN16S", "fcn16s_", "FCN16S", "fcn16s"):
        manifest = parse_manifest(f'[variants.fcn16s_frozen]\nfactory = "model.py:FCN"\nkwargs = {{ variant = "{value}" }}\n')
        result = plan("fcn16s_frozen", c(EnumFCN, "FCN"), manifest=manifest)
        if value == "fcn16s_":
            assert result.message.endswith("variant = 'fcn16s_' is not a member of FCNVariant: write one of "
                                           '"FCNVariant.FCN32S", "FCNVariant.FCN16S", "FCNVariant.FCN8S"')
        else:
            assert ok(result).kwargs["variant"] is FCNVariant.FCN16S


def test_class_count_and_channels_by_name_pattern():
    class Seg(_Net):
        def __init__(self, image_channels: int = 1, output_classes: int = 33, class_weights=None) -> None:
            super().__init__(output_classes)

    p = ok(plan("unet", c(Seg, "UNet")))
    assert p.kwargs == {"image_channels": 3, "output_classes": 13}

    class Red(_Net):   # a Spanish-speaking student's names
        def __init__(self, num_clases=2, canales=3, ancho=16) -> None:
            super().__init__(num_clases)

    assert ok(plan("unet", c(Red, "UNet"))).kwargs == {"num_clases": 13}


def test_backbone_choice_gets_vgg16_in_the_class_style():
    import torchvision

    class Named(_Net):
        def __init__(self, num_classes=13, variant="fcn8s", backbone_name="vgg19", freeze_backbone=False) -> None:
            super().__init__(num_classes)

    class Builder(_Net):
        def __init__(self, num_classes=13, variant="fcn8s", backbone=torchvision.models.vgg19_bn) -> None:
            super().__init__(num_classes)

    class Other(_Net):
        def __init__(self, num_classes=13, variant="fcn8s", backbone="resnet50") -> None:
            super().__init__(num_classes)

    p = ok(plan("fcn16s_frozen", c(Named, "FCN")))
    assert p.kwargs["backbone_name"] == "vgg16" and "backbone argument" in p.adapter
    assert "backbone_name='vgg16' instead of its default 'vgg19': the assignment's backbone is VGG16" in p.notes
    assert ok(plan("fcn16s_frozen", c(Builder, "FCN"))).kwargs["backbone"] is torchvision.models.vgg16_bn
    other = ok(plan("fcn16s_frozen", c(Other, "FCN")))
    assert "backbone" not in other.kwargs
    assert "FCN's backbone defaults to 'resnet50' and segrade found no VGG16 value for it" in " ".join(other.notes)


def test_an_abstract_base_gives_way_to_a_concrete_class():
    class UNet(_Net):
        def forward(self, x):
            """Subclasses implement forward."""
            raise NotImplementedError

    class VanillaUNet(UNet):
        def forward(self, x):
            return self.head(self.backbone(x))

    p = ok(plan("unet", c(UNet), c(VanillaUNet)))
    assert p.factory is VanillaUNet
    assert "UNet in model.py is an abstract base (its forward raises NotImplementedError): not built" in p.notes
    assert ok(plan("unet", c(UNet))).factory is UNet   # alone, it is still tried (and its error shown)


def test_a_constructor_that_takes_the_device_gets_the_one_segrade_builds_on():
    """Colab code passes the device to the model (`UNet(13, device)`, `device="cuda"`): required,
    it made the class unusable; defaulted to a GPU, it failed on a CPU machine. It is given the
    worker's device, said in the mapping, and a changed default in a note; a manifest that
    leaves it out gets it too."""
    import torch

    from grader.worker.adapters import BuildContext

    class UNet(_Net):
        def __init__(self, num_classes, device, use_skip=True):
            super().__init__(num_classes)
            self.device = device

    class GpuUNet(_Net):
        def __init__(self, num_classes, use_skip=True, device="cuda:0"):
            super().__init__(num_classes)

    cpu = BuildContext(device=torch.device("cpu"))
    p = ok(plan_variant(request("unet"), [c(UNet)], None, context=cpu))
    assert p.kwargs["device"] == torch.device("cpu")
    assert "UNet(num_classes=13, device=torch.device('cpu'), use_skip=True)" in p.description
    assert p.build().device == torch.device("cpu")
    p = ok(plan_variant(request("unet_noskip"), [c(GpuUNet)], None, context=cpu))
    assert p.kwargs["device"] == torch.device("cpu")
    assert "device=cpu instead of its default 'cuda:0': the device segrade builds and measures on" in p.notes
    pinned = parse_manifest('[variants.unet]\nfactory = "model.py:UNet"\nkwargs = { use_skip = true }\n')
    p = ok(plan_variant(request("unet"), [c(UNet)], pinned, context=cpu))
    assert p.kwargs["device"] == torch.device("cpu") and "device=cpu added by segrade: the device it builds and " \
        "measures on" in p.notes


def test_a_constructor_that_requires_an_input_size_gets_the_familys():
    """`UNet(img_size, ...)` for a fixed upsampling made the class unusable; it is given the
    size segrade builds for, with a note. A size with a default is left as the class has it."""
    class SizedUNet(_Net):
        def __init__(self, img_size, num_classes, use_skip=True):
            super().__init__(num_classes)

    class DefaultSized(_Net):
        def __init__(self, num_classes, use_skip=True, image_size=256):
            super().__init__(num_classes)

    size = request("unet").input_size
    p = ok(plan("unet", c(SizedUNet, "UNet")))
    assert p.kwargs["img_size"] == size
    assert f"img_size={size}: the constructor requires an input size, and segrade gives the one it builds for; " \
           "the model is measured at other sizes too" in p.notes
    assert "image_size" not in ok(plan("unet", c(DefaultSized, "UNet"))).kwargs


def test_a_constructor_that_requires_a_network_object_is_told_how_to_pin_it():
    """`FCNs(pretrained_net, n_class)` (a popular FCN repository's shape: the VGG built outside
    and passed in): no TOML value is a network, so the message asks for a builder function."""
    class FCNs(_Net):
        def __init__(self, pretrained_net, n_class):
            super().__init__(n_class)

    result = plan("fcn8s_frozen", c(FCNs, "FCN8s"))
    assert isinstance(result, Unresolved)
    assert ("FCN8s(pretrained_net, n_class) needs `pretrained_net`, and `pretrained_net` is a network object that no "
            "one class of the submission fits (a VGG class for an FCN, or one named after it), which a manifest's "
            "kwargs cannot give either: add a function that builds the model, e.g. `def "
            "build_fcn8s_frozen(num_classes): return FCN8s(pretrained_net=..., ...)`") in result.message, result.message



def test_a_network_argument_is_built_from_the_one_class_that_fits_it():
    """`UNet(encoder, num_classes)` with the submission's Encoder passed in:
    built from that class, with its own flags; two classes that fit make it unusable again."""
    from grader.worker.adapters import BuildContext

    class Encoder(_Net):
        def __init__(self, pretrained=True):
            super().__init__(4)

    class WithEncoder(_Net):
        def __init__(self, encoder, num_classes, use_skip=True):
            super().__init__(num_classes)
            self.encoder = encoder

    classes = (c(Encoder), c(WithEncoder))
    p = ok(plan_variant(request("unet"), [c(WithEncoder, "UNet")], None, context=BuildContext(classes=classes)))
    assert "UNet(encoder=Encoder(), num_classes=13, use_skip=True)" in p.description   # a U-Net has no pretrained switch
    assert isinstance(p.build().encoder, Encoder)

    class OtherEncoder(Encoder):
        pass

    two = BuildContext(classes=(*classes, c(OtherEncoder)))
    assert isinstance(plan_variant(request("unet"), [c(WithEncoder, "UNet")], None, context=two), Unresolved)
