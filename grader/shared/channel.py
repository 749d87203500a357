"""The writing end of the event channel, for the worker and the verifier alike: one
protocol line per message (grader.shared.protocol) on the file descriptor the grading
process passed on the command line."""

from __future__ import annotations

import os
from typing import Any

from grader.shared import protocol


class Channel:
    def __init__(self, fd: int) -> None:
        self._file = os.fdopen(fd, "w", buffering=1)

    def send(self, event: str, **data: Any) -> None:
        self._file.write(protocol.line(event, **data))
        self._file.flush()
