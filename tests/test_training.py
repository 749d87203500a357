"""The grader's training loop, the parent-side evaluation, and training through the real
worker with tiny models: curves, determinism, hostile training, checkpoint mode."""

import base64
import json
import zlib

import pytest
import torch
from torch import nn

from grader.grading.evaluation import (
    Evaluator, PredictionError, _subset, decode_predictions, prepare_data, score_predictions,
)
from grader.grading.pipeline import GradeOptions, grade_submission
from grader.shared.protocol import encode_predictions, line, parse
from grader.report import write_results
from grader.records.results import CheckStatus, VariantStatus
from grader.spec import load_spec
from grader.measure.train import SegmentationTensors, TrainConfig, predict, train
from tiny_submission import contract_classes, spec_with, write_submission


def _data(n=16, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    masks = (images[:, 0] > 128).to(torch.uint8) + 2 * (images[:, 1] > 128).to(torch.uint8)
    return images, masks


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1))


def test_training_is_deterministic_on_cpu():
    images, masks = _data()
    config = TrainConfig(steps=12, batch_size=4, lr=1e-2, seed=3)
    runs = []
    for _ in range(2):
        model = _model()
        log = train(model, SegmentationTensors(images, masks), config)
        runs.append((log.losses, {k: v.clone() for k, v in model.state_dict().items()},
                     predict(model, SegmentationTensors(images))))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])
    assert torch.equal(runs[0][2], runs[1][2])
    other = _model()
    other_losses = train(other, SegmentationTensors(images, masks), TrainConfig(steps=12, batch_size=4, lr=1e-2,
                                                                                seed=4)).losses
    assert other_losses != runs[0][0], "another seed must give another data order"


def test_training_learns_and_reports_at_every_interval():
    images, masks = _data(n=32)
    seen = []
    model = _model()
    log = train(model, SegmentationTensors(images, masks), TrainConfig(steps=50, batch_size=8, lr=5e-2, eval_every=20),
                on_eval=lambda step, log: seen.append((step, len(log.losses), model.training)))
    assert [s[0] for s in seen] == [20, 40, 50] and [s[1] for s in seen] == [20, 40, 50]
    assert model.training, "the loop leaves the model in train mode after an evaluation"
    assert sum(log.losses[-5:]) / 5 < log.losses[0]


def test_predictions_round_trip_and_reject_what_does_not_fit():
    pred = torch.randint(0, 13, (3, 8, 8), dtype=torch.uint8)
    message = encode_predictions(pred)
    assert torch.equal(decode_predictions(message, (3, 8, 8), 13), pred)
    with pytest.raises(PredictionError, match=r"shape \[3, 8, 8\] for 3 images of 16x16"):
        decode_predictions(message, (3, 16, 16), 13)
    with pytest.raises(PredictionError, match="malformed"):
        decode_predictions({"shape": [3, 8, 8], "data": "not base64!"}, (3, 8, 8), 13)
    bomb = {"shape": [3, 8, 8], "data": base64.b64encode(zlib.compress(bytes(10_000_000))).decode()}
    with pytest.raises(PredictionError, match="holds 193 bytes, expected 192"):
        decode_predictions(bomb, (3, 8, 8), 13)


def test_out_of_range_predictions_count_as_wrong():
    masks = torch.tensor([[[0, 1], [2, 255]]], dtype=torch.uint8)
    right = score_predictions(torch.tensor([[[0, 1], [2, 0]]]), masks, 3)
    cheat = score_predictions(torch.tensor([[[0, 1], [200, 0]]]), masks, 3)
    assert right.miou == 1.0
    assert cheat.per_class_iou[2] == 0.0 and cheat.pixel_accuracy == pytest.approx(2 / 3)


def test_the_worker_never_gets_validation_or_test_labels(tmp_path):
    spec = load_spec()
    data = prepare_data(spec, {"fcn": 32, "unet": 64}, {"train": 4, "val": 3, "test": 5}, tmp_path / "data",
                        test_seed=12345)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["32", "64"]
    for size in ("32", "64"):
        train_file = torch.load(tmp_path / "data" / size / "train.pt", weights_only=True)
        assert set(train_file) == {"images", "masks"}
        for split, n in (("val", 3), ("test", 5)):
            held = torch.load(tmp_path / "data" / size / f"{split}.pt", weights_only=True)
            assert set(held) == {"images"} and held["images"].shape == (n, 3, int(size), int(size))
    assert data.splits[64]["test"].masks.shape == (5, 64, 64)
    assert oct((tmp_path / "data" / "64" / "test.pt").stat().st_mode)[-3:] == "644"
    assert "secret seed" in data.test_source and "12345" not in data.test_source


def test_real_data_subsets_are_spread_over_the_split():
    assert _subset(range(100), 5) == [0, 25, 50, 74, 99]
    assert _subset(range(3), 5) == [0, 1, 2]


def test_evaluator_builds_curves_from_the_stream(tmp_path):
    spec = load_spec()
    data = prepare_data(spec, {"fcn": 32, "unet": 32}, {"train": 2, "val": 2, "test": 3}, tmp_path, test_seed=1)
    ev = Evaluator(data, {"unet": "unet"}, 13, grid_images=2)
    perfect_val = data.splits[32]["val"].masks.clone()
    perfect_val[perfect_val == 255] = 0
    ev(parse(line("predictions", id="unet", split="val", step=2, seconds=1.5, losses=[2.0, 1.0],
                  **encode_predictions(perfect_val))))
    ev(parse(line("predictions", id="unet", split="val", step=4, losses=[0.5, float("nan")],
                  **encode_predictions(torch.zeros(2, 32, 32, dtype=torch.uint8)))))
    ev(parse(line("predictions", id="unet", split="test", **encode_predictions(torch.zeros(2, 32, 32)))))
    ev(parse(line("predictions", id="intruder", split="test", **encode_predictions(torch.zeros(3, 32, 32)))))
    result = ev.variants["unet"]
    assert result.curves.loss_steps == [1, 2, 3, 4] and result.curves.loss == [2.0, 1.0, 0.5, None]
    assert result.curves.val_steps == [2, 4] and result.curves.val_miou[0] == 1.0 and result.curves.val_miou[1] < 1
    assert result.test is None and "test: predictions of shape [2, 32, 32] for 3 images" in result.errors[0]
    assert "intruder" not in ev.variants


def test_one_training_is_scored_on_the_test_split_and_on_the_val_split_as_a_self_check_scores_it(tmp_path):
    """`segrade bands` on real data: the final predictions cover the test images and then the
    validation images a self-check scores; each part is scored on its own labels, and each
    identifies its band as a grade and a self-check would (same images, same distribution)."""
    from tests.course_fixture import course_spec_text, make_cityscapes

    make_cityscapes(tmp_path / "data", {"train": 2, "val": 3, "test": 2})
    (tmp_path / "spec.toml").write_text(course_spec_text(root=str(tmp_path / "data")))
    course = load_spec(tmp_path / "spec.toml")
    counts = {"train": 2, "val": 2, "test": 3}
    both = prepare_data(course, {"unet": 32}, counts, tmp_path / "both", None, "test", also_val=True)
    grade = prepare_data(course, {"unet": 32}, counts, tmp_path / "grade", None, "test")
    check = prepare_data(course, {"unet": 32}, {"train": 2, "val": 3, "test": 3}, tmp_path / "check", None, "val")
    assert both.fingerprint == grade.fingerprint == check.fingerprint   # the same training data
    assert both.evaluation == grade.evaluation and both.val_evaluation == check.evaluation != grade.evaluation
    shown = torch.load(tmp_path / "both" / "32" / "test.pt", weights_only=True)["images"]
    assert torch.equal(shown, torch.cat([grade.splits[32]["test"].images, check.splits[32]["test"].images]))

    ev = Evaluator(both, {"unet": "unet"}, 19, grid_images=1)
    right = torch.cat([grade.splits[32]["test"].masks, check.splits[32]["test"].masks])
    right[right == 255] = 0
    wrong_on_val = right.clone()
    wrong_on_val[len(grade.splits[32]["test"].masks):] = (wrong_on_val[len(grade.splits[32]["test"].masks):] + 1) % 19
    ev(parse(line("predictions", id="unet", split="test_untrained", **encode_predictions(torch.zeros_like(right)))))
    ev(parse(line("predictions", id="unet", split="test", train_seconds=1.0, **encode_predictions(wrong_on_val))))
    test, val = ev.on_split("test").variants["unet"], ev.on_split("val").variants["unet"]
    assert test.test.miou == 1.0 and val.test.miou == 0.0 and test.untrained is not None and val.untrained is not None
    assert torch.equal(ev.on_split("val").grid(32)["images"], check.splits[32]["test"].images[:1])
    assert torch.equal(ev.grid(32)["images"], grade.splits[32]["test"].images[:1])


# ---------------------------------------------------------------- through the worker


@pytest.fixture(scope="module")
def unet_spec(tmp_path_factory):
    return load_spec(spec_with(["unet", "unet_noskip"], tmp_path_factory.mktemp("spec") / "spec.toml",
                               architecture=False))


def _grade(root, spec, monkeypatch, **options):
    monkeypatch.setenv("SEGRADE_TEST_SEED", "4242")
    return grade_submission(root, spec, GradeOptions(**{"profile": "smoke", **options}))


@pytest.mark.slow
def test_tiny_submission_trains_and_is_scored_on_hidden_labels(tmp_path, unet_spec, monkeypatch):
    from grader.grading.sandbox import EarlyStart

    started_early = []
    go = EarlyStart.go
    monkeypatch.setattr(EarlyStart, "go", lambda self: started_early.append(self.job) or go(self))
    root = write_submission(tmp_path / "s", {"models.py": contract_classes()})
    result = _grade(root, unet_spec, monkeypatch)
    again = _grade(root, unet_spec, monkeypatch)
    # Each grade's verifier was started while its worker worked (and is gone with its folder).
    assert len(started_early) == 2 and not any(job.exists() for job in started_early)
    unet = {v.variant_id: v for v in result.variants}["unet"]
    assert unet.status is VariantStatus.PASSED, unet.checks
    assert unet.check("learns").status is CheckStatus.PASS
    assert len(unet.curves["loss"]) == 30 and unet.curves["val_steps"] == [10, 20, 30]
    assert set(unet.metrics["per_class_iou"]) == set(unet_spec.class_names)
    assert unet.metrics["miou"] > unet.metrics["untrained_miou"]
    assert unet.training["image_size"] == 64 and unet.training["steps"] == 30
    assert result.environment["profile"] == "smoke" and result.environment["training_seed"] == 0
    # Same seed, same data, same device: the same numbers.
    assert [v.metrics for v in again.variants] == [v.metrics for v in result.variants]
    assert [v.curves["loss"] for v in again.variants] == [v.curves["loss"] for v in result.variants]

    out = tmp_path / "out"
    write_results(result, out)
    data = json.loads((out / "results.json").read_text())
    variant = data["variants"][0]
    assert {"metrics", "curves", "band", "points", "max_points"} <= set(variant)
    assert data["total"] == result.grade.total and data["max_total"] == result.grade.max_total
    with __import__("numpy").load(out / "samples.npz") as samples:
        assert samples["images_unet"].shape == (4, 3, 64, 64) and samples["pred_unet"].shape == (4, 64, 64)


@pytest.mark.slow
def test_a_model_that_kills_the_worker_while_training_loses_only_itself(tmp_path, unet_spec, monkeypatch):
    source = contract_classes(UNet="""
        calls = 0
        def forward(self, x):
            import os
            if self.training:
                type(self).calls += 1
                if type(self).calls > 20:
                    os._exit(0)
            return self.conv(x)
    """, UNetNoSkip="""
        def forward(self, x):
            out = self.conv(x)
            return out * float("nan") if self.training else out
    """)
    root = write_submission(tmp_path / "s", {"models.py": source})
    # Measured in the worker (--no-capture): a captured program is trained by the verifier, where
    # the exit, a Python side effect of forward, is not part of the program at all.
    variants = {v.variant_id: v for v in _grade(root, unet_spec, monkeypatch, capture=False).variants}
    unet, noskip = variants["unet"], variants["unet_noskip"]
    assert unet.status is VariantStatus.ERROR
    assert unet.check("builds").status is CheckStatus.PASS, "the checks made before training are kept"
    assert "ended (exit code 0) during train" in unet.check("learns").message
    assert noskip.status is VariantStatus.FAILED
    assert "loss became NaN" in noskip.check("learns").message
    assert noskip.points_detail["performance_points"] == 0


@pytest.mark.slow
def test_checkpoint_mode_evaluates_submitted_weights(tmp_path, monkeypatch):
    """Each variant's own weights file, never unpickled; and the model evaluated is the model that
    was checked: ResidualUNet builds another model on its second call (the one its weights fit),
    which the verifier refuses to evaluate, saying why."""
    spec = load_spec(spec_with(["unet", "unet_noskip", "unet_residual"], tmp_path / "spec.toml", architecture=False))
    source = contract_classes(ResidualUNet="""
        def __init__(self, num_classes, in_channels=3):
            nn.Module.__init__(self)
            import builtins
            builtins.built = getattr(builtins, "built", 0) + 1
            if builtins.built == 1:   # the checks' build
                self.conv = nn.Conv2d(in_channels, num_classes, 3, padding=1)
            else:                     # the one its weights are for
                self.conv = nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(),
                                          nn.Conv2d(8, num_classes, 1))

        def forward(self, x):
            return self.conv(x)
    """)
    root = write_submission(tmp_path / "s", {"models.py": source})
    (root / "weights").mkdir()
    torch.manual_seed(0)
    good = nn.Conv2d(3, 13, 3, padding=1)
    torch.save({"state_dict": {"conv." + k: v for k, v in good.state_dict().items()}}, root / "weights" / "unet.pt")
    other = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 13, 1))
    torch.save({"conv." + k: v for k, v in other.state_dict().items()}, root / "weights" / "unet_residual.pt")

    class Evil:
        def __reduce__(self):
            return (exec, ("open('/tmp/segrade-pwned', 'w').write('x')",))

    torch.save({"conv.weight": Evil()}, root / "weights" / "unet_noskip.pt")
    result = _grade(root, spec, monkeypatch, weights=True)
    variants = {v.variant_id: v for v in result.variants}
    unet, noskip = variants["unet"], variants["unet_noskip"]
    residual = variants["unet_residual"].check("learns")
    assert residual.status is CheckStatus.FAIL and residual.message.startswith(
        "setup failed: ValueError: the model built for training is not the model that was checked (tensors only in "
        "it: conv.0.bias, conv.0.weight, conv.2.bias and 1 more; tensors it lacks: conv.bias, conv.weight)")
    assert unet.check("learns").status is CheckStatus.PASS and "weights/unet.pt" in unet.check("learns").message
    assert unet.training["image_size"] == 256, "checkpoints are evaluated at the assignment's size"
    assert unet.curves["loss"] == []
    assert noskip.check("learns").status is CheckStatus.FAIL
    assert "weights_only" in noskip.check("learns").message or "Unsupported global" in noskip.check("learns").message
    assert not __import__("os").path.exists("/tmp/segrade-pwned")
    assert result.environment["mode"] == "weights"


# ---------------------------------------------------------------- skip ablation


class _TwoLevel(nn.Module):
    """Encoder feature at 1/1 joined (cat) with a feature that went to 1/2 and back up."""

    def __init__(self, dead=False):
        super().__init__()
        self.dead = dead
        self.enc = nn.Conv2d(3, 4, 3, padding=1)
        self.down = nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(4, 4, 2, stride=2)
        self.head = nn.Conv2d(8, 13, 1)

    def forward(self, x):
        f = torch.relu(self.enc(x))
        g = self.up(torch.relu(self.down(f)))
        return self.head(torch.cat([f * 0 if self.dead else f, g], dim=1))


def test_skip_ablation_tells_a_live_skip_from_a_dead_one():
    from grader.grading.checks import check_skip_ablation
    from grader.measure.graph import skip_ablation
    from grader.shared.protocol import TrainingOutcome

    spec = load_spec()
    variant = spec.variant("unet")
    torch.manual_seed(0)
    live = skip_ablation(_TwoLevel(), 64)
    dead = skip_ablation(_TwoLevel(dead=True), 64)
    assert [j["scale"] for j in live] == [1.0] and live[0]["relative_change"] > 1e-3
    assert [j["scale"] for j in dead] == [1.0] and dead[0]["relative_change"] == 0.0
    trained = TrainingOutcome(ok=True, mode="train")
    sent = {"ok": True, "mode": "train"}   # as the training message carries them
    assert check_skip_ablation(variant, TrainingOutcome.from_json(sent | {"skip_ablation": live})).status \
        is CheckStatus.PASS
    failed = check_skip_ablation(variant, TrainingOutcome.from_json(sent | {"skip_ablation": dead}))
    assert failed.status is CheckStatus.FAIL and "skip at 1/1 changes nothing" in failed.message
    assert check_skip_ablation(variant, None).status is CheckStatus.SKIP
    assert check_skip_ablation(spec.variant("unet_noskip"), trained) is None


def test_non_finite_numbers_become_null_in_results():
    from grader.grading.metrics import json_float

    assert json_float(float("inf")) is None and json_float(float("nan")) is None and json_float(None) is None
    assert json_float(0.12345678) == 0.123457


class _FrozenAtFirst(nn.Module):
    """A "frozen" backbone that trains from its fourth call on: a counter buffer and a gate, which
    torch.export captures as they are. The check's three steps see it frozen."""

    def __init__(self, unfreeze_after: int | None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone, self.head = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 4, 1)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.unfreeze_after = unfreeze_after

    def forward(self, x):
        self.calls += 1
        features = self.backbone(x)
        if self.unfreeze_after is None:
            return self.head(features.detach())
        gate = (self.calls > self.unfreeze_after).to(features.dtype)
        return self.head(gate * features + (1 - gate) * features.detach())


def test_the_training_reports_which_tensors_it_changed(tmp_path):
    """grader.measure.observe.train_and_predict compares the model's state from the start of the
    standardised training to its last predictions: what a frozen backbone's check reads
    (grader.grading.checks: a backbone frozen only at first fails)."""
    from grader.grading.pipeline import variant_request
    from grader.measure.observe import train_and_predict
    from grader.shared.protocol import FamilyTraining, TrainingRequest

    images, masks = _data(n=8, size=32)
    folder = tmp_path / "data"
    folder.mkdir()
    torch.save({"images": images, "masks": masks}, folder / "train.pt")
    for split in ("val", "test"):
        torch.save({"images": images[:4]}, folder / f"{split}.pt")
    spec = load_spec()
    variant = variant_request(spec, spec.variant("fcn8s_frozen"), False)
    training = TrainingRequest(mode="train", profile="smoke", data={"fcn": str(folder)}, pretrained=False,
                               config={"fcn": FamilyTraining(steps=6, batch_size=2, lr=1e-2, weight_decay=0.0,
                                                             optimizer="adamw", eval_every=3, seed=0)})
    changed = {}
    for name, model in (("frozen", _FrozenAtFirst(None)), ("at first", _FrozenAtFirst(3))):
        result = train_and_predict(lambda: (model, None), variant, torch.device("cpu"), training,
                                   lambda *a, **k: None, lambda: None)
        assert result["ok"], result
        changed[name] = set(result["changed"])
    assert changed["frozen"] == {"head.weight", "head.bias", "calls"}
    assert changed["at first"] == {"head.weight", "head.bias", "calls", "backbone.weight", "backbone.bias"}
