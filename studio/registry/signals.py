"""Signals other apps listen to, so the registry never imports them (a pipeline trigger follows approvals)."""

from __future__ import annotations

import contextvars

from django.db import transaction
from django.dispatch import Signal

# Sent once a version's change to "approved" is committed: sender=ModelVersion, version=<ModelVersion>,
# user=<who approved it>.
model_version_approved = Signal()


def model_version_approved_on_commit(version, *, user) -> None:
    """Send ``model_version_approved`` when the current transaction commits, in the context it was approved in
    (see studio.datasets.signals.dataset_ready_on_commit); a failing receiver never fails the approval."""
    context = contextvars.copy_context()
    transaction.on_commit(
        lambda: context.run(model_version_approved.send, sender=type(version), version=version, user=user),
        robust=True)
