"""Live progress (issue 18): the tracker on recorded worker messages, the `step` message's
rules, the plain lines and the files batch jobs write. No worker runs here; the user's path
(`segrade check` printing progress lines) is asserted in test_reference_grade.py."""

import io
import json

import pytest
from rich.console import Console

from grader.grading.progress import ProgressState, ProgressTracker, Throttled, read_progress, write_progress
from grader.shared.protocol import (Done, Observation, PhaseStarted, ProtocolError, Reader, Step, TrainingReport,
                                    VariantReport, line)
from grader.report.progress import PlainLines, check_progress, time_left

VARIANTS = ["fcn32s_frozen", "unet"]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _track(training=True, capture=False):
    states, clock = [], Clock()
    tracker = ProgressTracker(VARIANTS, training, states.append, clock, capture=capture)
    return tracker, states, clock


def _messages_of_one_variant(vid, steps=30):
    yield PhaseStarted("build", vid)
    yield PhaseStarted("forward", vid)
    yield PhaseStarted("check", vid)
    yield VariantReport(vid, Observation.from_json({"id": vid}))
    yield PhaseStarted("evaluate", vid)
    yield PhaseStarted("train", vid)
    for s in range(0, steps + 1, 10):
        yield Step(vid, s, steps)
    yield PhaseStarted("evaluate", vid)
    yield TrainingReport(vid, {"ok": True})


def _every_variant_then_done(tracker, clock):
    """Every variant's messages, a second apart, then the end."""
    for vid in VARIANTS:
        for message in _messages_of_one_variant(vid):
            clock.now += 1
            tracker(message)
    tracker(Done())


def test_tracker_walks_variant_phase_and_step_and_only_moves_forward():
    tracker, states, clock = _track()
    tracker(PhaseStarted("import", None))
    _every_variant_then_done(tracker, clock)
    fractions = [s.fraction for s in states]
    assert fractions == sorted(fractions), "progress never goes back"
    assert states[-1].fraction == 1.0 and states[-1].remaining == 0.0 and states[-1].phase == "done"
    described = [s.describe() for s in states]
    assert "variant 1 of 2, fcn32s_frozen: building" in described
    assert "variant 1 of 2, fcn32s_frozen: training step 20/30" in described
    assert "variant 2 of 2, unet: evaluating the trained model" in described
    assert "variant 2 of 2, unet: evaluating the untrained model" in described
    halfway = next(s for s in states if s.variant == "unet" and s.phase == "build")
    assert halfway.fraction == pytest.approx(0.5) and halfway.index == 2
    # The estimate: elapsed * (1 - f) / f once f is meaningful.
    assert halfway.remaining == pytest.approx(halfway.elapsed)


def test_with_capture_the_workers_pass_is_a_share_and_the_verifiers_pass_the_rest():
    """The worker builds and captures every variant, then the verifier goes through them again:
    the first pass must not claim the work is nearly done, and the lines say which pass it is."""
    tracker, states, clock = _track(capture=True)
    for vid in VARIANTS:
        clock.now += 5
        tracker(PhaseStarted("build", vid))
        tracker(VariantReport(vid, Observation.from_json({"id": vid})))
    tracker(Done())
    captured = states[-1]
    assert captured.fraction == pytest.approx(0.17) and captured.remaining > captured.elapsed
    assert "variant 2 of 2, unet: building and capturing" in [s.describe() for s in states]
    tracker.verifying()
    assert states[-1].describe() == "starting the verifier" and states[-1].fraction == pytest.approx(0.17)
    tracker(PhaseStarted("import"))   # the verifier's: it imports no submission, and the line must not say so
    assert states[-1].describe() == "starting the verifier"
    _every_variant_then_done(tracker, clock)
    fractions = [s.fraction for s in states]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    described = [s.describe() for s in states]
    assert "variant 1 of 2, fcn32s_frozen: loading its captured program" in described
    assert "variant 2 of 2, unet: training step 20/30" in described


def test_no_estimate_before_five_percent_and_checks_only_counts_results():
    tracker, states, clock = _track(training=False)
    clock.now = 3
    tracker(PhaseStarted("build", "fcn32s_frozen"))
    assert states[-1].remaining is None and time_left(states[-1]) == "estimating time left"
    clock.now = 10
    tracker(VariantReport("fcn32s_frozen", Observation.from_json({"id": "fcn32s_frozen"})))
    assert states[-1].fraction == 0.5 and states[-1].remaining == 10.0
    assert time_left(states[-1]) == "about 10 s left"
    assert time_left(ProgressState(total=1, remaining=125.0)) == "about 2 min 05 s left"


def test_a_restarted_worker_keeps_the_progress_made():
    tracker, states, _ = _track()
    for message in _messages_of_one_variant("fcn32s_frozen"):
        tracker(message)
    before = states[-1].fraction
    tracker(PhaseStarted("import", None))  # a fresh worker after a crash
    assert states[-1].fraction == before and states[-1].describe() == "importing the submission"


def test_unknown_variants_from_a_forging_worker_do_not_move_the_bar():
    tracker, states, _ = _track()
    tracker(PhaseStarted("build", "not_asked"))
    tracker(Step("not_asked", 5, 10))
    assert all(s.fraction == 0 for s in states)


def test_step_messages_are_validated_like_any_other():
    reader = Reader(["unet"], ["m.py"], "train")
    reader.read(line("environment", environment={"device": "cpu", "torch": "x", "python": "y"}))
    reader.read(line("phase", phase="import"))
    reader.read(line("phase", phase="build", id="unet"))
    with pytest.raises(ProtocolError, match="outside its train phase"):
        reader.read(line("step", id="unet", step=1, steps=30))
    for bad, why in ((line("step", id="unet", step=1), "missing"), (line("step", id="unet", step="1", steps=3), "step"),
                     (line("step", id="unet", step=1, steps=0), "steps"),
                     (line("step", id="unet", step=1, steps=3, extra=1), "extra")):
        with pytest.raises(ProtocolError):
            Reader(["unet"], ["m.py"], "train").read(bad)


def test_step_sequence_in_the_train_phase():
    from grader.shared.protocol import _VariantState

    reader = Reader(["unet"], ["m.py"], "train")
    reader.current = "unet"
    reader.phase = "train"
    reader.variants["unet"] = _VariantState(phase="train", reported=True)
    assert reader.read(line("step", id="unet", step=0, steps=30)) == Step("unet", 0, 30)
    assert reader.read(line("step", id="unet", step=10, steps=30)).step == 10
    with pytest.raises(ProtocolError, match="after step 10"):
        reader.read(line("step", id="unet", step=5, steps=30))
    with pytest.raises(ProtocolError, match="31 of 30"):
        reader.read(line("step", id="unet", step=31, steps=30))


def test_plain_lines_once_per_variant_and_phase():
    out = io.StringIO()
    console = Console(file=out, width=200)
    lines = PlainLines(console, prefix="alice: ")
    for step in (0, 10, 20):
        lines(ProgressState(total=10, index=3, variant="fcn8s_frozen", phase="train", step=step, steps=30,
                            fraction=0.25, elapsed=12.0, remaining=36.0))
    lines(ProgressState(total=10, index=3, variant="fcn8s_frozen", phase="final", fraction=0.29, elapsed=20.0))
    text = out.getvalue().splitlines()
    assert text == ["[    12 s] alice: variant 3 of 10, fcn8s_frozen: training step 0/30 (about 36 s left)",
                    "[    20 s] alice: variant 3 of 10, fcn8s_frozen: evaluating the trained model (estimating time left)"]


def test_plain_lines_say_a_phase_that_reads_the_same_once():
    """The worker's build and first forward of a captured variant both read "building and
    capturing", the verifier's start and import both "starting the verifier": one line each."""
    out = io.StringIO()
    lines = PlainLines(Console(file=out, width=200))
    lines(ProgressState(total=1, index=1, variant="unet", phase="build", stage="capture", elapsed=4.0))
    lines(ProgressState(total=1, index=1, variant="unet", phase="forward", stage="capture", elapsed=7.0))
    lines(ProgressState(total=1, index=1, variant=None, phase="start", stage="verify", elapsed=8.0))
    lines(ProgressState(total=1, index=1, variant=None, phase="import", stage="verify", elapsed=8.0))
    lines(ProgressState(total=1, index=1, variant="unet", phase="build", stage="verify", elapsed=8.0))
    assert [line.split("] ", 1)[1] for line in out.getvalue().splitlines()] == [
        "variant 1 of 1, unet: building and capturing (estimating time left)",
        "starting the verifier (estimating time left)",
        "variant 1 of 1, unet: loading its captured program (estimating time left)"]


def test_check_progress_is_plain_when_not_a_terminal():
    out = io.StringIO()
    with check_progress(Console(file=out, width=200), "segrade: checking x") as update:
        update(ProgressState(total=2, index=1, variant="unet", phase="build", elapsed=1.0))
    assert out.getvalue().splitlines() == ["segrade: checking x", "[     1 s] variant 1 of 2, unet: building "
                                           "(estimating time left)"]


def test_check_progress_draws_a_bar_on_a_terminal():
    out = io.StringIO()
    console = Console(file=out, width=160, force_terminal=True)
    with check_progress(console, "segrade: checking x") as update:
        update(ProgressState(total=10, index=3, variant="fcn8s_frozen", phase="train", step=20, steps=30,
                             fraction=0.27, elapsed=50.0, remaining=135.0))
    assert "variant 3 of 10, fcn8s_frozen: training step 20/30" in out.getvalue()


def test_progress_files_are_atomic_and_tolerant(tmp_path):
    path = tmp_path / "progress" / "alice.json"
    assert read_progress(path) is None
    state = ProgressState(total=10, index=2, variant="unet", phase="check", fraction=0.15, elapsed=3.0)
    write_progress(path, state)
    assert read_progress(path) == state
    assert list(path.parent.iterdir()) == [path]  # no partial file left behind
    path.write_text("{half")
    assert read_progress(path) is None
    path.write_text(json.dumps({"total": 3, "unknown": 1}))
    assert read_progress(path) == ProgressState(total=3)


def test_throttled_writes_on_changes_and_at_most_each_second():
    clock, written = Clock(), []
    throttled = Throttled(written.append, seconds=1.0, clock=clock)
    a = ProgressState(total=2, index=1, variant="unet", phase="train", step=1, steps=30)
    throttled(a)
    clock.now = 0.5
    throttled(a)                                  # same phase, too soon: skipped
    throttled(ProgressState(total=2, index=1, variant="unet", phase="final"))   # phase changed: written
    clock.now = 1.6
    throttled(ProgressState(total=2, index=1, variant="unet", phase="final", elapsed=1.6))  # a second later
    assert [s.phase for s in written] == ["train", "final", "final"]


def test_a_batch_log_gets_one_line_per_variant_of_each_job():
    out = io.StringIO()
    lines = PlainLines(Console(file=out, width=200), prefix="bo: ", phases=False)
    for phase in ("build", "forward", "check"):
        lines(ProgressState(total=2, index=1, variant="unet", phase=phase, elapsed=2.0))
    lines(ProgressState(total=2, index=2, variant="unet_noskip", phase="build", elapsed=9.0, remaining=9.0))
    assert out.getvalue().splitlines() == [
        "[     2 s] bo: variant 1 of 2, unet: building (estimating time left)",
        "[     9 s] bo: variant 2 of 2, unet_noskip: building (about 9 s left)"]


def test_the_training_line_waits_for_the_step_count():
    out = io.StringIO()
    lines = PlainLines(Console(file=out, width=200))
    lines(ProgressState(total=1, index=1, variant="unet", phase="train", elapsed=5.0))
    lines(ProgressState(total=1, index=1, variant="unet", phase="train", step=0, steps=30, elapsed=5.0))
    assert out.getvalue().splitlines() == ["[     5 s] variant 1 of 1, unet: training step 0/30 (estimating time left)"]


def test_the_verifier_going_through_a_variant_again_never_moves_the_bar_back():
    """With capture the worker builds and captures each variant, then the verifier runs the same
    phases again (build, forward, check, train): the fraction only grows."""
    tracker, states, _ = _track()
    worker = [PhaseStarted("build", "fcn32s_frozen"), PhaseStarted("forward", "fcn32s_frozen")]
    for message in [*worker, *_messages_of_one_variant("fcn32s_frozen")]:
        tracker(message)
    fractions = [s.fraction for s in states]
    assert fractions == sorted(fractions) and states[-1].phase != "build"
