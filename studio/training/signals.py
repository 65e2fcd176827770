"""Signals other apps listen to, so training never imports them (a tuning job follows its trials)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent after a job's new status is stored and published: sender=TrainingJob, job=<TrainingJob>.
training_job_status_changed = Signal()

# Sent by the worker after each epoch's metrics are stored: sender=TrainingJob, job, step, metrics.
# A receiver may answer with a message (str) to stop the job there, e.g. a tuning job's median rule;
# the message becomes the stopped job's status message.
training_job_epoch = Signal()
