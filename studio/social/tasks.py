"""Celery entry points of the social app: thin and idempotent; the work lives in services."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from studio.social import services


# The delivery row counts attempts and caps them (services.WEBHOOK_MAX_ATTEMPTS); max_retries is only a
# backstop. A redelivered message finds the delivery settled and does nothing.
@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=services.WEBHOOK_MAX_ATTEMPTS + 2,
             autoretry_for=(OperationalError, InterfaceError), retry_backoff=True, retry_backoff_max=60)
def webhook_deliver_task(self, delivery_id: str) -> str:
    outcome = services.webhook_deliver(delivery_id=delivery_id)
    if outcome == "retry":
        raise self.retry(countdown=services.webhook_retry_countdown(self.request.retries + 1))
    return outcome
