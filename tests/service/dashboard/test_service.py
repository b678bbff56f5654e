"""Snapshot assembly without a server: queue files as kombu names them, and a broker that is down."""

from __future__ import annotations

from pathlib import Path

from service.config import Settings
from service.dashboard import queues, service
from service.db import session_scope
from service.migrate import upgrade
from tests import servers


def test_filesystem_messages_are_counted_per_queue(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, broker_url="filesystem://")
    settings.broker_dir.mkdir(parents=True)
    (settings.broker_dir / "control").mkdir()
    for name in (
        "1_a.gpu.default.msg",
        "2_b.gpu.default.msg",
        "3_c.gpu.default.big.msg",  # queue "gpu.default.big", not "gpu.default"
        "4_d.webhooks.msg",
        "5_e.gpu.default.tmp",
    ):
        (settings.broker_dir / name).write_text("{}")
    counts = queues.waiting(settings, ["gpu.default", "gpu.fast", "webhooks"])
    assert counts == {"gpu.default": 2, "gpu.fast": 0, "webhooks": 1}


def test_an_unreachable_broker_is_reported_not_raised(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, broker_url=f"redis://127.0.0.1:{servers.free_port()}/0")
    upgrade(settings.database_url)
    with session_scope(settings.database_url) as session:
        body = service.snapshot(session, settings)
    assert body.queues.broker == "redis" and body.queues.broker_error
    assert [(q.name, q.waiting) for q in body.queues.queues] == [("gpu.default", None), ("webhooks", None)]
    assert body.jobs == [] and body.workers == [] and body.queues.jobs_by_status == {}
