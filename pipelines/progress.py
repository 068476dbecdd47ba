"""Progress of long CLI commands on stderr: one line when a phase starts, one when it ends, and a
heartbeat while it runs -- never a line per record.

    progress = Progress(3)
    with progress.phase("running the batch pipeline"):
        ...
    # [2/3] running the batch pipeline ...
    # [2/3] running the batch pipeline ... still running (1m00s)      (every ``heartbeat`` seconds)
    # [2/3] running the batch pipeline: done in 74.2 s

On a terminal the heartbeat rewrites its line; in a log (not a TTY) it prints a new line at most
every ``heartbeat`` seconds (60 by default), so scheduled runs get a few lines, not a flood.
``--quiet`` (or ``TOUCHLINE_PROGRESS=0``) turns it off.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import Callable, Iterator, TextIO


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Progress:
    def __init__(self, total: int, stream: TextIO | None = None, *, enabled: bool | None = None,
                 heartbeat: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = os.environ.get("TOUCHLINE_PROGRESS", "1") not in ("0", "false", "no")
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.heartbeat = heartbeat if heartbeat is not None else (5.0 if self.tty else 60.0)
        self.clock = clock
        self.done = 0

    def _write(self, text: str, end: str = "\n") -> None:
        if self.enabled:
            self.stream.write(text + end)
            self.stream.flush()

    @contextlib.contextmanager
    def phase(self, label: str) -> Iterator[None]:
        self.done += 1
        prefix = f"[{self.done}/{self.total}] " if self.total else ""
        start = self.clock()
        self._write(f"{prefix}{label} ...")
        stop = threading.Event()

        def beat():
            while not stop.wait(self.heartbeat):
                text = f"{prefix}{label} ... still running ({_clock(self.clock() - start)})"
                self._write(("\r" + text) if self.tty else text, end="" if self.tty else "\n")

        thread = threading.Thread(target=beat, daemon=True) if self.enabled and self.heartbeat > 0 else None
        if thread:
            thread.start()
        ok = False
        try:
            yield
            ok = True
        finally:
            stop.set()
            if thread:
                thread.join()
            took = self.clock() - start
            lead = "\r" if self.tty else ""
            self._write(f"{lead}{prefix}{label}: {'done' if ok else 'failed'} in {took:.1f} s")
