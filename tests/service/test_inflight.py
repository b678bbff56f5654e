"""A burst of requests queues at the door instead of deadlocking the DB pool (service/inflight.py), both stacks."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.live import LiveAPI, wait_for
from tests.service.helpers import jsonl, upload


def test_a_burst_of_100_requests_all_succeed(api: LiveAPI) -> None:
    """Before the bound, 100 simultaneous GET /v1/models left 40 of them failing after the 30 s pool timeout."""
    headers = {"Authorization": f"Bearer {api.new_key()}"}
    start = threading.Barrier(100)

    def call(_: int) -> int:
        start.wait()
        return httpx.get(f"{api.v1}/models", headers=headers, timeout=60).status_code

    began = time.monotonic()
    with ThreadPoolExecutor(100) as pool:
        codes = list(pool.map(call, range(100)))
    assert codes == [200] * 100
    assert time.monotonic() - began < 20


def _slow_upload(v1: str, key: str, release: threading.Event) -> None:
    """A multipart upload whose body arrives slowly, so its request holds its slot until `release`."""
    boundary = "slowboundary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
    head += f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="t.jsonl"\r\n\r\n'

    def body() -> Iterator[bytes]:
        yield head.encode()
        release.wait(30)
        yield jsonl(12) + f"\r\n--{boundary}--\r\n".encode()

    headers = {"Authorization": f"Bearer {key}", "Content-Type": f"multipart/form-data; boundary={boundary}"}
    httpx.post(f"{v1}/files", content=body(), headers=headers, timeout=60)


def test_past_the_bound_requests_wait_then_get_503_with_retry_after(api: LiveAPI, server) -> None:
    v1 = server(api_max_inflight=1, api_queue_timeout_s=0.5)
    key = api.new_key()
    headers = {"Authorization": f"Bearer {key}"}
    release = threading.Event()
    uploader = threading.Thread(target=_slow_upload, args=(v1, key, release))
    uploader.start()
    try:
        # The slow upload holds the only slot (its response has not started), so the next request times out.
        busy = wait_for(
            lambda: (r := httpx.get(f"{v1}/models", headers=headers, timeout=10)).status_code == 503 and r,
            10,
            "a 503 while the upload holds the slot",
        )
        assert busy.headers["retry-after"] == "1"
        assert busy.json()["error"]["code"] == "server_busy"
    finally:
        release.set()
        uploader.join(30)
    assert httpx.get(f"{v1}/models", headers=headers, timeout=10).status_code == 200


def test_an_open_event_stream_does_not_keep_its_slot(api: LiveAPI, server, client) -> None:
    api.register_base("tiny-aligned")
    job = client.fine_tuning.jobs.create(model="tiny-aligned", training_file=upload(client).id)
    client.fine_tuning.jobs.pause(job.id)
    v1 = server(api_max_inflight=1, api_queue_timeout_s=2)
    headers = {"Authorization": f"Bearer {client.api_key}"}
    with httpx.stream("GET", f"{v1}/fine_tuning/jobs/{job.id}/events?stream=true", headers=headers) as stream:
        assert stream.status_code == 200
        next(stream.iter_lines())  # the stream is open and sending
        assert httpx.get(f"{v1}/models", headers=headers, timeout=10).status_code == 200
        client.fine_tuning.jobs.cancel(job.id)
