"""The client's HTTP layer without a Studio server: error mapping, retries, pagination, streamed uploads."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from studio.client import Studio, StudioError
from studio.client.http import HttpClient, MultipartBody, error_from_response, normalize_url
from tests.processes import ROOT, free_port

pytestmark = pytest.mark.usefixtures("no_login")


def test_it_maps_a_400_to_the_message_and_the_field_errors():
    body = b'{"detail": "hyperparameters.epochs: must be between 1 and 1000", ' \
           b'"errors": {"hyperparameters.epochs": ["must be between 1 and 1000"]}}'
    error = error_from_response(400, body, {"Content-Type": "application/json"})
    assert error.status == 400
    assert error.message == "hyperparameters.epochs: must be between 1 and 1000"
    assert error.errors == {"hyperparameters.epochs": ["must be between 1 and 1000"]}
    assert str(error) == "hyperparameters.epochs: must be between 1 and 1000 (HTTP 400)"


def test_it_builds_a_message_from_field_errors_when_there_is_no_detail():
    error = error_from_response(400, b'{"errors": {"name": ["This field is required."]}}')
    assert error.message == "name: This field is required."


@pytest.mark.parametrize(("status", "body", "message"), [
    (401, b'{"detail": "Invalid token."}', "Invalid token."),
    (403, b'{"detail": "You need the member role."}', "You need the member role."),
    (404, b'{"detail": "No such endpoint in this project."}', "No such endpoint in this project."),
    (409, b'{"detail": "A training job named \'x\' already exists."}', "A training job named 'x' already exists."),
    (502, b"<html><h1>502 Bad Gateway</h1></html>", "Bad gateway (the server answered with an HTML page)"),
    (504, b"upstream timed out\n  (110: Connection timed out)", "upstream timed out (110: Connection timed out)"),
    (500, b"", "Server error"),
])
def test_it_keeps_the_servers_message_for_each_status(status, body, message):
    error = error_from_response(status, body)
    assert (error.status, error.message) == (status, message)


def test_it_reads_retry_after():
    assert error_from_response(429, b'{"detail": "busy"}', {"Retry-After": "2"}).retry_after == 2.0


def test_it_raises_studio_error_with_the_status_from_a_real_answer(stub):
    stub.on("GET", "/api/v1/me", {"detail": "Invalid token."}, status=401)
    with pytest.raises(StudioError) as caught:
        Studio(stub.url, "stu_wrong").me()
    assert caught.value.status == 401 and caught.value.message == "Invalid token."
    assert stub.requests[0].headers["Authorization"] == "Bearer stu_wrong"


def test_it_reports_a_server_that_does_not_answer():
    with pytest.raises(StudioError) as caught:
        HttpClient(f"http://127.0.0.1:{free_port()}", "t").get("me")
    assert caught.value.status is None
    assert "Cannot reach http://127.0.0.1:" in caught.value.message


def test_it_retries_reads_that_are_over_capacity(stub):
    stub.on("GET", "/api/v1/me", {"detail": "Busy"}, status=503, headers={"Retry-After": "0"}, times=2)
    stub.on("GET", "/api/v1/me", {"username": "ann"})
    assert HttpClient(stub.url, "t").get("me") == {"username": "ann"}
    assert len(stub.requests) == 3


def test_it_does_not_retry_writes(stub):
    stub.on("POST", "/api/v1/teams", {"detail": "Busy"}, status=503, headers={"Retry-After": "0"})
    with pytest.raises(StudioError) as caught:
        HttpClient(stub.url, "t").post("teams", {"name": "x"})
    assert caught.value.status == 503 and len(stub.requests) == 1


def test_it_sends_json_and_decodes_json_text_and_no_content(stub):
    stub.on("POST", "/api/v1/teams", {"slug": "acme"}, status=201)
    stub.on("GET", "/api/v1/log", raw=b"line 1\nline 2\n", headers={"Content-Type": "text/plain; charset=utf-8"})
    stub.on("DELETE", "/api/v1/thing", status=204)
    http = HttpClient(stub.url + "/api/v1/", "tok")
    assert http.post("teams", {"name": "Acme"}) == {"slug": "acme"}
    assert stub.requests[0].json() == {"name": "Acme"}
    assert stub.requests[0].headers["Content-Type"] == "application/json"
    assert http.get("log") == "line 1\nline 2\n"
    assert http.delete("thing") is None


def test_it_follows_next_links_through_every_page(stub):
    stub.on("GET", "/api/v1/projects", {"count": 3, "next": f"{stub.url}/api/v1/projects-page-2",
                                        "results": [{"id": 1}, {"id": 2}]})
    stub.on("GET", "/api/v1/projects-page-2", {"count": 3, "next": None, "results": [{"id": 3}]})
    stub.on("GET", "/api/v1/plain", [{"id": "a"}])
    http = HttpClient(stub.url, "t")
    assert [p["id"] for p in http.paginate("projects")] == [1, 2, 3]
    assert list(http.paginate("plain")) == [{"id": "a"}]


def test_it_streams_a_multipart_upload_with_a_known_length(stub, tmp_path):
    data = tmp_path / "churn.csv"
    data.write_bytes(b"f1,f2,churned\n" + b"0.1,0.2,yes\n" * 5000)
    stub.on("POST", "/api/v1/projects/p/datasets", {"id": "d"}, status=201)
    HttpClient(stub.url, "t").upload("projects/p/datasets", data, {"name": "churn", "target": "churned",
                                                                   "kind": None})
    seen = stub.requests[0]
    assert seen.headers["Content-Type"].startswith("multipart/form-data; boundary=studio-")
    assert int(seen.headers["Content-Length"]) == len(seen.body)
    assert data.read_bytes() in seen.body
    assert b'name="name"\r\n\r\nchurn\r\n' in seen.body and b'name="target"\r\n\r\nchurned\r\n' in seen.body
    assert b'name="kind"' not in seen.body  # left-out fields are not sent empty
    assert b'name="file"; filename="churn.csv"\r\nContent-Type: text/csv' in seen.body


def test_it_reads_a_multipart_body_the_same_in_any_piece_size(tmp_path):
    data = tmp_path / "blob.bin"
    data.write_bytes(bytes(range(256)) * 40)
    whole = MultipartBody({"name": "blob"}, "file", data)
    expected = whole.read()
    assert len(expected) == len(whole)
    for size in (1, 7, 100, 8192):
        body = MultipartBody({"name": "blob"}, "file", data)
        body.boundary = whole.boundary
        pieces = []
        while piece := body.read(size):
            assert len(piece) <= size
            pieces.append(piece)
        assert len(b"".join(pieces)) == len(expected)


@pytest.mark.parametrize(("given", "expected"), [
    ("http://localhost:8000/", "http://localhost:8000"),
    ("localhost:8000", "http://localhost:8000"),
    ("https://studio.example.com/api/v1", "https://studio.example.com"),
])
def test_it_normalizes_server_urls(given, expected):
    assert normalize_url(given) == expected


@pytest.mark.parametrize("bad", ["", "file:///etc/passwd", "ftp://host"])
def test_it_refuses_urls_that_are_not_http(bad):
    with pytest.raises(StudioError):
        normalize_url(bad)


def test_it_takes_url_and_token_from_the_environment(stub, monkeypatch):
    stub.on("GET", "/api/v1/me", {"username": "ann"})
    monkeypatch.setenv("STUDIO_URL", stub.url)
    monkeypatch.setenv("STUDIO_TOKEN", "stu_env")
    assert Studio().me() == {"username": "ann"}
    assert stub.requests[0].headers["Authorization"] == "Bearer stu_env"


def test_it_says_no_project_was_chosen_without_a_status(stub):
    with pytest.raises(StudioError) as caught:
        Studio(stub.url, "t").datasets.list()
    assert caught.value.status is None and "No project chosen" in caught.value.message


def test_it_imports_no_django_module():
    for path in (ROOT / "studio" / "client").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith(("django", "rest_framework", "channels", "celery")), (path, name)
                assert not name.startswith("studio.") or name.startswith("studio.client"), (path, name)
    # Importing it never loads settings, the ORM or an app (the parent package only names its Celery app).
    code = ("import sys, studio.client, studio.client.cli; "
            "bad = [m for m in sys.modules if m.startswith(('django.db', 'django.apps', 'rest_framework', "
            "'studio.settings', 'studio.accounts', 'numpy'))]; print(bad); assert not bad")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home())})
    assert result.returncode == 0, result.stdout + result.stderr
