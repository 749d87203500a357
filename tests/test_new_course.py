"""A second assignment graded as well as the first: the shipped Cityscapes U-Net spec with its
own reference, data check, bands, self-check and grade (docs/new_course.md, run as written),
and the pieces that keep the default assignment out of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grader.cli import main
from grader.spec import SpecError, load_spec
from tests.course_fixture import SPEC, course_spec_text, doc_commands, make_cityscapes, make_course

DOC = Path(__file__).resolve().parents[1] / "docs" / "new_course.md"


# --------------------------------------------------------------------------- the data check


def _course_spec(tmp_path: Path, root: str = "data") -> Path:
    spec = tmp_path / "spec.toml"
    spec.write_text(course_spec_text(root=root))
    return spec


def test_data_check_passes_a_good_dataset_and_names_its_classes(tmp_path, capsys):
    make_cityscapes(tmp_path / "data", {"train": 2, "val": 1, "test": 1})
    assert main(["data", "check", "--spec", str(_course_spec(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "train: 2 image/mask pairs (2 read); sizes 128x64 (2)" in out and "ok: the cityscapes dataset" in out


def test_data_check_names_a_missing_root_and_exits_2(tmp_path, capsys):
    spec = _course_spec(tmp_path, root="nowhere")
    assert main(["data", "check", "--spec", str(spec)]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert f"the dataset root {tmp_path / 'nowhere'} does not exist" in out
    assert f"segrade data check --spec {spec}" in out


def test_data_check_names_missing_splits_and_unpaired_images(tmp_path, capsys):
    make_cityscapes(tmp_path / "data", {"train": 2, "val": 1})
    mask = next((tmp_path / "data" / "gtFine" / "train").rglob("*.png"))
    mask.unlink()
    assert main(["data", "check", "--spec", str(_course_spec(tmp_path))]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "train:" in out and "no mask found; looked for" in out and mask.name in out
    assert "test:" in out and "split folder not found" in out


def test_data_check_counts_and_names_ids_outside_the_classes(tmp_path, capsys):
    """Generic folders with class ids: an id the spec has no class for is counted and named."""
    import numpy as np
    from PIL import Image

    for split in ("train", "val", "test"):
        for folder in ("images", "masks"):
            (tmp_path / "data" / split / folder).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "data" / split / "images" / "a.png")
        ids = np.zeros((8, 8), np.uint8)
        if split == "val":
            ids[:2] = 19   # 16 px of an id the 19 classes do not have
            ids[2:3] = 40  # 8 px
        Image.fromarray(ids).save(tmp_path / "data" / split / "masks" / "a.png")
    text = course_spec_text(root="data").replace('kind = "cityscapes"', 'kind = "folders"')
    text = text[: text.index("[dataset.options]")] + text[text.index("[families.unet]"):]
    (tmp_path / "spec.toml").write_text(text)
    assert main(["data", "check", "--spec", str(tmp_path / "spec.toml")]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "val: 1 mask(s) hold class ids outside the spec's 19 classes (valid: 0..18, or 255 = ignore): " \
           "19 (16 px), 40 (8 px)" in out
    assert str(tmp_path / "data" / "val" / "masks" / "a.png") in out


def test_data_check_names_binary_masks_saved_as_0_and_255(tmp_path, capsys):
    """Binary masks (a lesion, a car) are usually stored as 0/255; 255 is the ignore index, so
    they read as background only and every mask looks valid: the foreground would never be
    learned nor scored. The check says so and what to write; with that remap it passes."""
    import numpy as np
    from PIL import Image

    for split in ("train", "val", "test"):
        for folder in ("images", "masks"):
            (tmp_path / "data" / split / folder).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "data" / split / "images" / "a.png")
        mask = np.zeros((8, 8), np.uint8)
        mask[:2] = 255   # 16 of 64 px
        Image.fromarray(mask).save(tmp_path / "data" / split / "masks" / "a.png")
    text = course_spec_text(root="data").replace('kind = "cityscapes"', 'kind = "folders"')
    text = text[: text.index("[dataset.options]")] + text[text.index("[families.unet]"):]
    start, end = text.index("class_names = ["), text.index("thin_classes")
    text = text[:start] + 'class_names = ["background", "lesion"]\npalette = [[0, 0, 0], [255, 255, 255]]\n' + text[end:]
    text = text.replace('thin_classes = ["pole", "traffic light", "traffic sign"]', "")
    (tmp_path / "spec.toml").write_text(text)
    assert main(["data", "check", "--spec", str(tmp_path / "spec.toml")]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert ("the masks hold only class 0 (background) and 255, the ignore index (48 px, 25% of the pixels read): no "
            "pixel is ever class 1 (lesion). Binary masks saved as 0/255? Map 255 to the class: [dataset.options] "
            'remap = { "255" = 1 }') in out

    (tmp_path / "spec.toml").write_text(text.replace("[families.unet]", '[dataset.options]\nremap = { "255" = 1 }\n\n'
                                                                          "[families.unet]"))
    assert main(["data", "check", "--spec", str(tmp_path / "spec.toml")]) == 0
    assert "train: 1 image/mask pairs (1 read); sizes 8x8 (1); 2 of 2 classes present" in capsys.readouterr().out


def test_check_refuses_a_missing_dataset_before_running_anything(tmp_path, capsys):
    spec = _course_spec(tmp_path, root="nowhere")
    submission = tmp_path / "sub"
    submission.mkdir()
    (submission / "unet.py").write_text("raise SystemExit('never imported')\n")
    assert main(["check", str(submission), "--spec", str(spec), "--checks-only", "--no-report"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "does not exist" in out and "[dataset]" in out   # markup characters are printed, not eaten


# --------------------------------------------------------------------------- probes follow the spec


def test_probe_size_is_the_smallest_size_the_spec_runs_a_family_at(tmp_path):
    default = load_spec()
    assert default.probe_size("fcn") == 96 and default.probe_size("unet") == 64   # smoke: FCNs 96 px, U-Nets 64
    assert load_spec(SPEC).probe_size("unet") == 128
    spec = _course_spec(tmp_path)
    assert load_spec(spec).probe_size("unet") == 160
    spec.write_text(spec.read_text().replace("input_size = 192", "input_size = 192\nprobe_size = 192"))
    assert load_spec(spec).probe_size("unet") == 192
    spec.write_text(spec.read_text().replace("probe_size = 192", "probe_size = 320"))
    with pytest.raises(SpecError, match="probe_size is 320: use a multiple of 32 from 32 up to the family's input_size"):
        load_spec(spec)


def test_a_probe_failure_names_the_size_and_why_the_spec_requires_it(tmp_path):
    from grader.grading.checks import check_variant
    from grader.shared.protocol import Observation

    assignment = load_spec(_course_spec(tmp_path))
    error = "RuntimeError: Calculated padded input size per channel: (1 x 1). Kernel size: (5 x 5)."
    observed = {"id": "unet", "mapping": "UNet", "build": {"ok": True},
                "forward": {"ok": True, "input_shape": [2, 3, 192, 192], "output_shape": [2, 19, 192, 192],
                            "finite": True, "dtype": "float32"},
                "output_statistics": {"min": -3.0, "max": 3.0, "sum_to_one": 2.0},
                "gradients": {"error": error}, "architecture": {"error": error}}
    result = check_variant(assignment.variant("unet"), Observation.from_json(observed), assignment, batch_size=2)
    checks = {c.id: c.message for c in result.checks}
    assert checks["gradients"] == ("a training step on a 160x160 input (the smallest size the spec runs the unet "
                                   f"family at) raised {error}")
    assert "a forward pass on a 160x160 input" in checks["architecture"]


def test_a_course_without_imagenet_weights_answers_a_constructor_s_own_download_with_random_init(tmp_path):
    """A ResNet18 course (no family takes ImageNet weights): `resnet18(weights=DEFAULT)` in a
    constructor gets random-init weights in every run, --checks-only included, as the graded
    smoke run does; the default assignment's checks-only does so when no VGG16 weights are on hand."""
    from grader.grading.pipeline import GradeOptions, random_init_run

    course = load_spec(_course_spec(tmp_path))
    assert not course.has_family_with_pretrained_backbone()
    for profile in (None, "smoke", "full"):
        assert random_init_run(GradeOptions(profile=profile), course, weights_available=True)
    assert not random_init_run(GradeOptions(profile="smoke", weights=True), course)   # trained weights: none built
    default = load_spec()
    assert random_init_run(GradeOptions(profile=None), default, weights_available=False)
    assert not random_init_run(GradeOptions(profile=None), default, weights_available=True)
    assert not random_init_run(GradeOptions(profile="full"), default, weights_available=True)


def test_a_failed_download_in_a_course_without_vgg_is_not_told_to_build_a_vgg16(tmp_path):
    from grader.grading.checks import check_variant
    from grader.shared.protocol import Observation

    course = load_spec(_course_spec(tmp_path))
    url = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
    observed = Observation.from_json({"id": "unet", "mapping": "UNet", "build": {
        "ok": False, "error": "URLError: <urlopen error [Errno -3] Temporary failure in name resolution>",
        "downloads": [url]}})
    builds = check_variant(course.variant("unet"), observed, course, batch_size=2).checks[0]
    assert "asked for RESNET18 ImageNet weights (resnet18-f37072fd.pth)" in builds.message
    assert "trains every model from random init. Build the backbone with weights=None" in builds.message
    assert "VGG16" not in builds.message
    default = check_variant(load_spec().variant("unet"), observed, load_spec(), batch_size=2).checks[0]
    assert "Build the backbone with torchvision.models.vgg16" in default.message


# --------------------------------------------------------------------------- identity of bands and figures


def test_figures_and_bands_of_another_assignment_are_refused(tmp_path):
    from grader.grading.bands import bands_command, load_figures, scoring_bands_path, write_figures

    assert load_figures(None, "fcn-unet-segmentation")["unet"]["parameters"] == 31038413
    assert load_figures(None, "cityscapes-unet") == {}   # segrade's figures are the default assignment's
    course = load_spec(_course_spec(tmp_path))
    write_figures({"variants": {"unet": {"parameters": 7}}}, tmp_path / "b", course)
    assert load_figures(tmp_path / "b", "cityscapes-unet") == {"unet": {"parameters": 7}}
    assert load_figures(tmp_path / "b", "fcn-unet-segmentation") == {}
    assert bands_command(course, "smoke", tmp_path / "b") == (
        f"segrade bands --spec {course.path} --reference {tmp_path / 'reference'} --profile smoke --out {tmp_path / 'b'}")
    assert bands_command(load_spec(), "smoke") == "segrade bands --profile smoke"
    (tmp_path / "b" / "smoke.json").write_text("{}")
    assert scoring_bands_path("smoke", tmp_path / "b", "val").name == "smoke.json"   # no val band: the test band
    (tmp_path / "b" / "smoke.val.json").write_text("{}")
    assert scoring_bands_path("smoke", tmp_path / "b", "val").name == "smoke.val.json"
    assert scoring_bands_path("smoke", tmp_path / "b", "test").name == "smoke.json"


def test_no_imagenet_text_for_a_course_without_a_pretrained_family(tmp_path):
    from grader.grading.pipeline import GradeOptions, _describe_backbone
    from grader.grading.weights import BackboneWeights

    course = load_spec(_course_spec(tmp_path))
    text = _describe_backbone(course, BackboneWeights(None), course.profile("smoke"), GradeOptions())
    assert "VGG16" not in text and "FCN" not in text
    assert "VGG16" in _describe_backbone(load_spec(), BackboneWeights(None), None, GradeOptions())


# --------------------------------------------------------------------------- the course, end to end


@pytest.mark.slow
def test_new_course_doc_runs_as_written(tmp_path, monkeypatch, capsys):
    """docs/new_course.md, every command as written, on the generated Cityscapes-layout course."""
    make_course(tmp_path)
    monkeypatch.chdir(tmp_path)
    commands = doc_commands(DOC)
    assert [c[0] for c in commands] == ["data", "bands", "check", "grade"]
    data_check, bands, self_check, grade = commands

    assert main(data_check) == 0
    assert "ok: the cityscapes dataset" in capsys.readouterr().out

    assert main(bands) == 0, capsys.readouterr().out
    shown = " ".join(capsys.readouterr().out.split())
    # Both bands from one training per seed, the figures from the first run's checks: 2 grades, not 5
    assert "test and val split (one training per seed, scored on both)" in shown
    assert shown.count("took") == 2 and "from this run's checks" in shown
    folder = tmp_path / "course" / "bands"
    test_band, val_band = (json.loads((folder / name).read_text()) for name in ("smoke.json", "smoke.val.json"))
    figures = json.loads((folder / "figures.json").read_text())
    assert test_band["assignment"] == val_band["assignment"] == figures["assignment"] == "cityscapes-unet"
    assert val_band["split"] == "val" and "split" not in test_band
    for band in (test_band, val_band):
        assert len(band["backbones"]["random_init"]["variants"]["unet"]["runs"]) == 2
    assert (test_band["backbones"]["random_init"]["provenance"]["identity"]["evaluation"]
            != val_band["backbones"]["random_init"]["provenance"]["identity"]["evaluation"])
    assert figures["variants"]["unet"]["parameters"] == 486_715   # the course's reference (width 8 here), not 31.0M

    # The student's self-check: alice's U-Net needs 144 px; the spec's sizes are 160 and 192 (-32, +32).
    main(self_check)
    capsys.readouterr()
    result = json.loads((tmp_path / "alice_check" / "results.json").read_text())
    unet = result["variants"][0]
    assert unet["status"] == "passed", unet["checks"]
    assert unet["band"]["measured"] and unet["band"]["source"].startswith("smoke.val.json")
    assert unet["points"] is not None and unet["points"] > 0
    assert unet["figures"]["reference"]["parameters"] == 486_715

    assert main(grade) in (0, 1)
    capsys.readouterr()
    grades = tmp_path / "grades"
    alice = json.loads((grades / "alice" / "results.json").read_text())["variants"][0]
    bob = json.loads((grades / "bob" / "results.json").read_text())["variants"][0]
    assert alice["status"] == "passed" and alice["band"]["source"].startswith("smoke.json")
    assert alice["band"]["measured"] and alice["points"] > 0
    architecture = next(c for c in bob["checks"] if c["id"] == "architecture")
    assert bob["status"] == "failed" and architecture["status"] == "fail"
    assert bob["points"] < alice["points"]
    for name in ("gradebook.csv", "summary.html", "index.html"):
        assert (grades / name).is_file()
    assert (grades / "alice" / "results_gradescope.json").is_file()


def test_a_refusal_names_the_exact_bands_command_of_the_course(tmp_path):
    """A self-check on real data against a test band only: the refusal says which command
    measures the val band, with the course's own spec, reference and bands folder."""
    from grader.grading.bands import BandIdentity, bands_command, load_bands, write_bands

    course = load_spec(_course_spec(tmp_path))
    profile = course.profile("smoke")
    identity = BandIdentity(course.id, profile.id, profile.training_sha256, "a" * 64, "cityscapes test split (4)")
    entry = {"measured": True, "variants": {"unet": {"mean": 0.3, "std": 0.01, "min": 0.29, "max": 0.31,
                                                     "runs": [0.29, 0.31]}},
             "provenance": {"device": "cpu", "date": "2026-12-05", "identity": identity.to_json()}}
    write_bands(course, profile, "random_init", entry, tmp_path / "bands")
    command = bands_command(course, "smoke", tmp_path / "bands")
    own = load_bands(profile, "random_init", ["unet"], tmp_path / "bands", identity=identity, command=command)
    assert own["unet"].measured
    val = load_bands(profile, "random_init", ["unet"], tmp_path / "bands", split="val", command=command,
                     identity=BandIdentity(**{**identity.to_json(), "evaluation": "cityscapes val split (4)"}))
    assert not val["unet"].measured
    assert f"measure the bands there with `{command}`" in val["unet"].refusal
    default = load_bands(profile, "random_init", ["unet"], None, identity=identity, command=command)
    assert "measured for assignment 'fcn-unet-segmentation', not 'cityscapes-unet'" in default["unet"].refusal
    assert command in default["unet"].refusal


def test_a_batch_measures_a_course_s_missing_bands_with_the_spec_s_reference(tmp_path):
    from grader.batch.bands import plan_bands
    from grader.grading.pipeline import GradeOptions

    course = load_spec(_course_spec(tmp_path))
    plan = plan_bands(course, GradeOptions(profile="smoke"), tmp_path / "out", "cpu")
    assert plan.reference == (tmp_path / "reference").resolve() and len(plan.entries) == 3


def test_size_and_cost_says_not_measured_without_the_course_s_figures():
    from grader.report.html import _figure_rows

    rows = _figure_rows({"parameters": {"total": 486715, "trainable": 486715}, "flops": 10**9})
    assert [r["reference"] for r in rows] == ["not measured", "–", "not measured"]
    rows = _figure_rows({"parameters": {"total": 10}, "reference": {"parameters": 20, "parameters_ratio": 0.5}})
    assert rows[0]["reference"] == "20" and rows[0]["ratio"] == "0.50×"


def test_grade_and_bands_refuse_a_missing_dataset_before_running_anything(tmp_path, capsys):
    spec = _course_spec(tmp_path, root="nowhere")
    (tmp_path / "subs" / "a").mkdir(parents=True)
    assert main(["grade", str(tmp_path / "subs"), "--spec", str(spec), "--out", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().out and not (tmp_path / "out").exists()
    assert main(["bands", "--spec", str(spec), "--profile", "smoke", "--out", str(tmp_path / "b")]) == 2
    assert "does not exist" in capsys.readouterr().out and not (tmp_path / "b").exists()
