"""Signals other apps listen to, so datasets never import them (a pipeline trigger follows new datasets)."""

from __future__ import annotations

import contextvars

from django.db import transaction
from django.dispatch import Signal

# Sent once a new dataset is stored, ready and committed: sender=Dataset, dataset=<Dataset>.
dataset_ready = Signal()


def dataset_ready_on_commit(dataset) -> None:
    """Send ``dataset_ready`` when the current transaction commits (at once outside one).

    Receivers run in the context the dataset was made in, even when the commit comes later, so they can
    tell who made it (a pipeline step, for one); robust: a failing receiver never undoes or fails the upload.
    """
    context = contextvars.copy_context()
    transaction.on_commit(lambda: context.run(dataset_ready.send, sender=type(dataset), dataset=dataset),
                          robust=True)
