"""Job outcome webhooks: signatures verified by the official SDK, real HTTP delivery, retries with backoff."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.webhooks import (
    FineTuningJobCancelledWebhookEvent,
    FineTuningJobFailedWebhookEvent,
    FineTuningJobSucceededWebhookEvent,
)

from service.config import Settings
from service.db import session_scope
from service.ids import new_id, now
from service.migrate import upgrade
from service.orm import JobRow, OrgRow, WebhookEndpointRow
from service.webhooks import delivery as webhooks
from service.webhooks.delivery import Delivery, deliver, job_event, notify_job_outcome
from service.webhooks.signing import new_secret, sign
from worker.webhooks import tasks as webhook_tasks

SDK = openai.OpenAI(api_key="x")
EVENTS = {
    "succeeded": FineTuningJobSucceededWebhookEvent,
    "failed": FineTuningJobFailedWebhookEvent,
    "cancelled": FineTuningJobCancelledWebhookEvent,
}


def signed_headers(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    signature = sign(secret, msg_id, ts, body)
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


class Receiver:
    """A real HTTP endpoint that verifies every POST with `client.webhooks.unwrap` and records it.

    It answers 500 to the first `fail_first` requests (after verifying them), then 200.
    """

    def __init__(self, secret: str, fail_first: int = 0) -> None:
        self.secret, self.fail_first = secret, fail_first
        self.calls: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["content-length"]))
                try:
                    event = SDK.webhooks.unwrap(body, dict(self.headers), secret=receiver.secret)
                except openai.InvalidWebhookSignatureError:
                    event = None
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.calls.append({"path": self.path, "headers": headers, "body": body, "event": event})
                ok = event is not None and len(receiver.calls) > receiver.fail_first
                self.send_response(200 if ok else (500 if event is not None else 400))
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def secret() -> str:
    return new_secret()


@pytest.fixture
def receiver(secret: str) -> Iterator[Receiver]:
    r = Receiver(secret)
    yield r
    r.close()


@pytest.mark.parametrize("status", list(EVENTS))
def test_sdk_unwraps_each_outcome(secret: str, status: str) -> None:
    body = job_event({"id": "ftjob-abc", "finished_at": 1_700_000_000}, status)
    event = SDK.webhooks.unwrap(body, signed_headers(secret, "msg_1", body), secret=secret)
    assert isinstance(event, EVENTS[status])
    assert (event.type, event.object, event.data.id) == (f"fine_tuning.job.{status}", "event", "ftjob-abc")
    assert event.created_at == 1_700_000_000 and event.id.startswith("evt_")
    assert set(json.loads(body)) == set(EVENTS[status].model_fields)  # nothing extra, nothing missing


def test_tampered_body_wrong_secret_or_old_timestamp_are_rejected(secret: str) -> None:
    body = job_event({"id": "ftjob-abc"}, "succeeded")
    headers = signed_headers(secret, "msg_1", body)
    for payload, key, hdrs in [
        (body.replace(b"ftjob-abc", b"ftjob-xyz"), secret, headers),
        (body, new_secret(), headers),
        (body, secret, {**headers, "webhook-id": "msg_2"}),
        (body, secret, signed_headers(secret, "msg_1", body, timestamp=int(time.time()) - 3600)),
    ]:
        with pytest.raises(openai.InvalidWebhookSignatureError):
            SDK.webhooks.unwrap(payload, hdrs, secret=key)


def test_secret_format_and_unknown_status(secret: str) -> None:
    import base64

    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    assert new_secret() != secret
    with pytest.raises(ValueError):
        job_event({"id": "ftjob-abc"}, "running")
    # The event id is derived from (job, outcome): a repeated notification is recognisably the same event.
    first, again = (json.loads(job_event({"id": "ftjob-abc"}, "failed")) for _ in range(2))
    assert first["id"] == again["id"] != json.loads(job_event({"id": "ftjob-abc"}, "cancelled"))["id"]


def test_deliver_over_http(receiver: Receiver, secret: str) -> None:
    body = job_event({"id": "ftjob-abc"}, "failed")
    assert deliver(receiver.url(), secret, body, "msg_1")
    call = receiver.calls[-1]
    assert isinstance(call["event"], FineTuningJobFailedWebhookEvent) and call["body"] == body
    assert call["headers"]["webhook-id"] == "msg_1" and call["headers"]["content-type"] == "application/json"
    assert not deliver(receiver.url(), new_secret(), body, "msg_2")  # receiver rejects the signature: 400
    receiver.fail_first = 10
    assert not deliver(receiver.url(), secret, body, "msg_3")  # 500
    closed = Receiver(secret)
    closed.close()
    assert not deliver(closed.url(), secret, body, "msg_4", timeout=2)  # connection refused


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    settings = Settings(home=tmp_path)
    upgrade(settings.database_url)
    monkeypatch.setattr(webhook_tasks, "get_settings", lambda: settings)
    return settings


@pytest.fixture
def scheduled(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Delivery, float]]:
    """Retries that would go to Celery's `webhooks` queue, recorded instead of sent."""
    sent: list[tuple[Delivery, float]] = []
    monkeypatch.setattr(webhooks, "celery_scheduler", lambda settings: lambda d, wait: sent.append((d, wait)))
    return sent


def _org_with_job(settings: Settings, status: str = "succeeded") -> tuple[str, str]:
    org_id, job_id = new_id("org-"), new_id("ftjob-")
    with session_scope(settings.database_url) as session:
        session.add(OrgRow(id=org_id, name=org_id, created_at=now()))
        session.flush()
        session.add(JobRow(id=job_id, org_id=org_id, model="tiny", training_file="file-x", status=status,
                           seed=1, created_at=now(), finished_at=now()))
    return org_id, job_id


def _endpoint(settings: Settings, url: str, secret: str, org_id: str | None, disabled: bool = False) -> str:
    endpoint_id = new_id("wh_")
    with session_scope(settings.database_url) as session:
        session.add(WebhookEndpointRow(id=endpoint_id, org_id=org_id, url=url, secret=secret,
                                       created_at=now(), disabled_at=now() if disabled else None))
    return endpoint_id


def test_notify_reaches_org_and_provider_endpoints_only(db: Settings, receiver: Receiver, secret: str,
                                                        scheduled: list) -> None:
    org_id, job_id = _org_with_job(db, "cancelled")
    other_org, _ = _org_with_job(db)
    _endpoint(db, receiver.url("/org"), secret, org_id)
    _endpoint(db, receiver.url("/provider"), secret, None)
    _endpoint(db, receiver.url("/other-org"), secret, other_org)
    _endpoint(db, receiver.url("/disabled"), secret, org_id, disabled=True)
    with session_scope(db.database_url) as session:
        assert notify_job_outcome(session, db, job_id, "cancelled") == 2
    assert sorted(c["path"] for c in receiver.calls) == ["/org", "/provider"]
    assert all(isinstance(c["event"], FineTuningJobCancelledWebhookEvent) for c in receiver.calls)
    assert {c["event"].data.id for c in receiver.calls} == {job_id} and scheduled == []


def _run_task(d: Delivery) -> bool:
    args = [d.endpoint_id, d.msg_id, d.body.decode(), d.attempt]
    return webhook_tasks.deliver_webhook.apply(args=args, kwargs={"base_delay": d.base_delay,
                                                                  "max_attempts": d.max_attempts}).get()


def test_failed_delivery_is_retried_with_backoff_and_the_same_id(db: Settings, secret: str,
                                                                 scheduled: list) -> None:
    receiver = Receiver(secret, fail_first=2)
    try:
        org_id, job_id = _org_with_job(db)
        endpoint_id = _endpoint(db, receiver.url(), secret, org_id)
        with session_scope(db.database_url) as session:
            assert notify_job_outcome(session, db, job_id, "succeeded", base_delay=0.5) == 0
        # Play Celery: run each scheduled attempt through the real task, synchronously, until none is left.
        outcomes = [_run_task(d) for d, _ in scheduled]
    finally:
        receiver.close()
    assert outcomes == [False, True]
    assert [(d.attempt, countdown) for d, countdown in scheduled] == [(2, 0.5), (3, 1.0)]
    assert {d.endpoint_id for d, _ in scheduled} == {endpoint_id}
    assert len(receiver.calls) == 3 and all(c["event"] is not None for c in receiver.calls)
    assert len({c["headers"]["webhook-id"] for c in receiver.calls}) == 1  # Standard Webhooks idempotency key
    assert len({c["body"] for c in receiver.calls}) == 1
    assert isinstance(receiver.calls[-1]["event"], FineTuningJobSucceededWebhookEvent)


def test_retries_stop_at_the_cap_and_for_disabled_endpoints(db: Settings, receiver: Receiver, secret: str,
                                                             scheduled: list) -> None:
    receiver.fail_first = 100
    org_id, job_id = _org_with_job(db, "failed")
    _endpoint(db, receiver.url(), secret, org_id)
    with session_scope(db.database_url) as session:
        notify_job_outcome(session, db, job_id, "failed", base_delay=0.01, max_attempts=4)
    outcomes = [_run_task(d) for d, _ in scheduled]
    assert outcomes == [False] * 3 and [round(c, 2) for _, c in scheduled] == [0.01, 0.02, 0.04]
    assert len(receiver.calls) == 4
    gone = _endpoint(db, receiver.url(), secret, org_id, disabled=True)
    assert not _run_task(Delivery(gone, "msg_x", b"{}", 2))
    assert len(receiver.calls) == 4 and len(scheduled) == 3


def test_celery_scheduler_sends_what_the_task_takes(db: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[dict[str, Any]] = []

    class FakeCelery:
        def send_task(self, name: str, **options: Any) -> None:
            sent.append({"name": name, **options})

    monkeypatch.setattr("service.webhooks.delivery.app_for", lambda settings: FakeCelery())
    body = job_event({"id": "ftjob-abc"}, "succeeded")
    webhooks.celery_scheduler(db)(Delivery("wh_1", "msg_1", body, 3, 2.0, 6), 8.0)
    assert sent == [{"name": "ftaas.deliver_webhook", "args": ["wh_1", "msg_1", body.decode(), 3],
                     "kwargs": {"base_delay": 2.0, "max_attempts": 6}, "countdown": 8.0, "queue": "webhooks"}]
    assert webhook_tasks.deliver_webhook.name == "ftaas.deliver_webhook"


def test_retries_run_on_a_real_celery_worker(db: Settings, secret: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The same path in production: filesystem broker, `webhooks` queue, countdowns honoured by the worker."""
    # kombu's filesystem transport keeps exchange tables in ./control unless told otherwise: not in the repo.
    monkeypatch.chdir(tmp_path)
    root = str(Path(__file__).resolve().parents[3])
    receiver = Receiver(secret, fail_first=2)
    org_id, job_id = _org_with_job(db)
    _endpoint(db, receiver.url(), secret, org_id)
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-I", "worker.webhooks.tasks",
         "-Q", webhooks.QUEUE, "--pool=solo", "--without-gossip", "--without-mingle", "--loglevel=INFO"],
        env={**os.environ, "FTAAS_HOME": str(db.home), "PYTHONPATH": root}, cwd=tmp_path, stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        with session_scope(db.database_url) as session:
            assert notify_job_outcome(session, db, job_id, "succeeded", base_delay=0.2) == 0
        deadline = time.monotonic() + 30
        while len(receiver.calls) < 3 and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.05)
    finally:
        worker.terminate()
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill()
        receiver.close()
        log.close()
    assert len(receiver.calls) == 3, (tmp_path / "worker.log").read_text()[-3000:]
    assert len({c["headers"]["webhook-id"] for c in receiver.calls}) == 1
    assert all(isinstance(c["event"], FineTuningJobSucceededWebhookEvent) for c in receiver.calls)
