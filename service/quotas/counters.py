"""Fixed-window counters: Redis in distributed mode, the database when embedded (same interface).

A fixed window (not a sliding one) costs one atomic increment per request and gives the client an exact
`retry-after` (the window's end); its known weakness, up to twice the limit across a window boundary, is acceptable
for quotas that protect capacity rather than bill. Each API process counts into the shared store, so a limit holds
across processes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import redis

from service.config import Settings
from service.db import session_scope
from service.quotas import repository


@dataclass(frozen=True)
class Window:
    start: int
    seconds: int

    @classmethod
    def now(cls, seconds: int, at: float | None = None) -> Window:
        at, seconds = time.time() if at is None else at, max(1, seconds)
        return cls(int(at // seconds) * seconds, seconds)

    def retry_after(self, at: float | None = None) -> int:
        at = time.time() if at is None else at
        return max(1, math.ceil(self.start + self.seconds - at))


class Counters(Protocol):
    def add(self, org_id: str, counter: str, window: Window, amount: int) -> int: ...

    def get(self, org_id: str, counter: str, window: Window) -> int: ...


class DbCounters:
    """Each add commits in its own short transaction: inside the request's, SQLite's write lock would be held for
    the whole request and serialize every API call."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url

    def add(self, org_id: str, counter: str, window: Window, amount: int) -> int:
        with session_scope(self.url) as session:
            return repository.add_usage(session, org_id, counter, window.start, amount)

    def get(self, org_id: str, counter: str, window: Window) -> int:
        with session_scope(self.url) as session:
            return repository.usage(session, org_id, counter, window.start)


class RedisCounters:
    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    @staticmethod
    def _key(org_id: str, counter: str, window: Window) -> str:
        return f"ftaas:quota:{org_id}:{counter}:{window.start}"

    def add(self, org_id: str, counter: str, window: Window, amount: int) -> int:
        key = self._key(org_id, counter, window)
        pipe = self.client.pipeline()
        pipe.incrby(key, amount)
        pipe.expire(key, window.seconds * 2)  # past its window a key is never read again
        value, _ = pipe.execute()
        return int(value)

    def get(self, org_id: str, counter: str, window: Window) -> int:
        return int(self.client.get(self._key(org_id, counter, window)) or 0)


@lru_cache
def _open(redis_url: str | None, database_url: str) -> Counters:
    return RedisCounters(redis_url) if redis_url else DbCounters(database_url)


def counters_for(settings: Settings) -> Counters:
    url = settings.quota_redis_url
    if url is None and settings.broker_url.startswith(("redis://", "rediss://")):
        url = settings.broker_url
    return _open(url, settings.database_url)
