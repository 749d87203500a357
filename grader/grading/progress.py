"""Where the grade of one submission has got to: variant k of N, its phase, the training step,
the time spent and an estimate of the time left.

`ProgressTracker` turns the worker's messages (grader.shared.protocol, already validated) into a
`ProgressState`; `check` draws it live (grader.report.progress) and a batch job writes it to
a small file that the submitting command reads for its running jobs (`write_progress`,
`read_progress`). Progress is for people waiting: it never changes a figure, and a student's
code that forges `phase` or `step` messages can at most make the bar lie.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from grader.shared.protocol import Done, Message, PhaseStarted, Step, TrainingReport, VariantReport

# How far into one variant each phase starts (fraction of that variant's work), with and
# without training: the reference's self-check on 2 cores (benchmarks/bench_check.py), per
# variant on average: build 0.7 s, forward 0.6 s, checks 4.2 s, untrained evaluation 1.1 s,
# training 13.7 s (with its validation passes), final evaluation 0.3 s; checks only: build
# 0.8 s, forward 0.3 s, checks 3.4 s.
_WITH_TRAINING = {"build": 0.0, "forward": 0.03, "check": 0.06, "evaluate": 0.27, "train": 0.32, "final": 0.98}
_CHECKS_ONLY = {"build": 0.0, "forward": 0.18, "check": 0.25}
_TRAIN_SPAN = 0.66  # of a variant, the training steps (from "train" to "final")
# With capture the worker first builds and captures every variant, then the verifier goes
# through them all again (loading, checks, training): the worker's share of the whole, from
# the reference's self-check on 2 cores (benchmarks/bench_check.py, 2026-12-05: ~62 of 363 s
# with training; ~54 of 130 s with checks only).
_CAPTURE_SHARE = {True: 0.17, False: 0.4}

PHASE_WORDS = {"start": "starting the worker", "import": "importing the submission", "build": "building",
               "forward": "forward pass", "check": "running the checks",  # short: an 80-column terminal shows the bar too
               "evaluate": "evaluating the untrained model", "train": "training",
               "final": "evaluating the trained model", "done": "done"}


@dataclass(frozen=True)
class ProgressState:
    total: int                      # variants asked for
    index: int = 0                  # 1-based position of the variant in progress; 0 before the first
    variant: str | None = None
    phase: str = "start"
    step: int | None = None         # training step reached, of `steps`
    steps: int | None = None
    fraction: float = 0.0           # of the whole submission's work, 0..1
    elapsed: float = 0.0            # seconds since the worker started
    remaining: float | None = None  # estimated seconds left; None until an estimate means something
    stage: str = ""                 # with capture: "capture" (the worker), then "verify" (the verifier)

    def describe(self) -> str:
        """One line: 'variant 3 of 10, fcn8s_frozen: training step 20/30'."""
        if self.stage == "verify" and self.phase in ("start", "import"):   # the verifier imports no submission
            return "starting the verifier"
        if self.phase in ("start", "import", "done") or self.variant is None:
            return PHASE_WORDS.get(self.phase, self.phase)
        what = PHASE_WORDS.get(self.phase, self.phase)
        if self.stage == "capture" and self.phase in ("build", "forward"):
            what = "building and capturing"
        elif self.stage == "verify" and self.phase == "build":
            what = "loading its captured program"
        elif self.phase == "train" and self.steps:
            what = f"training step {self.step or 0}/{self.steps}"
        return f"variant {self.index} of {self.total}, {self.variant}: {what}"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "ProgressState":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


class ProgressTracker:
    """Call it with every message the grading process accepted; it calls `on_update`
    with the new state whenever something a person would see changed."""

    def __init__(self, variants: Sequence[str], training: bool, on_update: Callable[[ProgressState], None],
                 clock: Callable[[], float] = time.monotonic, capture: bool = False) -> None:
        self.order = {vid: i for i, vid in enumerate(variants)}
        self.weights = _WITH_TRAINING if training else _CHECKS_ONLY
        self.on_update = on_update
        self.clock = clock
        self.started = clock()
        # With capture, the stage's span of the whole: (start, width).
        self.share = _CAPTURE_SHARE[training] if capture else 1.0
        self.span = (0.0, self.share)
        self.state = ProgressState(total=len(self.order), stage="capture" if capture else "")

    def verifying(self) -> None:
        """The worker has captured every variant; the verifier goes through them again."""
        self.span = (self.share, 1.0 - self.share)
        self._publish(replace(self.state, stage="verify", phase="start", index=0, variant=None, step=None,
                              steps=None, fraction=self.share))

    def __call__(self, message: Message) -> None:
        s = self.state
        if isinstance(message, PhaseStarted):
            if message.variant is None or message.variant not in self.order:
                s = replace(s, phase=message.phase, variant=None, step=None, steps=None)
            else:
                phase = message.phase
                if phase == "evaluate" and message.variant == s.variant and s.phase == "train":
                    phase = "final"  # the evaluation after training
                s = replace(s, index=self.order[message.variant] + 1, variant=message.variant, step=None,
                            steps=None, phase=phase)
                # Never back: with capture the verifier goes through a variant's phases again.
                s = replace(s, fraction=max(s.fraction, self._fraction(s)))
        elif isinstance(message, Step) and message.variant == s.variant:
            s = replace(s, step=message.step, steps=message.steps)
            s = replace(s, fraction=max(s.fraction, self._fraction(s)))
        elif isinstance(message, (VariantReport, TrainingReport)) and message.variant in self.order:
            if isinstance(message, TrainingReport) or self.weights is _CHECKS_ONLY:
                s = replace(s, fraction=self._scaled((self.order[message.variant] + 1) / max(1, s.total)))
        elif isinstance(message, Done):
            s = replace(s, phase="done", variant=None, fraction=self._scaled(1.0))
        else:
            return
        self._publish(s)

    def _publish(self, state: ProgressState) -> None:
        """Keep `state`, with the time spent and the estimate brought up to date, and pass it on."""
        elapsed = self.clock() - self.started
        remaining = None
        if state.fraction >= 1.0:
            remaining = 0.0
        elif state.fraction >= 0.05:  # before that, any estimate is a guess
            remaining = elapsed * (1 - state.fraction) / state.fraction
        self.state = replace(state, elapsed=round(elapsed, 1),
                             remaining=None if remaining is None else round(remaining, 1))
        self.on_update(self.state)

    def _fraction(self, s: ProgressState) -> float:
        within = self.weights.get(s.phase, 0.0)
        if s.phase == "train" and s.steps:
            within += _TRAIN_SPAN * min(1.0, (s.step or 0) / s.steps)
        done = self.order.get(s.variant, 0) if s.variant else 0
        return self._scaled(min(1.0, (done + within) / max(1, s.total)))

    def _scaled(self, fraction: float) -> float:
        """A fraction of the current stage as a fraction of the whole."""
        start, width = self.span
        return min(1.0, start + width * fraction)


# --------------------------------------------------------------------------- batch jobs' files

def progress_path(folder: Path, name: str) -> Path:
    return folder / f"{name}.progress.json"


def write_progress(path: Path, state: ProgressState) -> None:
    """Atomically (a reader never sees half a file); failures are ignored: progress is a courtesy."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + f".{os.getpid()}.part")
        partial.write_text(json.dumps(state.to_json()))
        os.replace(partial, path)
    except OSError:
        pass


def read_progress(path: Path) -> ProgressState | None:
    try:
        return ProgressState.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, AttributeError):
        return None


class Throttled:
    """Calls `write` with a state at most every `seconds`, and at once when the variant or the
    phase changes (what a person watching notices)."""

    def __init__(self, write: Callable[[ProgressState], None], seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.write, self.seconds, self.clock = write, seconds, clock
        self.last: tuple[float, str | None, str] | None = None

    def __call__(self, state: ProgressState) -> None:
        now = self.clock()
        if self.last is None or (state.variant, state.phase) != self.last[1:] or now - self.last[0] >= self.seconds:
            self.last = (now, state.variant, state.phase)
            self.write(state)
