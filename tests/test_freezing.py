"""Backbones frozen by a submission's top-level code (grader.submission.freezing), and how the
worker's adapters apply them (grader.worker.adapters): read from the syntax tree, never run."""

from __future__ import annotations

import textwrap

from torch import nn

from grader.shared.protocol import TopLevelFreeze
from grader.submission.freezing import top_level_freezes
from grader.worker.adapters.filling import top_level_steps
from grader.worker.adapters.plans import BuildPlan, Candidate, apply_freeze


def found(source: str, rel: str = "train.py") -> list[tuple]:
    return [(f["class_name"], f["instance"], f["select"], f["path"], f["requires_grad"])
            for f in top_level_freezes(textwrap.dedent(source), rel)]


def test_the_usual_ways_of_freezing_in_a_notebook_are_found():
    assert found("""
        import torch
        from fcn import FCN32s, FCN16s, FCN8s
        feature_extract = True
        def set_parameter_requires_grad(model, feature_extracting):
            '''The fine-tuning tutorial's helper.'''
            if feature_extracting:
                for param in model.parameters():
                    param.requires_grad = False
        a = FCN32s(13).to(device)
        set_parameter_requires_grad(a.features, feature_extract)
        b = FCN16s(13)
        b = b.cuda()
        for p in b.features.parameters():
            p.requires_grad = False
        c = models.FCN8s(num_classes=13)
        for name, p in c.named_parameters():
            if name.startswith(("features", "vgg")) or "backbone" in name:
                p.requires_grad_(False)
        c.features[0].weight.requires_grad = False
        if __name__ == "__main__":
            c.encoder.requires_grad_(False)
    """) == [("FCN32s", "a", "module", "features", False),
             ("FCN16s", "b", "module", "features", False),
             ("FCN8s", "c", "prefix", "features", False),
             ("FCN8s", "c", "prefix", "vgg", False),
             ("FCN8s", "c", "contains", "backbone", False),
             ("FCN8s", "c", "module", "features.0.weight", False),
             ("FCN8s", "c", "module", "encoder", False)]


def test_a_loop_over_the_backbone_s_layers_freezes_the_backbone():
    assert found("""
        m = FCN8s(13)
        for layer in m.features:
            for param in layer.parameters():
                param.requires_grad = False
        n = FCN16s(13)
        for child in n.backbone.children():
            child.requires_grad_(False)
        for epoch in range(3):
            train(n)
    """) == [("FCN8s", "m", "module", "features", False), ("FCN16s", "n", "module", "backbone", False)]


def test_a_training_function_that_freezes_its_model_first_counts_where_it_is_called():
    assert found("""
        def train(model, loader, epochs=10, freeze_backbone=True):
            if freeze_backbone:
                for p in model.features.parameters():
                    p.requires_grad = False
            for epoch in range(epochs):
                pass
        a = FCN32s(13)
        train(a, loader)
        b = FCN16s(13)
        train(b, loader, freeze_backbone=False)
        c = FCN8s(13)
        train(c, loader, 5, True)
    """) == [("FCN32s", "a", "module", "features", False), ("FCN8s", "c", "module", "features", False)]


def test_an_optimiser_given_some_parts_freezes_the_rest():
    assert found("""
        import itertools
        a = FCN32s(13)
        optimizer = torch.optim.Adam(list(a.fc6.parameters()) + list(a.score.parameters()), lr=1e-4)
        b = FCN16s(13)
        opt = optim.SGD(itertools.chain(b.head.parameters(), b.score_pool4.parameters()), lr=0.01)
        c = FCN8s(13)
        opt = AdamW([{"params": c.head.parameters()}, {"params": c.fuse.parameters(), "lr": 1e-3}])
        d = FCN8s(13)
        opt = Adam(d.parameters(), lr=1e-3)                                    # everything trains
        opt = Adam(filter(lambda p: p.requires_grad, d.parameters()))          # what requires grad trains
    """) == [("FCN32s", "a", "module", "", False), ("FCN32s", "a", "module", "fc6", True),
             ("FCN32s", "a", "module", "score", True),
             ("FCN16s", "b", "module", "", False), ("FCN16s", "b", "module", "head", True),
             ("FCN16s", "b", "module", "score_pool4", True),
             ("FCN8s", "c", "module", "", False), ("FCN8s", "c", "module", "head", True),
             ("FCN8s", "c", "module", "fuse", True)]
    model = Net()
    for freeze in top_level_freezes("n = Net()\nopt = Adam(n.head.parameters())\n", "t.py"):
        apply_freeze(model, TopLevelFreeze.from_json(freeze))
    assert trainable(model) == ["head.weight", "head.bias"]


def test_what_is_not_a_freeze_of_a_built_model_is_left_out():
    assert found("""
        feature_extract = False
        def set_parameter_requires_grad(model, feature_extracting):
            if feature_extracting:
                for param in model.parameters():
                    param.requires_grad = False
        a = FCN32s(13)
        set_parameter_requires_grad(a.features, feature_extract)   # a false flag freezes nothing
        set_parameter_requires_grad(a.features, False)
        for epoch in range(10):                                     # a schedule inside training
            for p in a.features.parameters():
                p.requires_grad = epoch > 5
        for p in unknown.features.parameters():                     # not a model this code built
            p.requires_grad = False
        def train(model):                                           # inside a function: not top level
            for p in model.features.parameters():
                p.requires_grad = False
        for name, p in a.named_parameters():                        # a condition it cannot read
            if len(name) > 3:
                p.requires_grad = False
    """) == []


def test_a_variable_assigned_again_is_another_instance_and_a_notebook_names_its_cell():
    notebook_py = textwrap.dedent("""\
        # Generated by segrade from hw.ipynb: its code cells, in order, without IPython magics.
        # --- cell 3 ---
        model = FCN32s(13)
        # --- cell 4 ---
        model = FCN16s(13)
        for p in model.features.parameters():
            p.requires_grad = False
    """)
    [freeze] = top_level_freezes(notebook_py, "hw.py")
    assert (freeze["class_name"], freeze["instance"]) == ("FCN16s", "model (assignment 2)")
    assert freeze["where"] == "hw.ipynb, cell 4"
    assert freeze["code"] == "for p in model.features.parameters():"
    assert TopLevelFreeze.from_json(freeze).path == "features"   # crosses the boundary as the protocol's record
    assert top_level_freezes("def broken(:\n", "x.py") == []


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3))
        self.head = nn.Conv2d(4, 2, 1)


def step(select: str, path: str, requires_grad: bool = False, instance: str = "net") -> TopLevelFreeze:
    return TopLevelFreeze(class_name="Net", instance=instance, select=select, path=path, requires_grad=requires_grad,
                          where="hw.ipynb, cell 4", code="...")


def trainable(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def test_a_freeze_selects_a_submodule_a_parameter_a_prefix_or_a_part_of_a_name():
    for selected, left in ((step("module", "features"), ["head.weight", "head.bias"]),
                           (step("module", "features.0.weight"), ["features.0.bias", "features.1.weight",
                                                                  "features.1.bias", "head.weight", "head.bias"]),
                           (step("prefix", "features.1"), ["features.0.weight", "features.0.bias", "head.weight",
                                                            "head.bias"]),
                           (step("contains", "bias"), ["features.0.weight", "features.1.weight", "head.weight"])):
        model = Net()
        assert apply_freeze(model, selected)
        assert trainable(model) == left, selected
    assert not apply_freeze(Net(), step("module", "backbone"))


def test_the_frozen_variant_takes_the_instance_that_freezes_and_a_missing_part_is_said():
    candidate = Candidate("Net", Net, "hw.py")
    freezes = [step("module", "", True, "net_ft"), step("module", "", False, "everything"),
               step("module", "features", False, "net_frozen"), step("prefix", "head", True, "net_frozen")]
    assert [s.instance for s in top_level_steps(True, candidate, freezes)] == ["net_frozen", "net_frozen"]
    assert [s.instance for s in top_level_steps(False, candidate, freezes)] == ["net_ft"]
    # A variable named for the other state is not used; one named for this state comes first.
    groups = [step("module", "", False, "model_ft"), step("prefix", "features", True, "model_ft"),
              step("module", "features", False, "net"), step("module", "features.0", False, "net_frozen")]
    assert [s.instance for s in top_level_steps(True, candidate, groups)] == ["net_frozen"]
    assert [s.instance for s in top_level_steps(True, candidate, groups[:2])] == []
    # Freezing the whole model and nothing else is left out (what made it trainable is unseen).
    assert top_level_steps(True, candidate, freezes[1:2]) == ()
    # A subclass is another class: what the notebook did to a Net is not done to it.
    assert top_level_steps(True, Candidate("Wider", type("Wider", (Net,), {}), "hw.py"), [step("module", "features")]) == ()

    plan = BuildPlan(variant_id="v", factory=Net, kwargs={}, after=(), adapter="contract + top-level freeze",
                     source="hw.py", description="", freeze=(step("module", "features"), step("module", "backbone")))
    model = plan.build()
    assert trainable(model) == ["head.weight", "head.bias"]
    assert plan.notes == ("hw.ipynb, cell 4 (`...`) selects no parameter of Net: not applied",)


def test_a_manifest_pins_the_parts_to_freeze():
    import pytest

    from grader.shared.manifest import ManifestError, parse_manifest

    manifest = parse_manifest('[variants.fcn8s_frozen]\nfactory = "hw.py:FCN8s"\nfreeze = "features"\n'
                              '[variants.fcn16s_frozen]\nfactory = "hw.py:FCN16s"\nfreeze = ["vgg.features", "fc.0"]\n')
    assert manifest["fcn8s_frozen"]["freeze"] == ["features"]
    assert manifest["fcn16s_frozen"]["freeze"] == ["vgg.features", "fc.0"]
    with pytest.raises(ManifestError, match="freeze names 'features\\[0\\]', which is not a dotted attribute path"):
        parse_manifest('[variants.fcn8s_frozen]\nfactory = "hw.py:FCN8s"\nfreeze = "features[0]"\n')
    with pytest.raises(ManifestError, match="freeze must be a part of the model or a list of them"):
        parse_manifest('[variants.fcn8s_frozen]\nfactory = "hw.py:FCN8s"\nfreeze = true\n')
