"""A bound on requests the API handles at once, so that a burst queues instead of deadlocking the DB pool.

Sync routes run in Starlette's threadpool (40 threads) and hold their DB connection across several thread hand-offs
(dependencies, endpoint, teardown). With more requests in flight than pooled connections, every thread could be
waiting for a connection that a request parked between hand-offs holds: 100 simultaneous `GET /v1/models` timed
out 40 of them after 30 s. Here at most `api_max_inflight` requests are past the door (fewer than both the threads
and `service.db.POOL_CAPACITY`); the rest wait on the event loop, holding nothing, and get a 503 with `retry-after`
after `api_queue_timeout_s`. A slot is given back when the response starts: by then the request's session is closed
(`SessionDep` tears down before the response is sent), so a long event stream or download does not keep one.
"""

from __future__ import annotations

import asyncio

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import error_body

RETRY_AFTER_S = 1


class InflightLimit:
    def __init__(self, app: ASGIApp, limit: int, queue_timeout_s: float) -> None:
        self.app, self.limit, self.queue_timeout_s = app, limit, queue_timeout_s
        self._slots: asyncio.Semaphore | None = None  # made on first use, on the server's event loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.limit)
        slots = self._slots
        try:
            async with asyncio.timeout(self.queue_timeout_s):
                await slots.acquire()
        except TimeoutError:
            busy = error_body("The server is busy; retry shortly.", "server_error", None, "server_busy")
            await JSONResponse(busy, 503, headers={"retry-after": str(RETRY_AFTER_S)})(scope, receive, send)
            return
        held = True

        async def release_on_start(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and held:
                held = False
                slots.release()
            await send(message)

        try:
            await self.app(scope, receive, release_on_start)
        finally:
            if held:
                slots.release()

