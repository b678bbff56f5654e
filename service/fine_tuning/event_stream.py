"""Server-sent events for `GET /v1/fine_tuning/jobs/{id}/events?stream=true`, without a thread per follower.

A sync generator that slept between polls held one of Starlette's 40 threadpool threads per open stream, so 40
followers of a paused job starved every other request (issue 14). Here each followed job has one `_JobFeed`: an
asyncio task that reads the job's new events and status every `stream_poll_s` in one short threadpool call and
appends them to a log that each follower reads with its own cursor. N followers of a job cost one query per interval
and no held thread; `StreamHub` also bounds open streams per org and per process (429 past them).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import AsyncGenerator

from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from service.config import Settings
from service.db import session_scope
from service.errors import TooManyRequests
from service.fine_tuning import repository
from service.fine_tuning.objects import event_object

log = logging.getLogger(__name__)

DONE = "data: [DONE]\n\n"
KEEPALIVE = ": keep-alive\n\n"
# Ends a stream that reached stream_max_s; no [DONE], so clients know to reconnect (EventSource does by itself).
CLOSING = ": stream reached its maximum duration; reconnect with Last-Event-ID to continue\n\n"
# At most this many feeds poll at once: each takes a thread and a DB connection (service.db.POOL_CAPACITY counts them).
CONCURRENT_POLLS = 4
RETRY_AFTER_S = 5  # slots free as followers leave; there is no exact time to promise


def _poll(database_url: str, job_id: str, after_seq: int) -> tuple[bool, list[tuple[int, str, str]]]:
    """(job ended or deleted, [(seq, event id, SSE line)]) for the events after `after_seq`."""
    with session_scope(database_url) as session:
        status, rows = repository.poll_events(session, job_id, after_seq)
        # `id:` lets a reconnecting EventSource resume after the last event it saw (the Last-Event-ID header).
        lines = [(r.seq, r.id, f"id: {r.id}\ndata: {json.dumps(event_object(r))}\n\n") for r in rows]
    return status is None or status in repository.TERMINAL, lines


class _JobFeed:
    """One job's events as SSE lines, polled once per interval for all of its followers."""

    def __init__(self, database_url: str, job_id: str, poll_s: float, polls: asyncio.Semaphore) -> None:
        self._polls = polls
        self.lines: list[str] = []  # every event since the job's first, oldest first
        self.index: dict[str, int] = {}  # event id -> its position in `lines`
        self.polled = False
        self.done = False
        self.followers = 0
        self._news = asyncio.Event()
        self._task = asyncio.create_task(self._run(database_url, job_id, poll_s))

    async def _run(self, database_url: str, job_id: str, poll_s: float) -> None:
        last_seq = 0
        while True:
            try:
                async with self._polls:
                    done, batch = await run_in_threadpool(_poll, database_url, job_id, last_seq)
            except Exception:
                # A database hiccup must not end the streams: followers get keep-alives until the next poll works.
                log.exception("event stream poll failed for %s", job_id)
                await asyncio.sleep(poll_s)
                continue
            for seq, event_id, line in batch:
                self.index[event_id] = len(self.lines)
                self.lines.append(line)
                last_seq = seq
            if batch or done or not self.polled:
                self.polled, self.done = True, done
                self._news.set()
                self._news = asyncio.Event()
            if done:
                return
            await asyncio.sleep(poll_s)

    async def news(self, timeout: float) -> bool:
        """Wait for a poll that brings something; False after `timeout` seconds without one."""
        try:
            async with asyncio.timeout(timeout):
                await self._news.wait()
        except TimeoutError:
            return False
        return True

    def stop(self) -> None:
        self._task.cancel()


class StreamHub:
    """Per API process: the open-stream bounds, and one feed per followed job."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # acquire() runs in the route's threadpool thread, release() on the event loop.
        self._lock = threading.Lock()
        self._per_org: Counter[str] = Counter()
        self._total = 0
        self._feeds: dict[str, _JobFeed] = {}  # used on the event loop only
        self._polls = asyncio.Semaphore(CONCURRENT_POLLS)  # binds to the app's event loop on first wait

    def acquire(self, org_id: str) -> None:
        with self._lock:
            if self._per_org[org_id] >= self.settings.max_streams_per_org:
                raise TooManyRequests(
                    f"Too many open event streams for this organization (limit {self.settings.max_streams_per_org}). "
                    "Close one, or retry later.",
                    retry_after=RETRY_AFTER_S,
                )
            if self._total >= self.settings.max_streams_total:
                raise TooManyRequests(
                    f"The server has too many open event streams (limit {self.settings.max_streams_total}). "
                    "Retry later.",
                    retry_after=RETRY_AFTER_S,
                )
            self._per_org[org_id] += 1
            self._total += 1

    def release(self, org_id: str) -> None:
        with self._lock:
            self._per_org[org_id] -= 1
            if self._per_org[org_id] <= 0:
                del self._per_org[org_id]
            self._total -= 1

    def _join(self, job_id: str) -> _JobFeed:
        feed = self._feeds.get(job_id)
        if feed is None:
            feed = _JobFeed(self.settings.database_url, job_id, self.settings.stream_poll_s, self._polls)
            self._feeds[job_id] = feed
        feed.followers += 1
        return feed

    def _leave(self, job_id: str, feed: _JobFeed) -> None:
        feed.followers -= 1
        if feed.followers == 0:
            feed.stop()
            if self._feeds.get(job_id) is feed:
                del self._feeds[job_id]

    async def follow(self, job_id: str, last_event_id: str | None) -> AsyncGenerator[str, None]:
        """One follower's SSE text: the job's events oldest first (after `last_event_id`), then [DONE]."""
        feed = self._join(job_id)
        keepalive = self.settings.stream_keepalive_s
        deadline = time.monotonic() + self.settings.stream_max_s
        cursor: int | None = None  # unknown until the feed's first poll can place last_event_id
        try:
            while True:
                if cursor is None and feed.polled:
                    # An id the log lacks (another job's, or made up) replays everything rather than nothing.
                    cursor = feed.index.get(last_event_id or "", -1) + 1
                if cursor is not None and cursor < len(feed.lines):
                    chunk, cursor = "".join(feed.lines[cursor:]), len(feed.lines)
                    yield chunk
                    continue
                if cursor is not None and feed.done:
                    yield DONE
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    yield CLOSING
                    return
                if not await feed.news(min(keepalive, left)) and left > keepalive:
                    yield KEEPALIVE
        finally:
            self._leave(job_id, feed)


class _EventStreamResponse(StreamingResponse):
    def __init__(self, hub: StreamHub, org_id: str, body: AsyncGenerator[str, None]) -> None:
        # no-cache and no proxy buffering: each event must reach the client when it happens.
        headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        super().__init__(body, media_type="text/event-stream", headers=headers)
        self._hub, self._org_id, self._body = hub, org_id, body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # On a disconnect Starlette cancels the body without closing it; closing it here leaves the job's feed
            # now rather than whenever the generator is garbage-collected. The slot is freed even if the body
            # never started (the client left before the headers went out).
            await self._body.aclose()
            self._hub.release(self._org_id)


def open_stream(hub: StreamHub, org_id: str, job_id: str, last_event_id: str | None) -> StreamingResponse:
    """Take one of the org's stream slots (429 past the bounds) and stream the job's events as SSE."""
    hub.acquire(org_id)
    return _EventStreamResponse(hub, org_id, hub.follow(job_id, last_event_id))
