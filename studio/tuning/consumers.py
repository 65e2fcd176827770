"""Live stream of one tuning job: its status (with counts and the best trial) and every trial change."""

from __future__ import annotations

from studio.live.consumers import ObjectConsumer
from studio.tuning import selectors
from studio.tuning.services import trial_event, tuning_status_event


class TuningJobConsumer(ObjectConsumer):
    kind = "tuning-job"
    url_kwarg = "tuning_job_id"

    def get_object(self, *, user, object_id):
        return selectors.tuning_job_get_any_project(user=user, tuning_job_id=object_id)

    def history(self, *, since: float | None) -> list[dict]:
        # Trials are few (max_jobs <= 500) and change in place: the current state of each is the history.
        job = self.object
        job.refresh_from_db()
        return [tuning_status_event(job)] + [trial_event(trial) for trial in selectors.trial_list(tuning_job=job)]

    def dedupe_key(self, event: dict):
        return None  # every event carries a whole state; the latest one wins on the page
