"""50 uploads and 50 training-job creations at once in one project, through two web processes sharing PostgreSQL.

Nothing is lost or overwritten: every 201 has its row holding exactly what that request sent (file bytes, hash,
hyperparameters), clashing explicit names give one 201 and 409s for the rest, and jobs left unnamed (named by the
server from the time, so they clash within a second) all get distinct names instead of a 409.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import regression_csv
from tests.faults.conftest import Api, Reply, count, ok, sql

pytestmark = pytest.mark.faults

UPLOADS = 50
JOBS = 50
SHARED_UPLOADS = 10  # uploads all named "shared": one wins
SHARED_JOBS = 10  # jobs all named "dup": one wins
UNNAMED_JOBS = 20


def test_it_loses_nothing_under_50_concurrent_uploads_and_50_concurrent_job_creations(stack):
    web_a = stack.web("web-a")
    web_b = stack.web("web-b")
    me = stack.account()
    api, pid, db = stack.api(me.token), me.project, stack.database
    base = ok(api.upload(pid, "base", regression_csv(n=100), target="price"), 201)["id"]

    contents = {i: regression_csv(n=50, seed=i) for i in range(UPLOADS)}
    upload_names = {i: "shared" if i < SHARED_UPLOADS else f"data-{i}" for i in range(UPLOADS)}

    def job_body(i: int) -> dict:
        body = {"algorithm": "linear-learner", "dataset": base, "target": "price",
                "hyperparameters": {"epochs": i + 1, "learning_rate": round(0.001 * (i + 1), 4)}}
        if i < SHARED_JOBS:
            body["name"] = "dup"
        elif i < JOBS - UNNAMED_JOBS:
            body["name"] = f"job-{i}"
        return body

    start = threading.Barrier(UPLOADS + JOBS)
    client = Api(web_a, me.token)

    def send(task: tuple[str, int]) -> tuple[str, int, Reply]:
        kind, i = task
        server = (web_a, web_b)[i % 2]  # round robin over the two web processes
        start.wait(timeout=60)
        if kind == "upload":
            return kind, i, client.upload(pid, upload_names[i], contents[i], target="price", base=server)
        return kind, i, client.request("POST", f"/api/v1/projects/{pid}/training-jobs", job_body(i), base=server)

    tasks = [("upload", i) for i in range(UPLOADS)] + [("job", i) for i in range(JOBS)]
    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        replies = list(pool.map(send, tasks))
    uploads = {i: reply for kind, i, reply in replies if kind == "upload"}
    jobs = {i: reply for kind, i, reply in replies if kind == "job"}
    unexpected = {(kind, i): (r.status, r.body[:300]) for kind, i, r in replies if r.status not in (201, 409)}
    assert not unexpected, (unexpected, stack.log("web-a").read_text()[-3000:])

    # Uploads: one "shared" wins, the other names all succeed; each row and file hold what its request sent.
    assert sorted(i for i, r in uploads.items() if r.status == 409 and i < SHARED_UPLOADS) == sorted(
        i for i in range(SHARED_UPLOADS) if uploads[i].status != 201)
    assert sum(uploads[i].status == 201 for i in range(SHARED_UPLOADS)) == 1
    assert all(uploads[i].status == 201 for i in range(SHARED_UPLOADS, UPLOADS))
    media = Path(stack.env["STUDIO_DATA_DIR"]) / "media"
    for i, reply in uploads.items():
        if reply.status != 201:
            continue
        row = sql(db, "SELECT name, sha256, size_bytes, file FROM datasets_dataset WHERE id = %s", reply.json()["id"])
        assert row, f"upload {i} answered 201 but has no row"
        name, sha256, size, file = row[0]
        assert (name, sha256, size) == (upload_names[i], hashlib.sha256(contents[i]).hexdigest(), len(contents[i]))
        assert (media / file).read_bytes() == contents[i]
    assert count(db, "SELECT count(*) FROM datasets_dataset") == 1 + UPLOADS - SHARED_UPLOADS + 1
    # No file without a row: one folder per dataset.
    folders = {p.name for p in (media / "projects" / pid / "datasets").iterdir()}
    assert folders == {str(i) for (i,) in sql(db, "SELECT id FROM datasets_dataset")}

    # Jobs: one "dup" wins, every other request (named or not) gets its own row with its own hyperparameters.
    assert sum(jobs[i].status == 201 for i in range(SHARED_JOBS)) == 1
    refused = {i: jobs[i].body[:300] for i in range(SHARED_JOBS, JOBS) if jobs[i].status != 201}
    assert not refused, refused
    for i, reply in jobs.items():
        if reply.status != 201:
            continue
        row = sql(db, "SELECT name, hyperparameters FROM training_trainingjob WHERE id = %s", reply.json()["id"])
        assert row, f"job {i} answered 201 but has no row"
        name, hyperparameters = row[0]
        assert hyperparameters["epochs"] == i + 1 and hyperparameters["learning_rate"] == round(0.001 * (i + 1), 4)
        assert name == job_body(i).get("name", name)
    names = [name for (name,) in sql(db, "SELECT name FROM training_trainingjob")]
    assert len(names) == len(set(names)) == 1 + JOBS - SHARED_JOBS
