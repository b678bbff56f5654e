"""The consumer side of Celery: ``service.broker``'s app plus the task modules a worker runs.

``celery -A worker.celery_app worker`` looks up ``app``; it is built lazily so importing this module has no effects.
"""

from __future__ import annotations

from celery import Celery

from service import broker
from service.config import Settings, get_settings

TASK_MODULES = (
    "worker.fine_tuning.tasks",
    "worker.alignment.tasks",
    "worker.screening.tasks",
    "worker.job_evaluations.tasks",
    "worker.webhooks.tasks",
)


def app_for(settings: Settings) -> Celery:
    """The process's Celery app (the one the producer side sends with) with the worker's tasks included."""
    app = broker.app_for(settings)
    app.conf.include = list(TASK_MODULES)
    return app


def __getattr__(name: str) -> Celery:
    if name == "app":
        return app_for(get_settings())
    raise AttributeError(name)
