"""Live progress in the terminal: a bar for `segrade check` (variant k of N, phase, training
step, elapsed, an estimate of what is left) and the running jobs' lines of `segrade grade`.
When the output is not a terminal (a CI log, a file), plain lines instead, one per variant and
phase, so a log shows where a slow or stuck run was."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from grader.grading.progress import ProgressState


def is_live(console: Console) -> bool:
    return console.is_terminal and not console.is_dumb_terminal


def time_left(state: ProgressState) -> str:
    if state.remaining is None:
        return "estimating time left"
    if state.remaining <= 0:
        return ""
    minutes, seconds = divmod(round(state.remaining), 60)
    return f"about {minutes} min {seconds:02d} s left" if minutes else f"about {seconds} s left"


def plain_line(state: ProgressState, prefix: str = "") -> str:
    left = time_left(state)
    return f"[{state.elapsed:6.0f} s] {prefix}{state.describe()}{f' ({left})' if left else ''}"


class PlainLines:
    """Progress as plain lines: one when the variant or the phase changes (not every step);
    with `phases=False` one per variant only (a batch's log, many jobs at once)."""

    def __init__(self, console: Console, prefix: str = "", phases: bool = True) -> None:
        self.console, self.prefix, self.phases = console, prefix, phases
        self.last: tuple[str | None, str] | None = None

    def __call__(self, state: ProgressState) -> None:
        if state.phase == "train" and state.steps is None:
            return  # the first step message follows at once and says how many steps
        # What a person is told apart: two phases that read the same (the worker's build and its
        # first forward, both "building and capturing"; the verifier's start and import) are one
        # line, and so is a training whatever its step.
        said = "train" if state.phase == "train" else state.describe()
        key = (state.variant, said if self.phases else "")
        if key != self.last:
            self.last = key
            self.console.print(plain_line(state, self.prefix), markup=False, highlight=False)


@contextmanager
def check_progress(console: Console, title: str) -> Iterator[Callable[[ProgressState], None]]:
    """The display of one submission's grade; yields the callback that moves it on."""
    if not is_live(console):
        console.print(title, markup=False, highlight=False)
        yield PlainLines(console)
        return
    bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                   TimeElapsedColumn(), TextColumn("[dim]{task.fields[left]}"), console=console, transient=True)
    task = bar.add_task(escape(title), total=1.0, left="")

    def update(state: ProgressState) -> None:
        bar.update(task, completed=state.fraction, description=escape(state.describe()), left=time_left(state))

    with bar:
        yield update
