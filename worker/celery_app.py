"""The Celery application, shared by the API (to send) and workers (to run).

Embedded mode uses kombu's filesystem transport: no server, and the DB (not the broker) owns job state, so the
transport's weak delivery guarantees are covered by the lease sweeper.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from celery import Celery

from service.config import Settings, get_settings


@lru_cache
def _make_app(broker_url: str, broker_dir: str, time_limit_s: int) -> Celery:
    app = Celery("ftaas", broker=broker_url, include=["worker.tasks", "worker.webhook_tasks", "worker.screen_tasks"])
    options: dict[str, Any] = {}
    if broker_url.startswith("filesystem"):
        Path(broker_dir).mkdir(parents=True, exist_ok=True)
        options = {
            "data_folder_in": broker_dir,
            "data_folder_out": broker_dir,
            "control_folder": str(Path(broker_dir) / "control"),  # kombu's default is ./control in the cwd
            "polling_interval": 0.1,
        }
    elif broker_url.startswith(("redis", "rediss")):
        # An unacked task is redelivered after visibility_timeout. Keep it above the hard time limit so a live
        # task is never handed to a second worker; a dead worker is noticed much sooner by its expired lease.
        options = {"visibility_timeout": time_limit_s + 3600}
    app.conf.update(
        broker_transport_options=options,
        task_time_limit=time_limit_s,
        task_default_queue="gpu.default",
        worker_concurrency=1,  # one task per GPU process
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=3,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
    )
    return app


def app_for(settings: Settings) -> Celery:
    return _make_app(settings.broker_url, str(settings.broker_dir.resolve()), settings.task_time_limit_s)


def __getattr__(name: str) -> Celery:
    # `celery -A worker.celery_app worker` looks up `app`; build it lazily so importing this module has no effects.
    if name == "app":
        return app_for(get_settings())
    raise AttributeError(name)
