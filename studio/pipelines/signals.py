"""Signals other apps listen to, so pipelines never import them (studio.social notifies whoever started a run)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent (robustly) once an execution's final status (completed, failed, stopped) is committed and published:
# sender=PipelineExecution, execution=<PipelineExecution>.
pipeline_execution_finished = Signal()
