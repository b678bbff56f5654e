"""Celery task for webhook retries: ids and the exact payload in, one delivery attempt out."""

from __future__ import annotations

import logging

from celery import shared_task

from service.config import get_settings
from service.db import session_scope
from service.webhooks import delivery as webhooks
from service.webhooks import repository

log = logging.getLogger(__name__)


@shared_task(name=webhooks.TASK_NAME, ignore_result=True)
def deliver_webhook(
    endpoint_id: str,
    msg_id: str,
    body_text: str,
    attempt: int,
    base_delay: float = webhooks.BASE_DELAY_S,
    max_attempts: int = webhooks.MAX_ATTEMPTS,
) -> bool:
    """Re-deliver a message (same webhook-id, same bytes) unless its endpoint was disabled meanwhile."""
    settings = get_settings()
    with session_scope(settings.database_url) as session:
        endpoint = repository.get_active(session, endpoint_id)
        target = (endpoint.url, endpoint.secret) if endpoint else None
    if target is None:
        log.info("webhook %s not retried: endpoint %s is gone", msg_id, endpoint_id)
        return False
    delivery = webhooks.Delivery(endpoint_id, msg_id, body_text.encode(), attempt, base_delay, max_attempts)
    return webhooks.attempt(delivery, *target, schedule=webhooks.celery_scheduler(settings))
