"""A background thread that proves a worker is alive while a long block of work runs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Heartbeat:
    """Calls ``beat()`` every ``interval`` seconds while the ``with`` block runs. ``beat`` returns False to stop
    (the work is no longer ours); an exception (a DB blip) is logged and the next beat tries again."""

    def __init__(self, interval: float, beat: Callable[[], bool], name: str) -> None:
        self.interval, self.beat, self.name = interval, beat, name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.beat():
                    return
            except Exception:
                log.exception("%s: beat failed", self.name)
