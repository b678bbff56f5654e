"""The worker process's object store: one store (and boto3 client) per process, not one per task.

A fine-tuning job's store calls ride out an object-store outage: a call that fails because the store is
unreachable is tried again with exponential backoff (1 s, doubling, at most 30 s apart) until ``store_retry_s`` have
passed since its first failure, then raises ``StoreUnavailable`` and the job fails with ``object_store_unavailable``
(worker/fine_tuning/failures.py). boto3's own retries (``s3_max_attempts``, sub-second jitter) cover blips inside
each try. Every ObjectStore call is idempotent (put, get, list, delete), so trying one again is safe.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

from service.config import Settings
from service.storage import ObjectStore, open_store

log = logging.getLogger(__name__)

MAX_DELAY_S = 30.0


class StoreUnavailable(Exception):
    """The object store stayed unreachable for the whole retry budget."""


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def unreachable(exc: BaseException) -> BaseException | None:
    """The error in ``exc``'s chain saying the store could not be reached (or answered 5xx), if any."""
    try:
        from botocore.exceptions import ClientError, ConnectionError, HTTPClientError
    except ImportError:  # boto3 is only needed with an s3:// store
        return None
    for e in exception_chain(exc):
        if isinstance(e, StoreUnavailable | ConnectionError | HTTPClientError):
            return e
        if isinstance(e, ClientError) and int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)) >= 500:
            return e
    return None


class RetryingStore:
    """``store`` with every method call retried while the store is unreachable, for at most ``budget_s``."""

    def __init__(self, store: ObjectStore, budget_s: float) -> None:
        self._store, self._budget_s = store, budget_s

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr) or name == "writer":  # a streaming writer can't be replayed from here
            return attr
        return functools.wraps(attr)(functools.partial(self._call, attr))

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        first_failure, delay, tries = 0.0, 1.0, 0
        while True:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                cause = unreachable(exc)
                if cause is None:
                    raise
                tries += 1
                at = time.monotonic()
                first_failure = first_failure or at
                if at + delay - first_failure > self._budget_s:
                    raise StoreUnavailable(
                        f"{fn.__name__} failed {tries} times over {at - first_failure:.0f} s "
                        f"({type(cause).__name__}: {cause})"
                    ) from exc
                log.warning("object store unreachable (%s); trying %s again in %.0f s", cause, fn.__name__, delay)
                time.sleep(delay)
                delay = min(delay * 2, MAX_DELAY_S)


@functools.lru_cache
def _store(url: str, endpoint_url: str | None, region: str, max_attempts: int, connect_timeout_s: float) -> ObjectStore:
    return open_store(
        url, endpoint_url=endpoint_url, region=region, max_attempts=max_attempts, connect_timeout_s=connect_timeout_s
    )


def store_for(settings: Settings) -> ObjectStore:
    return _store(
        settings.storage_url,
        settings.s3_endpoint_url,
        settings.s3_region,
        settings.s3_max_attempts,
        settings.s3_connect_timeout_s,
    )


def job_store_for(settings: Settings) -> ObjectStore:
    """The store for a fine-tuning job's run: outages up to ``store_retry_s`` are waited out (see above)."""
    return cast(ObjectStore, RetryingStore(store_for(settings), settings.store_retry_s))
