"""How many task messages wait in each broker queue, read the way kombu's transports store them.

* Redis: a list per queue (``LLEN``), plus one list per non-zero priority step (``<queue>\\x06\\x16<step>``).
* Filesystem (embedded): one file per message, named ``<ms>_<uuid>.<queue>.msg``.
Messages a worker has already taken (Redis's unacked set, a moved file) are not counted: those are running.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from service.config import Settings

# kombu.transport.redis: Channel.sep and the default priority_steps (0 is the bare queue name).
REDIS_PRIORITY_SEP = "\x06\x16"
REDIS_PRIORITY_STEPS = (3, 6, 9)


def broker_kind(broker_url: str) -> str:
    scheme = broker_url.split("://", 1)[0]
    return "redis" if scheme in ("redis", "rediss") else scheme


def waiting(settings: Settings, queues: Iterable[str]) -> dict[str, int]:
    """Waiting messages per queue; raises if the broker can't be read (the caller reports it)."""
    names = list(queues)
    kind = broker_kind(settings.broker_url)
    if kind == "filesystem":
        return _filesystem(settings.broker_dir, names)
    if kind == "redis":
        return _redis(settings.broker_url, names)
    raise ValueError(f"queue depth is not supported for the {kind!r} broker")


def _filesystem(folder: Path, names: list[str]) -> dict[str, int]:
    counts = dict.fromkeys(names, 0)
    if not folder.is_dir():
        return counts
    for filename in os.listdir(folder):
        queue = filename.partition(".")[2].removesuffix(".msg")  # what kombu's filesystem _size() compares
        if filename.endswith(".msg") and queue in counts:
            counts[queue] += 1
    return counts


def _redis(url: str, names: list[str]) -> dict[str, int]:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.llen(name)
                for step in REDIS_PRIORITY_STEPS:
                    pipe.llen(f"{name}{REDIS_PRIORITY_SEP}{step}")
            lengths = pipe.execute()
    finally:
        client.close()
    per_queue = 1 + len(REDIS_PRIORITY_STEPS)
    return {name: sum(lengths[i * per_queue : (i + 1) * per_queue]) for i, name in enumerate(names)}
