"""Live stream of one pipeline execution: its status, then every step's state as it changes."""

from __future__ import annotations

from studio.live.consumers import ObjectConsumer
from studio.pipelines import selectors
from studio.pipelines.engine import execution_event, step_event


class PipelineExecutionConsumer(ObjectConsumer):
    kind = "pipeline-execution"
    url_kwarg = "execution_id"

    def get_object(self, *, user, object_id):
        return selectors.execution_get_any_project(user=user, execution_id=object_id)

    def history(self, *, since: float | None) -> list[dict]:
        # Steps are few (at most 100) and change in place: the current state of each is the whole history.
        execution = self.object
        execution.refresh_from_db()
        return [execution_event(execution)] + [step_event(step) for step in selectors.step_list(execution=execution)]

    def dedupe_key(self, event: dict):
        return None  # every event carries a whole state; the latest one wins on the page
