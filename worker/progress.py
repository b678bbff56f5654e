"""Progress of long provider work (first-start alignment, self-distillation, evaluation).

A (phase, done, total) callback. On a terminal it draws rich bars. Anywhere else (`make run | tee log`, a container,
a Celery worker) it prints lines: one when a phase starts or ends, and one at least every
`FTAAS_PROGRESS_INTERVAL_S` (30 s) in between, from a ticker thread, so a step slower than the interval (a
generation batch on a loaded CPU) still shows a line with the last step/total and the ETA. Lines use the log format
(service/logs.py), so JSON mode gives objects with `phase`, `step`, `total`, `eta_s`.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from service import logs

Write = Callable[[str, dict[str, Any]], None]  # (message, fields)
log = logging.getLogger("ftaas.progress")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m{rest % 60:02d}s" if hours else f"{rest // 60}m{rest % 60:02d}s"


class ProgressLines:
    """The line printer; ``clock`` and ``tick`` let a test drive it without waiting."""

    def __init__(self, write: Write, interval_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.write, self.interval_s, self.clock = write, interval_s, clock
        self._lock = threading.Lock()
        self.phase: str | None = None
        self.done = self.total = self._first = 0
        self._started = self._last_line = 0.0

    def __call__(self, phase: str, done: int, total: int) -> None:
        with self._lock:
            now = self.clock()
            new_phase = phase != self.phase
            if new_phase:
                self.phase, self._started, self._first = phase, now, done
            self.done, self.total = done, total
            if new_phase or (done >= total > 0) or now - self._last_line >= self.interval_s:
                self._line(now)

    def tick(self) -> None:
        """A line if none was printed for an interval (called by the ticker thread)."""
        with self._lock:
            now = self.clock()
            if self.phase is not None and now - self._last_line >= self.interval_s:
                self._line(now)

    def due_in(self) -> float:
        if self.phase is None:  # nothing to repeat yet
            return self.interval_s
        return max(0.0, self._last_line + self.interval_s - self.clock())

    def eta_s(self, now: float) -> float | None:
        """Remaining seconds at this phase's rate so far (None until a step of it has been timed)."""
        steps, elapsed = self.done - self._first, now - self._started
        if self.total <= 0 or steps <= 0 or elapsed <= 0:
            return None
        return max(0.0, (self.total - self.done) * elapsed / steps)

    def _line(self, now: float) -> None:
        self._last_line = now
        eta = self.eta_s(now)
        percent = 100 * self.done / self.total if self.total else 0.0
        if self.total and self.done >= self.total:
            state = "done"
        else:
            state = "ETA ?" if eta is None else f"ETA {_duration(eta)}"
        elapsed = _duration(now - self._started)
        message = f"{self.phase}: {self.done}/{self.total} ({percent:.0f}%), elapsed {elapsed}, {state}"
        fields = {
            "phase": self.phase,
            "step": self.done,
            "total": self.total,
            "eta_s": None if eta is None else round(eta, 1),
        }
        self.write(message, fields)


def stream_writer(stream: TextIO, log_format: str) -> Write:
    """Lines on ``stream`` in the log format (auto resolves against that stream), flushed at once."""
    formatter = logs.formatter(log_format, stream)

    def write(message: str, fields: dict[str, Any]) -> None:
        record = log.makeRecord(log.name, logging.INFO, __file__, 0, message, (), None, extra=fields)
        logs.ContextFilter().filter(record)
        stream.write(formatter.format(record) + "\n")
        stream.flush()

    return write


def fan_out(*callbacks: Callable[[str, int, int], None]) -> Callable[[str, int, int], None]:
    """One (phase, done, total) callback calling each of ``callbacks``."""

    def update(phase: str, done: int, total: int) -> None:
        for callback in callbacks:
            callback(phase, done, total)

    return update


def within(progress: Callable[[str, int, int], None], phase: str) -> Callable[[int, int], None]:
    """A (done, total) callback for the pure libraries' loops, reporting as ``phase``."""
    return lambda done, total: progress(phase, done, total)


def log_writer(message: str, fields: dict[str, Any]) -> None:
    """Lines through the process's logging (a worker's log stream), with the run's ids from the log context."""
    log.info(message, extra=fields)


@contextmanager
def progress_lines(write: Write, interval_s: float) -> Iterator[ProgressLines]:
    """A ProgressLines with its ticker thread, stopped when the block ends."""
    lines = ProgressLines(write, interval_s)
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(max(0.05, lines.due_in())):
            lines.tick()

    # Run in a copy of this context, so the ticker's lines carry the same job or run ids as the caller's.
    thread = threading.Thread(target=contextvars.copy_context().run, args=(tick,), name="progress-ticker", daemon=True)
    thread.start()
    try:
        yield lines
    finally:
        stop.set()
        thread.join(5)


@contextmanager
def reporter(
    interval_s: float = 30.0, log_format: str = "auto", stream: TextIO | None = None
) -> Iterator[Callable[[str, int, int], None]]:
    """Rich bars when ``stream`` (stdout) is a terminal, else progress lines on it."""
    stream = stream or sys.stdout
    if getattr(stream, "isatty", lambda: False)():
        with _rich_bars() as update:
            yield update
        return
    with progress_lines(stream_writer(stream, log_format), interval_s) as lines:
        yield lines


@contextmanager
def _rich_bars() -> Iterator[Callable[[str, int, int], None]]:
    """One rich progress bar per phase."""
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    tasks: dict[str, int] = {}

    def update(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            for other in tasks.values():  # a new phase means the previous ones are done
                bar.update(other, completed=bar.tasks[other].total)
            tasks[phase] = bar.add_task(phase, total=total)
        bar.update(tasks[phase], completed=done, total=total)

    with bar:
        yield update


def settings_reporter(settings: Any) -> Any:
    """``reporter`` with the process's settings (interval, log format)."""
    return reporter(settings.progress_interval_s, settings.log_format)
