"""The scoring rule and the bands files, on plain data (no worker)."""

import json
from pathlib import Path
from dataclasses import replace

import pytest

from grader.bands import BandsError, check_writable, load_band, load_bands, summarise_runs, write_bands
from grader.results import Band, CheckResult, CheckStatus, VariantResult, VariantStatus
from grader.score import performance_fraction, score
from grader.spec import load_spec

SPEC = load_spec()
BAND = Band(measured=True, profile="smoke", backbone="random_init", mean=0.5, std=0.05, min=0.44, max=0.56,
            lower=0.4, upper=0.6, untrained=0.1, runs=5, source="test")
UNET_CHECKS = ("builds", "forward_shape", "gradients", "architecture", "learns")


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


def test_failing_architecture_forfeits_performance_and_its_check():
    result, _ = _score(_unet(0.55, failing=("architecture",)))
    assert result.points == pytest.approx(25 - 12.5 - 12.5 / 4)
    assert result.points_detail["performance_points"] == 0
    assert "architecture check failed" in result.points_detail["performance"]


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
    assert "no reference band" in result.points_detail["performance"]
    assert "performance not scored for unet" in grade.note
    checks_only, grade = _score(_unet(None), trained=False)
    assert checks_only.points_detail["performance_points"] is None and "checks only" in grade.note


def _run(mious):
    from grader.results import Grade, SubmissionResult, Submission

    variants = tuple(replace(_unet(m, variant_id=vid), metrics={"miou": m, "untrained_miou": 0.05,
                                                               "per_class_iou": {"Road": m + 0.1}})
                     for vid, m in mious.items())
    sub = Submission("r", None, "", None, (), (), {}, ())
    return SubmissionResult(sub, "a", "", "", {"device": "cpu (2 threads)"}, (), variants, None,
                            Grade(0, 100, 81, 1, 1, (), ""), "", "", 0.0)


def test_bands_round_trip_with_provenance_and_profile_check(tmp_path):
    profile = SPEC.profile("smoke")
    runs = [_run({"unet": m}) for m in (0.40, 0.42, 0.44)]
    variants = summarise_runs(runs, SPEC.class_names)
    stats = variants["unet"]
    assert stats["mean"] == pytest.approx(0.42) and stats["std"] == pytest.approx(0.02)
    assert stats["lower"] == pytest.approx(0.36) and stats["upper"] == pytest.approx(0.48)
    assert stats["untrained_mean"] == 0.05 and stats["per_class_iou"]["Road"]["mean"] == pytest.approx(0.52)
    entry = {"measured": True, "variants": variants, "provenance": {"device": "cpu", "date": "2026-11-22T00:00:00",
                                                                    "profile_sha256": profile.sha256}}
    path = write_bands(SPEC, profile, "random_init", entry, tmp_path)
    data = json.loads(path.read_text())
    assert data["backbones"]["imagenet"] == {"measured": False, "reason": "not measured"}
    band = load_band(profile, "random_init", "unet", tmp_path)
    assert band.measured and band.lower == pytest.approx(0.36) and band.untrained == 0.05 and band.runs == 3
    assert not load_band(profile, "imagenet", "unet", tmp_path).measured
    assert not load_band(SPEC.profile("full"), "random_init", "unet", tmp_path).measured  # no file
    changed = replace(profile, seed=99)
    stale = load_band(changed, "random_init", "unet", tmp_path)
    assert not stale.measured and "different version" in stale.source


def test_bands_apply_only_to_their_assignment_and_data_and_are_never_overwritten_by_another(tmp_path):
    profile = SPEC.profile("smoke")
    variants = summarise_runs([_run({"unet": m}) for m in (0.40, 0.44)], SPEC.class_names)
    entry = {"measured": True, "variants": variants,
             "provenance": {"device": "cpu", "date": "2026-11-22", "profile_sha256": profile.sha256,
                            "dataset_fingerprint": "a" * 64}}
    write_bands(SPEC, profile, "random_init", entry, tmp_path)

    def band(**context):
        return load_bands(profile, "random_init", ["unet"], tmp_path, **context)["unet"]

    assert band(assignment_id=SPEC.id, dataset_fingerprint="a" * 64).measured
    other = band(assignment_id="hw4", dataset_fingerprint="a" * 64)
    assert not other.measured and "measured for assignment 'fcn-unet-segmentation', not 'hw4'" in other.source
    assert "--bands DIR" in other.source
    moved = band(assignment_id=SPEC.id, dataset_fingerprint="b" * 64)
    assert not moved.measured and "other training/validation data (dataset aaaaaaaaaaaa…, this grade's " \
        "bbbbbbbbbbbb…)" in moved.source

    hw4 = replace(SPEC, id="hw4")
    with pytest.raises(BandsError, match="holds the bands of assignment 'fcn-unet-segmentation', not 'hw4'.*--out DIR"):
        write_bands(hw4, profile, "random_init", entry, tmp_path)
    assert band(assignment_id=SPEC.id).measured, "the other assignment's bands are intact"
    assert check_writable(hw4, profile, tmp_path / "elsewhere") == tmp_path / "elsewhere" / "smoke.json"


def test_a_thin_band_is_widened_to_the_minimum_spread():
    stats = summarise_runs([_run({"unet": 0.5}) for _ in range(3)], SPEC.class_names)["unet"]
    assert stats["std"] == 0 and stats["lower"] == pytest.approx(0.47) and stats["upper"] == pytest.approx(0.53)


def test_the_committed_full_bands_say_not_measured():
    for backbone in ("imagenet", "random_init"):
        band = load_band(SPEC.profile("full"), backbone, "unet")
        assert not band.measured and "not measured" in band.source


def test_segrade_bands_refuses_another_assignments_file_before_training(tmp_path, capsys):
    from grader.cli import main
    from grader.resources import DEFAULT_SPEC

    spec_file = tmp_path / "hw4.toml"
    spec_file.write_text(DEFAULT_SPEC.read_text().replace('id = "fcn-unet-segmentation"', 'id = "hw4"', 1))
    before = (Path(__file__).parents[1] / "reference" / "bands" / "smoke.json").read_bytes()
    assert main(["bands", "--spec", str(spec_file), "--profile", "smoke", "--seeds", "2"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "holds the bands of assignment 'fcn-unet-segmentation', not 'hw4'" in out and "--out DIR" in out
    assert (Path(__file__).parents[1] / "reference" / "bands" / "smoke.json").read_bytes() == before
    assert main(["bands", "--spec", str(spec_file), "--reference", str(tmp_path / "absent"), "--seeds", "2"]) == 2
    assert "no such file or folder" in capsys.readouterr().out
