"""The assignment spec: the default one, and errors for malformed ones."""

import pytest

from grader.spec import SpecError, load_spec
from grader.shared.resources import DEFAULT_SPEC

VARIANT_IDS = [
    "fcn32s_frozen", "fcn16s_frozen", "fcn8s_frozen", "fcn32s_finetune", "fcn16s_finetune",
    "fcn8s_finetune", "unet", "unet_noskip", "unet_residual", "unet_attention",
]


def test_default_spec_holds_the_assignment():
    spec = load_spec()
    assert [v.id for v in spec.variants] == VARIANT_IDS
    assert spec.num_classes == 13
    assert spec.class_names[6] == "RoadLine" and spec.class_names[12] == "TrafficSign"
    assert spec.palette[7] == (128, 64, 128) and spec.palette[10] == (0, 0, 255)
    assert spec.families["fcn"].input_size == 224
    assert spec.families["unet"].input_size == 256
    assert spec.total_marks == 100
    # The course's marks per part (BRIEF §2), each part's discussion being a manual item of its own.
    per_part = {}
    for item in spec.rubric:
        part = item.id.removesuffix("_discussion")
        per_part[part] = per_part.get(part, 0) + item.marks
    assert per_part == {"dataset_visualisation": 5, "fcn": 30, "unet": 25, "unet_noskip": 10, "unet_residual": 5,
                        "unet_attention": 25}
    assert [item.id for item in spec.rubric if item.manual] == [
        "dataset_visualisation", "fcn_discussion", "unet_noskip_discussion", "unet_attention_discussion"]
    assert all(item.prompts for item in spec.rubric if item.id.endswith("_discussion"))
    assert set(spec.profiles) == {"smoke", "full"}
    smoke, full = spec.profile("smoke"), spec.profile("full")
    assert smoke.image_size == {"fcn": 96, "unet": 64} and not smoke.pretrained
    assert smoke.get("batch_size", "fcn") == 2 and smoke.get("batch_size", "unet") == 4
    assert full.image_size == {"fcn": 224, "unet": 256} and full.pretrained
    assert full.get("lr", "fcn") == 1e-4 and full.get("lr", "unet") == 1e-3 and smoke.get("lr", "fcn") == 1e-3
    assert smoke.sha256 != full.sha256
    assert set(spec.contract.classes) == {"FCN32s", "FCN16s", "FCN8s", "UNet", "UNetNoSkip", "ResidualUNet", "AttentionUNet"}
    assert spec.variant("fcn8s_frozen").kwargs == {"freeze_backbone": True}
    assert spec.variant("fcn8s_finetune").kwargs == {"freeze_backbone": False}
    assert spec.variant("unet_noskip").class_name == "UNetNoSkip"


def _write(tmp_path, text):
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


def test_bad_toml_names_the_file(tmp_path):
    path = _write(tmp_path, "[assignment\nid = 1")
    with pytest.raises(SpecError, match="spec.toml is not valid TOML"):
        load_spec(path)


def test_missing_field_is_named(tmp_path):
    path = _write(tmp_path, '[assignment]\nid = "x"\n')
    with pytest.raises(SpecError, match="missing required field 'dataset'"):
        load_spec(path)


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match="cannot read the assignment spec"):
        load_spec(tmp_path / "nope.toml")


def test_unknown_family_and_rubric_variant(tmp_path):
    base = (
        '[assignment]\nid = "x"\n[dataset]\nclass_names = ["a", "b"]\npalette = [[0,0,0],[1,1,1]]\n'
        '[families.unet]\ninput_size = 64\n[contract]\ninput = "i"\noutput = "o"\n[contract.classes]\nUNet = "..."\n'
    )
    path = _write(tmp_path, base + '[[variants]]\nid = "v"\nfamily = "fcn"\nclass = "UNet"\n')
    with pytest.raises(SpecError, match="unknown family 'fcn'"):
        load_spec(path)
    path = _write(tmp_path, base + '[[variants]]\nid = "v"\nfamily = "unet"\nclass = "UNet"\n'
                  '[[rubric]]\nid = "r"\nmarks = 5\nvariants = ["w"]\n')
    with pytest.raises(SpecError, match="unknown variants"):
        load_spec(path)
    path = _write(tmp_path, base.replace("[[1,1,1]]", "[[1,1]]").replace("[[0,0,0],[1,1,1]]", "[[0,0,0]]")
                  + '[[variants]]\nid = "v"\nfamily = "unet"\nclass = "UNet"\n')
    with pytest.raises(SpecError, match="one RGB palette colour per class"):
        load_spec(path)


def test_dataset_config(tmp_path):
    spec = load_spec()
    assert spec.dataset.kind == "synthetic" and spec.dataset.root is None
    assert (spec.dataset.train_seed, spec.dataset.val_seed) == (1, 2)

    from grader.shared.resources import DEFAULT_SPEC
    text = DEFAULT_SPEC.read_text()
    carla = _write(tmp_path, text.replace('kind = "synthetic"', 'kind = "carla"\nroot = "data/carla"'))
    config = load_spec(carla).dataset
    assert config.kind == "carla" and config.root == tmp_path / "data" / "carla"

    with pytest.raises(SpecError, match="needs root"):
        load_spec(_write(tmp_path, text.replace('kind = "synthetic"', 'kind = "folders"')))
    with pytest.raises(SpecError, match="use one of synthetic, folders, carla, cityscapes"):
        load_spec(_write(tmp_path, text.replace('kind = "synthetic"', 'kind = "kitti"')))
    with pytest.raises(SpecError, match="test seed is secret"):
        load_spec(_write(tmp_path, text.replace("val_seed = 2", "val_seed = 2\ntest_seed = 3")))


def test_profile_errors_name_the_field(tmp_path):
    text = DEFAULT_SPEC.read_text()
    bad_size = text.replace("image_size = { fcn = 96, unet = 64 }", "image_size = { fcn = 60, unet = 64 }")
    with pytest.raises(SpecError, match=r"\[profiles.smoke\] image_size for fcn is 60: use a multiple of 32"):
        load_spec(_write(tmp_path, bad_size))
    bad_table = text.replace("lr = { fcn = 1e-4, unet = 1e-3 }", "lr = { fcn = 1e-4 }")
    with pytest.raises(SpecError, match=r"\[profiles.full\] lr as a table needs one value per family"):
        load_spec(_write(tmp_path, bad_table))
    bad_share = text.replace("performance_share = 0.5", "performance_share = 1.5", 1)
    with pytest.raises(SpecError, match="performance_share must lie in 0..1"):
        load_spec(_write(tmp_path, bad_share))
    with pytest.raises(KeyError, match="no training profile 'medium'"):
        load_spec().profile("medium")


def test_wrong_types_are_named_with_their_place(tmp_path):
    """A value of the wrong type says which field in which table, instead of int()'s message."""
    text = DEFAULT_SPEC.read_text()
    cases = {
        ("input_size = 256", 'input_size = "big"'): r"\[families.unet\] input_size must be an integer, got 'big'",
        ("input_size = 256", "input_size = 250"): r"\[families.unet\] input_size is 250: use a multiple of 32",
        ("marks = 24", 'marks = "seven"'): r"rubric item 'fcn' marks must be a number, got 'seven'",
        ('variants = ["unet_noskip"]', 'variants = "unet_noskip"'):
            r"rubric item 'unet_noskip' variants must be an array of strings, got 'unet_noskip'",
        ("steps = 30", "steps = 0"): r"\[profiles.smoke\] steps must be at least 1, got 0",
        ("steps = 30", "steps = 30.5"): r"\[profiles.smoke\] steps must be an integer, got 30.5",
        ("train_images = 120", 'train_images = "many"'):
            r"\[profiles.smoke\] train_images must be an integer, got 'many'",
        ("architecture = { no_long_skips = true, max_bypass_scale = 0.0625 }",
         "architecture = { no_long_skip = true, max_bypass_scale = 0.0625 }"):
            r"variant 'unet_noskip' architecture has unknown keys \['no_long_skip'\]; known: bypass_scale",
        ("architecture = { no_long_skips = true, max_bypass_scale = 0.0625 }",
         'architecture = { no_long_skips = "yes" }'):
            r"variant 'unet_noskip' architecture.no_long_skips must be true or false, got 'yes'",
    }
    for (old, new), message in cases.items():
        assert old in text, old
        with pytest.raises(SpecError, match=message):
            load_spec(_write(tmp_path, text.replace(old, new, 1)))


def test_a_variant_is_scored_by_one_rubric_item(tmp_path):
    text = DEFAULT_SPEC.read_text().replace('variants = ["unet_noskip"]', 'variants = ["unet_noskip", "unet"]')
    with pytest.raises(SpecError, match="variant 'unet' is in rubric items 'unet' and 'unet_noskip': a variant is "
                                        "scored by one item only"):
        load_spec(_write(tmp_path, text))
