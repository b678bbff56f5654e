"""Event streams (`GET /v1/fine_tuning/jobs/{id}/events?stream=true`) under load, at their bounds and over time."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai
import pytest

from tests.live import wait_for
from tests.service.helpers import upload

BASE = "tiny-aligned"
FIRST_EVENTS = 3  # created, validating the training file, paused


@pytest.fixture(autouse=True)
def _bases(api) -> None:
    api.register_base(BASE)


@pytest.fixture
def paused_job(client: openai.OpenAI) -> str:
    """A job that stays non-terminal (no worker runs in these tests) until the test cancels it."""
    job = client.fine_tuning.jobs.create(model=BASE, training_file=upload(client, 40).id)
    assert client.fine_tuning.jobs.pause(job.id).status == "paused"
    return job.id


def _auth(client: openai.OpenAI) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.api_key}"}


def _events_url(v1: str, job_id: str) -> str:
    return f"{v1}/fine_tuning/jobs/{job_id}/events"


async def _follow(http: httpx.AsyncClient, url: str, headers: dict[str, str], attached: asyncio.Queue) -> list[str]:
    """Read one stream to its end; reports on `attached` once the job's first events have arrived."""
    data: list[str] = []
    async with http.stream("GET", url, params={"stream": "true"}, headers=headers) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                data.append(line.removeprefix("data: "))
                if len(data) == FIRST_EVENTS:
                    attached.put_nowait(None)
    return data


async def _hundred_followers(api, client: openai.OpenAI, job_id: str) -> None:
    url, headers = _events_url(api.v1, job_id), _auth(client)
    attached: asyncio.Queue = asyncio.Queue()
    followers_http = httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=None))
    async with followers_http, httpx.AsyncClient(base_url=api.v1, headers=headers, timeout=5) as probe:
        followers: list[asyncio.Task] = []
        try:
            # Ten at a time: a burst of more simultaneous requests than the DB pool has connections stalls any
            # route (the pool is not this test's subject). With a thread held per stream, batch 5 never attaches.
            async with asyncio.timeout(30):
                for _ in range(10):
                    batch = [asyncio.create_task(_follow(followers_http, url, headers, attached)) for _ in range(10)]
                    followers += batch
                    for _ in batch:
                        await attached.get()
            for _ in range(5):  # all streams open and idle between polls: other requests must not queue behind them
                started = time.monotonic()
                r = await probe.get("/models")
                assert r.status_code == 200 and time.monotonic() - started < 1.0
                await asyncio.sleep(0.2)
            cancelled = await asyncio.to_thread(client.fine_tuning.jobs.cancel, job_id)
            assert cancelled.status == "cancelled"
            async with asyncio.timeout(30):
                streams = await asyncio.gather(*followers)
        finally:
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
    for data in streams:
        assert data[-1] == "[DONE]"
        messages = [json.loads(d)["message"] for d in data[:-1]]
        assert messages[0].startswith("Created fine-tuning job") and messages[-1] == "Fine-tuning job cancelled"
        assert len(messages) == FIRST_EVENTS + 1


def test_hundred_followers_leave_the_api_responsive_and_all_get_done(api, client, paused_job: str) -> None:
    asyncio.run(_hundred_followers(api, client, paused_job))


def test_stream_of_another_orgs_job_is_404_before_streaming(api, paused_job: str) -> None:
    other = api.client()
    for job_id in (paused_job, "ftjob-nope"):
        r = httpx.get(_events_url(api.v1, job_id), params={"stream": "true"}, headers=_auth(other), timeout=5)
        assert r.status_code == 404 and r.headers["content-type"].startswith("application/json")
        assert r.json()["error"]["param"] == "fine_tuning_job_id"


class _Stream:
    """A stream the test holds open (dropping httpx's line iterator would close the connection)."""

    def __init__(self, http: httpx.Client, url: str, headers: dict[str, str]) -> None:
        request = http.build_request("GET", url, params={"stream": "true"}, headers=headers)
        self.response = http.send(request, stream=True)
        self.status = self.response.status_code
        self.lines = self.response.iter_lines()
        if self.status == 200:  # once an event has arrived the server has surely counted the stream
            while not next(self.lines).startswith("data: "):
                pass

    def error(self) -> dict:
        body = json.loads(self.response.read())
        assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
        return body["error"]

    def close(self) -> None:
        self.response.close()


def test_bounds_answer_429_and_disconnects_free_slots(api, client, paused_job: str, server) -> None:
    v1 = server(max_streams_per_org=2, max_streams_total=3)
    url, headers = _events_url(v1, paused_job), _auth(client)
    other = api.client()
    other_url = _events_url(v1, other.fine_tuning.jobs.create(model=BASE, training_file=upload(other, 40).id).id)
    with httpx.Client(timeout=10) as http:
        mine = [_Stream(http, url, headers) for _ in range(2)]
        assert [s.status for s in mine] == [200, 200]
        refused = _Stream(http, url, headers)
        assert refused.status == 429 and int(refused.response.headers["retry-after"]) > 0
        err = refused.error()
        assert (err["type"], err["code"]) == ("requests", "rate_limit_exceeded") and "organization" in err["message"]
        theirs = _Stream(http, other_url, _auth(other))
        assert theirs.status == 200  # the per-org bound is per org...
        over_total = _Stream(http, other_url, _auth(other))
        assert over_total.status == 429 and "server" in over_total.error()["message"]  # ...within a total one
        for stream in mine:
            stream.close()

        def reopened() -> list[_Stream] | None:
            attempt = [_Stream(http, url, headers) for _ in range(2)]
            if all(s.status == 200 for s in attempt):
                return attempt
            for stream in attempt:
                stream.close()
            return None

        again = wait_for(reopened, 10, "the closed streams' slots to be freed")
        assert isinstance(again, list)
        for stream in [*again, theirs]:
            stream.close()


def _read_all(http: httpx.Client, url: str, headers: dict[str, str]) -> tuple[list[str], float]:
    """Every line of a stream up to the server's end of it, and how long that took."""
    started = time.monotonic()
    with http.stream("GET", url, params={"stream": "true"}, headers=headers) as r:
        assert r.status_code == 200
        lines = list(r.iter_lines())
    return lines, time.monotonic() - started


def test_keepalive_max_duration_and_resume_after_last_event_id(client, paused_job: str, server) -> None:
    v1 = server(stream_keepalive_s=0.2, stream_max_s=1.5, stream_poll_s=0.1)
    url, headers = _events_url(v1, paused_job), _auth(client)
    with httpx.Client(timeout=10) as http:
        lines, took = _read_all(http, url, headers)
        assert 1.4 < took < 5
        data = [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]
        assert [json.loads(d)["message"] for d in data][-1] == "Fine-tuning job paused before it started"
        assert "[DONE]" not in data  # the job has not ended: the client should reconnect
        comments = [line for line in lines if line.startswith(":")]
        assert comments.count(": keep-alive") >= 3 and "reconnect" in comments[-1]
        ids = [line.removeprefix("id: ") for line in lines if line.startswith("id: ")]
        assert ids == [json.loads(d)["id"] for d in data]

        client.fine_tuning.jobs.cancel(paused_job)
        lines, _ = _read_all(http, url, {**headers, "Last-Event-ID": ids[-1]})
        data = [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]
        assert data[-1] == "[DONE]" and [json.loads(d)["message"] for d in data[:-1]] == ["Fine-tuning job cancelled"]
