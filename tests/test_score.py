"""The scoring rule and the bands files, on plain data (no worker)."""

import json
from pathlib import Path
from dataclasses import replace

import pytest

from grader.grading.bands import BandIdentity, BandsError, check_writable, load_band, load_bands, summarise_runs, write_bands
from grader.records.results import Band, CheckResult, CheckStatus, VariantResult, VariantStatus
from grader.grading.score import performance_fraction, score
from grader.spec import load_spec

SPEC = load_spec()
BAND = Band(measured=True, profile="smoke", backbone="random_init", mean=0.5, std=0.05, min=0.44, max=0.56,
            lower=0.4, upper=0.6, untrained=0.1, runs=5, source="test")
UNET_CHECKS = ("builds", "forward_shape", "gradients", "architecture", "learns", "skip_ablation")


def _unet(miou=0.45, failing=(), variant_id="unet") -> VariantResult:
    checks = tuple(CheckResult(cid, CheckStatus.FAIL if cid in failing else CheckStatus.PASS, "") for cid in UNET_CHECKS)
    metrics = None if miou is None else {"miou": miou}
    return VariantResult(variant_id, "U-Net", VariantStatus.FAILED if failing else VariantStatus.PASSED, None, checks,
                         metrics=metrics)


def _score(result, band=BAND, trained=True):
    scored, grade = score(SPEC, (result,), {result.variant_id: band} if trained else None)
    return scored[0], grade


def test_performance_is_full_from_the_lower_edge_and_linear_to_the_untrained_baseline():
    assert performance_fraction(0.40, BAND) == 1.0
    assert performance_fraction(0.90, BAND) == 1.0
    assert performance_fraction(0.25, BAND) == pytest.approx(0.5)
    assert performance_fraction(0.10, BAND) == 0.0
    assert performance_fraction(0.02, BAND) == 0.0


def test_variant_marks_split_between_checks_and_performance():
    # Vanilla U-Net: 25 marks, half performance; 4 scored checks share the other half.
    full, grade = _score(_unet(0.45))
    assert full.points == 25 and full.max_points == 25 and full.band is BAND
    half, _ = _score(_unet(0.25))
    assert half.points == pytest.approx(12.5 + 6.25)
    assert grade.max_total == 100 and grade.automatic_max == 81
    assert [m.id for m in grade.manual] == ["dataset_visualisation", "fcn_discussion", "unet_noskip_discussion",
                                            "unet_attention_discussion"]
    assert all(m.points is None for m in grade.manual)


def test_failing_architecture_forfeits_performance_and_its_weighted_check():
    # Default weights: builds 1, forward_shape 1, gradients 1, architecture 3 -> 3/6 of 12.5.
    result, _ = _score(_unet(0.55, failing=("architecture",)))
    assert result.points == pytest.approx(12.5 - 12.5 * 3 / 6)
    assert result.points_detail["performance_points"] == 0
    assert result.points_detail["checks_max_each"] == pytest.approx(
        {"builds": 12.5 / 6, "forward_shape": 12.5 / 6, "gradients": 12.5 / 6, "architecture": 6.25}, abs=1e-4)
    assert "the architecture check failed, so this model is not U-Net" in result.points_detail["performance"]


FCN_CHECKS = ("builds", "forward_shape", "gradients", "frozen_backbone", "finetuned_backbone", "architecture",
              "learns")


def _fcn(variant_id, failing=(), miou=0.45) -> VariantResult:
    checks = tuple(CheckResult(cid, CheckStatus.FAIL if cid in failing else CheckStatus.PASS, "the backbone "
                               "trained. 3 of 26 tensors moved") for cid in FCN_CHECKS)
    return VariantResult(variant_id, variant_id, VariantStatus.FAILED if failing else VariantStatus.PASSED, None,
                         checks, metrics={"miou": miou})


@pytest.mark.parametrize("variant_id, identity", [("fcn32s_frozen", "frozen_backbone"),
                                                   ("fcn8s_finetune", "finetuned_backbone")])
def test_a_variant_that_is_not_what_it_claims_earns_no_performance_marks(variant_id, identity):
    # An FCN variant: 24 marks / 6 variants = 4, half performance (2), checks 2 over weights 1+1+1+2+3.
    ok, _ = _score(_fcn(variant_id))
    assert ok.points == pytest.approx(4)
    wrong, _ = _score(_fcn(variant_id, failing=(identity,)))
    assert wrong.points_detail["performance_points"] == 0
    assert wrong.points == pytest.approx(2 - 2 * 2 / 8)
    title = SPEC.variant(variant_id).title   # e.g. "FCN-32s, frozen backbone"
    assert wrong.points_detail["performance"].startswith(
        f"no performance marks: the {identity} check failed, so this model is not {title}"), wrong.points_detail
    # The other backbone check is not this variant's: it neither scores nor gates.
    other = "finetuned_backbone" if identity == "frozen_backbone" else "frozen_backbone"
    assert _score(_fcn(variant_id, failing=(other,)))[0].points == pytest.approx(4)


def test_skip_ablation_failing_forfeits_performance():
    result, _ = _score(_unet(0.55, failing=("skip_ablation",)))
    assert result.points == 12.5 and "skip_ablation check failed" in result.points_detail["performance"]


def test_an_architecture_never_checked_earns_no_performance_marks():
    """dave's resunet fails forward_shape on a non-square input, so its architecture is never
    checked; it still trains at the square profile size. Its mIoU earns nothing: nothing shows
    the model is a U-Net (a sum of side outputs here)."""
    trained = replace(_unet(0.55, failing=("forward_shape",)),
                      checks=(CheckResult("builds", CheckStatus.PASS, ""),
                              CheckResult("forward_shape", CheckStatus.FAIL, "forward on a 1x3x64x128 input raised"),
                              CheckResult("learns", CheckStatus.PASS, ""),
                              CheckResult("skip_ablation", CheckStatus.PASS, "")))
    result, _ = _score(trained)
    assert result.points_detail["performance_points"] == 0
    assert result.points_detail["performance"] == ("no performance marks: the architecture check was not run "
                                                   "(forward_shape failed first), so nothing shows this model is U-Net")
    assert result.points == pytest.approx(12.5 / 6, abs=1e-4)   # builds only
    # Checkpoint mode (--weights) never runs skip_ablation: that gates nothing
    weights = replace(_unet(0.55), checks=tuple(replace(c, status=CheckStatus.SKIP) if c.id == "skip_ablation" else c
                                                for c in _unet(0.55).checks))
    assert _score(weights)[0].points == 25


def test_check_weights_come_from_the_spec(tmp_path):
    from grader.shared.resources import DEFAULT_SPEC
    from grader.spec import SpecError

    text = DEFAULT_SPEC.read_text()
    marker = 'variants = ["unet"]\nperformance_share = 0.5\n'
    assert marker in text

    def spec_with(line):
        path = tmp_path / "spec.toml"
        path.write_text(text.replace(marker, marker + line + "\n"))
        return load_spec(path)

    spec = spec_with("check_weights = { architecture = 1 }")
    scored, _ = score(spec, (_unet(0.55, failing=("architecture",)),), {"unet": BAND})
    assert scored[0].points == pytest.approx(12.5 * 3 / 4)
    with pytest.raises(SpecError, match="check_weights names unknown checks \\['architectur'\\]"):
        spec_with("check_weights = { architectur = 1 }")
    with pytest.raises(SpecError, match="frozen_backbone: none of its variants \\(unet\\) is scored on"):
        spec_with("check_weights = { frozen_backbone = 5 }")
    with pytest.raises(SpecError, match="must be 0 or more"):
        spec_with("check_weights = { builds = -1 }")
    with pytest.raises(SpecError, match="must be a number"):
        spec_with('check_weights = { builds = "x" }')
    with pytest.raises(SpecError, match="every check of variant 'unet' weighs 0"):
        spec_with("check_weights = { builds = 0, forward_shape = 0, gradients = 0, architecture = 0 }")


def test_a_validation_figure_is_called_val_miou():
    scored, _ = score(SPEC, (_unet(0.55),), {"unet": BAND}, split="val")
    assert scored[0].points_detail["performance"].startswith("val mIoU 0.550 against the band")
    assert "test" not in scored[0].points_detail["performance"]


def test_failed_training_forfeits_performance():
    result, _ = _score(_unet(0.55, failing=("learns",)))
    assert result.points == 12.5 and result.points_detail["performance_points"] == 0


def test_above_the_band_is_flagged_not_rewarded():
    result, _ = _score(_unet(0.75))
    assert result.points == 25
    assert "above the reference band" in result.points_detail["flags"][0]


def test_no_band_means_no_performance_score_never_an_invented_one():
    missing = Band(measured=False, profile="full", backbone="imagenet", source="full.json: not measured")
    result, grade = _score(_unet(0.45), band=missing)
    assert result.points == 12.5 and result.points_detail["performance_points"] is None
    assert "no reference band was measured" in result.points_detail["performance"]
    assert "performance not scored for unet: no reference band was measured" in grade.note
    refused = replace(missing, refusal="smoke.json was measured on other training data: run `segrade bands`")
    result, grade = _score(_unet(0.45), band=refused)
    assert "the reference band does not apply: smoke.json was measured on other" in result.points_detail["performance"]
    assert "no reference band was measured" not in grade.note and "does not apply" in grade.note
    checks_only, grade = _score(_unet(None), trained=False)
    assert checks_only.points_detail["performance_points"] is None and "checks only" in grade.note


def _run(mious):
    from grader.records.results import Grade, SubmissionResult, Submission

    variants = tuple(replace(_unet(m, variant_id=vid), metrics={"miou": m, "untrained_miou": 0.05,
                                                               "per_class_iou": {"Road": m + 0.1}})
                     for vid, m in mious.items())
    sub = Submission("r", None, "", None, (), (), {}, ())
    return SubmissionResult(sub, "a", "", "", {"device": "cpu (2 threads)"}, (), variants, None,
                            Grade(0, 100, 81, 1, 1, (), ""), "", "", 0.0)


def _identity(profile, **changes) -> BandIdentity:
    base = BandIdentity(SPEC.id, profile.id, profile.training_sha256, "a" * 64, "synthetic scenes")
    return replace(base, **changes)


def test_bands_round_trip_with_provenance_and_identity(tmp_path):
    profile = SPEC.profile("smoke")
    runs = [_run({"unet": m}) for m in (0.40, 0.42, 0.44)]
    variants = summarise_runs(runs, SPEC.class_names)
    stats = variants["unet"]
    assert stats["mean"] == pytest.approx(0.42) and stats["std"] == pytest.approx(0.02)
    assert stats["lower"] == pytest.approx(0.36) and stats["upper"] == pytest.approx(0.48)
    assert stats["untrained_mean"] == 0.05 and stats["per_class_iou"]["Road"]["mean"] == pytest.approx(0.52)
    entry = {"measured": True, "variants": variants, "provenance": {"device": "cpu", "date": "2026-11-22T00:00:00",
                                                                    "identity": _identity(profile).to_json()}}
    path = write_bands(SPEC, profile, "random_init", entry, tmp_path)
    data = json.loads(path.read_text())
    assert data["backbones"]["imagenet"] == {"measured": False, "reason": "not measured"}
    band = load_band(profile, "random_init", "unet", tmp_path, identity=_identity(profile))
    assert band.measured and band.lower == pytest.approx(0.36) and band.untrained == 0.05 and band.runs == 3
    assert not load_band(profile, "imagenet", "unet", tmp_path).measured
    assert not load_band(SPEC.profile("full"), "random_init", "unet", tmp_path).measured  # no file
    changed = replace(profile, seed=99)
    stale = load_band(changed, "random_init", "unet", tmp_path, identity=_identity(changed))
    assert not stale.measured and "another version of the 'smoke' profile" in stale.refusal
    # Split sizes are not part of what a band is: more test images measure the same thing.
    bigger = replace(profile, val_images=48, test_images=96)
    assert load_band(bigger, "random_init", "unet", tmp_path, identity=_identity(bigger)).measured


def test_bands_apply_only_to_their_assignment_data_and_evaluation_and_are_never_overwritten(tmp_path):
    profile = SPEC.profile("smoke")
    variants = summarise_runs([_run({"unet": m}) for m in (0.40, 0.44)], SPEC.class_names)
    entry = {"measured": True, "variants": variants,
             "provenance": {"device": "cpu", "date": "2026-11-22", "identity": _identity(profile).to_json()}}
    write_bands(SPEC, profile, "random_init", entry, tmp_path)

    def band(**changes):
        return load_bands(profile, "random_init", ["unet"], tmp_path, identity=_identity(profile, **changes))["unet"]

    assert band().measured and band().refusal is None
    other = band(assignment="hw4")
    assert not other.measured and "measured for assignment 'fcn-unet-segmentation', not 'hw4'" in other.refusal
    assert "--bands DIR" in other.refusal
    moved = band(training_data="b" * 64)
    assert not moved.measured and "other training data (dataset aaaaaaaaaaaa…, this grade's bbbbbbbbbbbb…)" \
        in moved.refusal
    val = band(evaluation="carla val split (48 images, sha256 0123)")
    assert not val.measured and "measured on synthetic scenes, and this grade evaluates on carla val split" \
        in val.refusal and "--split val --out DIR" in val.refusal
    unknown = dict(entry, provenance={"device": "cpu", "date": "2026-11-22"})
    write_bands(SPEC, profile, "random_init", unknown, tmp_path / "old")
    old = load_bands(profile, "random_init", ["unet"], tmp_path / "old", identity=_identity(profile))["unet"]
    assert not old.measured and "before segrade recorded what identifies a band" in old.refusal

    hw4 = replace(SPEC, id="hw4")
    with pytest.raises(BandsError, match="holds the bands of assignment 'fcn-unet-segmentation', not 'hw4'.*--out DIR"):
        write_bands(hw4, profile, "random_init", entry, tmp_path)
    assert band().measured, "the other assignment's bands are intact"
    assert check_writable(hw4, profile, tmp_path / "elsewhere") == tmp_path / "elsewhere" / "smoke.json"


def test_the_committed_smoke_band_applies_to_the_grade_and_the_self_check(tmp_path):
    """What identifies the shipped band is what this code computes for the smoke profile on
    the synthetic data, whichever split it evaluates on (issue: the self-check was refused)."""
    from grader.grading.evaluation import prepare_data

    profile = SPEC.profile("smoke")
    counts = {"train": profile.train_images, "val": 48, "test": 48}
    for split in ("test", "val"):
        data = prepare_data(SPEC, dict(profile.image_size), counts, tmp_path / split, 7, split)
        identity = BandIdentity(SPEC.id, profile.id, profile.training_sha256, data.fingerprint, data.evaluation)
        bands = load_bands(profile, "random_init", [v.id for v in SPEC.variants], identity=identity)
        assert all(b.measured for b in bands.values()), next(iter(bands.values())).refusal


def test_a_thin_band_is_widened_to_the_minimum_spread():
    stats = summarise_runs([_run({"unet": 0.5}) for _ in range(3)], SPEC.class_names)["unet"]
    assert stats["std"] == 0 and stats["lower"] == pytest.approx(0.47) and stats["upper"] == pytest.approx(0.53)


def test_the_committed_full_bands_say_not_measured():
    for backbone in ("imagenet", "random_init"):
        band = load_band(SPEC.profile("full"), backbone, "unet")
        assert not band.measured and "not measured" in band.source


def test_segrade_bands_refuses_another_assignments_file_before_training(tmp_path, capsys):
    from grader.cli import main
    from grader.shared.resources import DEFAULT_SPEC

    spec_file = tmp_path / "hw4.toml"
    spec_file.write_text(DEFAULT_SPEC.read_text().replace('id = "fcn-unet-segmentation"', 'id = "hw4"', 1))
    before = (Path(__file__).parents[1] / "reference" / "bands" / "smoke.json").read_bytes()
    assert main(["bands", "--spec", str(spec_file), "--profile", "smoke", "--seeds", "2"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "holds the bands of assignment 'fcn-unet-segmentation', not 'hw4'" in out and "--out DIR" in out
    assert (Path(__file__).parents[1] / "reference" / "bands" / "smoke.json").read_bytes() == before
    assert main(["bands", "--spec", str(spec_file), "--reference", str(tmp_path / "absent"), "--seeds", "2"]) == 2
    assert "no such file or folder" in capsys.readouterr().out


# --------------------------------------------------------------------------- what rests on the student's process

FALLBACK = {"measured_in": "student process", "reason": "torch.export could not capture the model: data-dependent"}


def test_identity_checks_measured_in_the_student_s_process_are_held_and_earn_nothing():
    held, grade = _score(replace(_unet(0.45), program=FALLBACK))
    checks = {c.id: c for c in held.checks}
    assert {cid for cid, c in checks.items() if c.status is CheckStatus.HELD} == {"architecture", "skip_ablation",
                                                                                  "learns"}
    assert held.status is VariantStatus.HELD and grade.passed_variants == 0
    assert "data-dependent" in checks["architecture"].message and "--trust-student-process" in checks["architecture"].message
    # builds, forward_shape and gradients earn theirs; the architecture's part and performance do not
    assert held.points == pytest.approx(12.5 * 3 / 6)
    assert held.points_detail["performance_points"] == 0
    assert "held" in held.points_detail["performance"]
    assert held.first_problem.id == "architecture"


def test_trusting_the_student_s_process_gives_back_what_was_held():
    held, _ = _score(replace(_unet(0.45), program=FALLBACK))
    trusted, grade = score(SPEC, (held,), {"unet": BAND}, trust=True)
    assert trusted[0].points == 25 and trusted[0].status is VariantStatus.PASSED and grade.passed_variants == 1
    assert all(c.status is CheckStatus.PASS and "Held" not in c.message and "held_from" not in c.details
               for c in trusted[0].checks)
    again, _ = _score(held)   # holding twice changes nothing
    assert again.checks == held.checks and again.points == held.points


def test_a_failure_measured_in_the_student_s_process_stays_a_failure():
    failed, _ = _score(replace(_unet(0.45, failing=("architecture",)), program=FALLBACK))
    checks = {c.id: c.status for c in failed.checks}
    assert checks["architecture"] is CheckStatus.FAIL and failed.status is VariantStatus.FAILED
    assert "architecture check failed" in failed.points_detail["performance"]


def test_only_the_training_in_the_student_s_process_holds_what_training_measured():
    program = {"measured_in": "captured program", "training_measured_in": "student process",
               "training_reason": "the training build could not be captured"}
    held, _ = _score(replace(_unet(0.45), program=program))
    statuses = {c.id: c.status for c in held.checks}
    assert statuses["architecture"] is CheckStatus.PASS
    assert statuses["learns"] is CheckStatus.HELD and statuses["skip_ablation"] is CheckStatus.HELD
    assert held.points_detail["performance_points"] == 0


def test_a_captured_variant_is_never_held():
    captured, _ = _score(replace(_unet(0.45), program={"measured_in": "captured program"}))
    assert captured.points == 25 and captured.status is VariantStatus.PASSED


def test_a_program_that_computes_with_many_fixed_values_has_its_mIoU_held():
    """A network trained elsewhere kept in constants (grader.verifier.fixed): the checks stand,
    the training's result waits for a person; a few fixed values (normalisation) change nothing."""
    store = {"measured_in": "captured program",
             "fixed": {"values": 120_000, "largest": ["smuggled.w1 (100,000 values)", "smuggled.w2 (20,000 values)"]}}
    held, grade = _score(replace(_unet(0.45), program=store))
    statuses = {c.id: c.status for c in held.checks}
    assert statuses["learns"] is CheckStatus.HELD and statuses["architecture"] is CheckStatus.PASS
    assert held.status is VariantStatus.HELD and held.points == pytest.approx(12.5)
    learns = held.check("learns").message
    assert "120,000 values that the training cannot change" in learns and "smuggled.w1 (100,000 values)" in learns
    assert "--trust-student-process" in learns and "forged" not in learns
    assert "held for review" in held.points_detail["flags"][0]
    trusted, _ = score(SPEC, (held,), {"unet": BAND}, trust=True)
    assert trusted[0].points == 25 and trusted[0].status is VariantStatus.PASSED
    few = {"measured_in": "captured program", "fixed": {"values": 6, "largest": ["mean (3 values)", "std (3 values)"]}}
    assert _score(replace(_unet(0.45), program=few))[0].points == 25


@pytest.mark.slow  # the CLI, reports included
def test_segrade_rescore_trust_student_process_as_the_instructor_types_it(tmp_path):
    """An instructor who has looked at a held variant gives it its marks back with the command
    docs/security.md names; without the flag the hold comes back."""
    from grader.cli import main
    from tiny_submission import spec_with

    data = json.loads((Path(__file__).parent / "data" / "results_small.json").read_text())
    ids = [v["variant_id"] for v in data["variants"]]
    spec = spec_with(ids, tmp_path / "spec.toml")
    data["variants"][1]["program"] = FALLBACK   # the vanilla U-Net, passed in the student's process
    out = tmp_path / "OUT" / "s1"
    out.mkdir(parents=True)
    (out / "results.json").write_text(json.dumps(data))

    def unet() -> dict:
        saved = json.loads((out / "results.json").read_text())
        return next(v for v in saved["variants"] if v["variant_id"] == "unet")

    assert main(["rescore", str(tmp_path / "OUT"), "--spec", str(spec), "--no-pdf"]) == 0
    held = unet()
    assert held["status"] == "held" and {c["id"]: c["status"] for c in held["checks"]}["architecture"] == "held"
    assert "held for review" in (out / "report.html").read_text()
    assert main(["rescore", str(tmp_path / "OUT"), "--spec", str(spec), "--no-pdf", "--trust-student-process"]) == 0
    trusted = unet()
    assert trusted["status"] == "passed" and trusted["points"] > held["points"]
    assert all(c["status"] != "held" for c in trusted["checks"])
