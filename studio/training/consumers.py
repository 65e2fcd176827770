"""Live stream of one training job: status, metric points and log lines.

On connect the job's stored history is replayed (since ``?since=<unix ts>`` when given), then live
events follow; an event that is in both is sent once (keys below).
"""

from __future__ import annotations

from studio.live.consumers import ObjectConsumer
from studio.training import selectors
from studio.training.services import log_event, metric_event, status_event


class TrainingJobConsumer(ObjectConsumer):
    kind = "training-job"
    url_kwarg = "job_id"

    def get_object(self, *, user, object_id):
        return selectors.training_job_get_any_project(user=user, job_id=object_id)

    def history(self, *, since: float | None) -> list[dict]:
        job = self.object
        job.refresh_from_db()
        events = [status_event(job)]
        events += [metric_event(point) for point in selectors.metric_points(job=job, since=since)]
        events += [log_event(line) for line in selectors.log_lines(job=job, since=since)]
        return events

    def dedupe_key(self, event: dict):
        kind = event.get("type")
        if kind == "metric":
            return ("metric", event.get("name"), event.get("step"))
        if kind == "log":
            return ("log", event.get("seq"))
        return None  # status events are always worth sending: the latest one wins on the page
