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
    with pytest.raises(SpecError, match="spec.toml: the top level needs dataset; docs/spec.md lists each table's"):
        load_spec(path)


def test_every_structural_mistake_is_a_spec_error_naming_its_place(tmp_path):
    """Mistakes a course's author makes in a spec of their own: each a SpecError that names the
    table and the field (before: a TypeError or AttributeError from deep in the reader, or no
    error at all and a failure later, in every submission's grade)."""
    one_variant = (DEFAULT_SPEC.parent / "cityscapes_unet.toml").read_text().replace("[[variants]]", "[variants]")
    with pytest.raises(SpecError, match="variants must be an array of tables, one \\[\\[variants\\]\\] header per "
                                        "entry \\(\\[variants\\] makes a single table\\)"):
        load_spec(_write(tmp_path, one_variant))
    text = DEFAULT_SPEC.read_text()
    cases = {
        ("[families.unet]\ntitle = \"U-Net\"\ninput_size = 256", "[families]\nunet = 256"):
            "\\[families.unet\\] must be a table, got families.unet = 256; write a \\[families.unet\\] header",
        ("input_size = 256\n", "\n"): "\\[families.unet\\] needs input_size",
        ('id = "fcn32s_frozen"\n', "\n"): "\\[\\[variants\\]\\] entry 1 needs id",
        ('class = "UNetNoSkip"', "class = 7"): "variant 'unet_noskip' class must be a non-empty string, got 7",
        ('id = "fcn-unet-segmentation"', "id = 3"): "\\[assignment\\] id must be a non-empty string, got 3",
        ("marks = 24", "mark = 24"): "rubric item 'fcn' needs marks \\(it has 'mark': misspelt\\?\\)",
        ("llm_declaration_pattern = '(?i)", "llm_declaration_pattern = '((?i)"):
            "\\[policy\\] llm_declaration_pattern is not a valid regular expression",
        ('[contract.classes]\n', "[contract.notclasses]\n"): "\\[contract\\] needs classes",
    }
    for (old, new), message in cases.items():
        assert old in text, old
        with pytest.raises(SpecError, match=message):
            load_spec(_write(tmp_path, text.replace(old, new, 1)))


def test_unknown_keys_are_warnings_with_the_key_meant(tmp_path):
    """A misspelt optional key would silently take its default; it is reported (and the
    grade goes on: a course may keep notes of its own in the file)."""
    text = DEFAULT_SPEC.read_text().replace("performance_share = 0.5", "perfomance_share = 0.5", 1)
    text = text.replace("[policy]", "[policy]\ncourse_note = 'kept for us'", 1)
    text = text.replace("[dataset.synthetic]", "[dataset.synthetic]\ntrain_sed = 4", 1)
    spec = load_spec(_write(tmp_path, text))
    assert spec.warnings == (
        f"{tmp_path}/spec.toml: [dataset.synthetic] has the unknown key 'train_sed', which nothing reads; "
        "did you mean 'train_seed'?",
        f"{tmp_path}/spec.toml: rubric item 'fcn' has the unknown key 'perfomance_share', which nothing reads; "
        "did you mean 'performance_share'?",
        f"{tmp_path}/spec.toml: [policy] has the unknown key 'course_note', which nothing reads; "
        "known here: llm_declaration_pattern, llm_declaration_penalty",
    )
    assert spec.rubric_item("fcn32s_frozen").performance_share == 0.0   # the default it took: why it is said


def test_an_error_says_the_unknown_keys_that_may_have_caused_it(tmp_path):
    text = DEFAULT_SPEC.read_text().replace("[dataset]\n", "[datasett]\n", 1)
    with pytest.raises(SpecError) as error:
        load_spec(_write(tmp_path, text))
    lines = str(error.value).splitlines()
    assert lines[0].endswith("[dataset] needs class_names; docs/spec.md lists each table's fields")
    assert lines[1:] == ["the file also has:", f"{tmp_path}/spec.toml: the top level has the unknown key 'datasett', "
                         "which nothing reads; did you mean 'dataset'?"]


def test_the_shipped_specs_have_no_unknown_key():
    from grader.shared.resources import DEFAULT_SPEC as default

    for path in (default, default.parent / "cityscapes_unet.toml"):
        assert load_spec(path).warnings == (), path


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
    # The images' channels: RGB unless the course says grayscale
    assert spec.dataset.channels == 3
    assert load_spec(_write(tmp_path, text.replace('kind = "synthetic"', 'kind = "synthetic"\nchannels = 1'))
                     ).dataset.channels == 1
    with pytest.raises(SpecError, match=r"\[dataset\] channels = 4: use 3 for RGB images or 1 for grayscale"):
        load_spec(_write(tmp_path, text.replace('kind = "synthetic"', 'kind = "synthetic"\nchannels = 4')))


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


def test_a_command_prints_the_unknown_keys_and_goes_on(tmp_path, capsys, monkeypatch):
    """As a course's author sees it: `segrade data check --spec FILE` (docs/spec.md)."""
    from grader.cli import main

    text = DEFAULT_SPEC.read_text().replace("grid_images = 4", "grid_image = 4", 1)
    _write(tmp_path, text)
    monkeypatch.chdir(tmp_path)
    assert main(["data", "check", "--spec", "spec.toml"]) == 0
    shown = capsys.readouterr()
    assert shown.err.splitlines() == ["segrade: warning: spec.toml: [profiles.smoke] has the unknown key 'grid_image', "
                                      "which nothing reads; did you mean 'grid_images'?"]
    assert "nothing on disk to check" in shown.out


def test_a_variant_no_rubric_item_scores_is_said(tmp_path):
    text = DEFAULT_SPEC.read_text().replace('variants = ["unet_residual"]', 'variants = []', 1)
    spec = load_spec(_write(tmp_path, text))
    assert spec.warnings == (f"{tmp_path}/spec.toml: variant 'unet_residual' is in no rubric item: it is checked and "
                             "shown, and scores nothing; add it to an item's variants if it should",)


def test_a_loader_option_written_in_dataset_is_said_to_belong_in_its_options(tmp_path):
    """`remap` or `mask_format` written in [dataset] instead of [dataset.options] did nothing."""
    import inspect

    from grader import spec as spec_module
    from grader.data.folders import DATASET_KINDS

    taken = {name for cls in DATASET_KINDS.values() for name in inspect.signature(cls.__init__).parameters}
    assert set(spec_module.LOADER_OPTIONS) == taken - {"self", "root", "split", "num_classes", "palette"}
    text = DEFAULT_SPEC.read_text().replace('kind = "synthetic"', 'kind = "synthetic"\nremap = { "255" = 1 }', 1)
    assert load_spec(_write(tmp_path, text)).warnings == (
        f"{tmp_path}/spec.toml: [dataset] has the unknown key 'remap', which nothing reads; it is an option of the "
        "data loader: put it under [dataset.options]",)
