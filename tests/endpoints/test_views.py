"""Endpoint pages (list, new, detail with test box, snippets, keys, edit, delete) and batch transform pages."""

from __future__ import annotations

import html
import json
import re
import time

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client

from studio.datasets.preprocessing import TabularPreprocessor
from studio.endpoints import services
from studio.endpoints.models import Endpoint, EndpointMetric, InvokeKey, ScalingEvent, TransformJob
from studio.registry.models import Model
from tests.conftest import PASSWORD
from tests.endpoints.conftest import mixed_table
from tests.training.factories import classification_dataset

pytestmark = pytest.mark.django_db


def signed_in(user, **kwargs) -> Client:
    client = Client(**kwargs)
    assert client.login(username=user.username, password=PASSWORD)
    return client


def page(world, suffix: str = "") -> str:
    return f"/projects/{world.project.id}/endpoints/{suffix}"


def transform_page(world, suffix: str = "") -> str:
    return f"/projects/{world.project.id}/transform-jobs/{suffix}"


def make_model(project, name: str = "churn-model", features: list[str] | None = None) -> Model:
    return Model.objects.create(project=project, name=name, algorithm="linear-learner",
                                feature_names=features if features is not None else ["f1", "f2"],
                                artifact_prefix=f"projects/{project.id}/models/{name}/")


def create(world, *, type: str = "realtime", name: str = "churn", model: Model | None = None, **kwargs) -> Endpoint:
    model = model or Model.objects.filter(project=world.project).first() or make_model(world.project)
    low = 1 if type == "realtime" else 0
    variants = kwargs.pop("variants", None) or [{"name": "main", "model": str(model.id), "min_instances": low,
                                                  "max_instances": 2}]
    return services.endpoint_create(user=world.member, project=world.project, name=name, type=type,
                                    variants=variants, **kwargs)


def new_form(model, **overrides) -> dict:
    """What the new-endpoint form posts: one real-time variant, autoscaling off."""
    data = {"name": "churn-live", "type": "realtime",
            "variants-0-name": "main", "variants-0-model": str(model.id), "variants-0-weight": "1",
            "variants-0-min_instances": "1", "variants-0-max_instances": "2",
            "serverless_max_concurrency": "", "serverless_idle_timeout_seconds": "", "autoscaling_target": "",
            "autoscaling_scale_in": "", "autoscaling_scale_out": "", "async_max_payload_mb": "",
            "async_notification_url": ""}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def snippet(body: str, name: str) -> str:
    return html.unescape(re.search(rf'data-testid="snippet-{name}">(.*?)</pre>', body, re.S).group(1))


def field_block(body: str, input_name: str) -> str:
    """The table cell or field div that holds an input, with the error list right after it."""
    match = re.search(rf'<(td|div) class="field[^"]*">(?:(?!</td>|<div class="field).)*name="{re.escape(input_name)}"'
                      r'.*?(?=</td>|<div class="field|</section>)', body, re.S)
    assert match, f"no input {input_name}"
    return match.group(0)


# --- list ---------------------------------------------------------------------------------------


def test_it_shows_an_empty_state_with_a_next_step_and_the_nav(world):
    body = signed_in(world.member).get(page(world)).content.decode()
    assert "No endpoints yet" in body and f'href="{page(world, "new/")}"' in body
    assert f'href="{page(world)}" class="active">Endpoints</a>' in body
    assert f'href="{transform_page(world)}" class="">Batch transform</a>' in body
    viewer = signed_in(world.viewer).get(page(world)).content.decode()
    assert "No endpoints yet" in viewer and page(world, "new/") not in viewer
    assert "Members of this team can deploy endpoints." in viewer


def test_it_lists_endpoints_with_instances_requests_per_second_and_p99(world):
    endpoint = create(world, name="churn-live")
    create(world, name="quiet", type="serverless")
    variant = endpoint.variants.get()
    now = time.time()
    EndpointMetric.objects.create(endpoint=endpoint, variant=variant, ts=now - 10, seconds=5, invocations=50,
                                  p50_ms=2.0, p99_ms=9.2, instances=1)
    EndpointMetric.objects.create(endpoint=endpoint, variant=variant, ts=now - 5, seconds=5, invocations=30,
                                  p50_ms=2.0, p99_ms=4.0, instances=1)
    # Older than a minute: not in the requests per second.
    EndpointMetric.objects.create(endpoint=endpoint, variant=variant, ts=now - 200, seconds=5, invocations=500,
                                  p50_ms=2.0, p99_ms=3.0, instances=1)
    response = signed_in(world.viewer).get(page(world))
    body = response.content.decode()
    assert response.status_code == 200
    row = re.search(rf'<tr data-endpoint="{endpoint.id}">.*?</tr>', body, re.S).group(0)
    assert "churn-live" in row and "Real-time" in row and '<span class="badge creating"' in row
    assert '<td class="num" data-testid="endpoint-instances">0/1</td>' in row
    assert ">8.00</td>" in row  # (50 + 30) invocations over 10 s of intervals
    assert ">9.2 ms</td>" in row  # the worst p99 of the last five minutes
    quiet = re.search(r'<tr data-endpoint="[^"]+">(?:(?!</tr>).)*quiet.*?</tr>', body, re.S).group(0)
    assert "Serverless" in quiet and '<span class="badge in_service"' in quiet and ">0/0</td>" in quiet
    assert quiet.count(">—</td>") == 2  # no traffic: no rate, no latency
    assert f'data-project-ws="/ws/projects/{world.project.id}/?since=' in body and "studio/endpoints.js" in body
    only_creating = signed_in(world.viewer).get(page(world) + "?status=creating").content.decode()
    assert "churn-live" in only_creating and "quiet" not in only_creating


# --- new ----------------------------------------------------------------------------------------


def test_it_prefills_the_form_from_a_model_so_deploy_is_one_click(world):
    model = make_model(world.project, name="churn model v2")
    other = make_model(world.project, name="other")
    response = signed_in(world.member).get(page(world, f"new/?model={model.id}"))
    body = response.content.decode()
    assert response.status_code == 200
    assert 'name="name" value="churn-model-v2-endpoint"' in body
    assert 'name="type" value="realtime" data-endpoint-type checked>' in body
    cell = field_block(body, "variants-0-model")
    assert f'<option value="{model.id}" selected>churn model v2 (linear-learner)</option>' in cell
    assert f'<option value="{other.id}">other' in cell
    assert 'name="variants-0-min_instances" value="1"' in body and 'name="variants-0-max_instances" value="1"' in body
    assert 'data-testid="create-endpoint">Deploy</button>' in body
    # Pressing Deploy as it is creates the endpoint.
    form = {"name": "churn-model-v2-endpoint", "type": "realtime", "variants-0-name": "variant-1",
            "variants-0-model": str(model.id), "variants-0-weight": "1", "variants-0-min_instances": "1",
            "variants-0-max_instances": "1"}
    created = signed_in(world.member).post(page(world, "new/"), form)
    endpoint = Endpoint.objects.get(name="churn-model-v2-endpoint")
    assert created.status_code == 302 and created["Location"] == page(world, f"{endpoint.id}/")
    # The suggested name moves on once taken; a stale ?model opens an empty form.
    again = signed_in(world.owner).get(page(world, f"new/?model={model.id}")).content.decode()
    assert 'name="name" value="churn-model-v2-endpoint-2"' in again
    stale = signed_in(world.member).get(page(world, "new/?model=00000000-0000-0000-0000-000000000000"))
    assert stale.status_code == 200 and 'name="name" value=""' in stale.content.decode()


def test_it_creates_an_endpoint_with_two_variants_and_autoscaling_from_the_form(world):
    blue, green = make_model(world.project, "blue"), make_model(world.project, "green")
    form = new_form(blue, **{
        "variants-3-name": "canary", "variants-3-model": str(green.id), "variants-3-weight": "0.25",
        "variants-3-min_instances": "1", "variants-3-max_instances": "3",
        "autoscaling_enabled": "on", "autoscaling_target": "20", "autoscaling_scale_out": "5",
    })
    response = signed_in(world.member).post(page(world, "new/"), form, follow=True)
    endpoint = Endpoint.objects.get(name="churn-live")
    assert response.redirect_chain == [(page(world, f"{endpoint.id}/"), 302)]
    assert "Endpoint &#x27;churn-live&#x27; created" in response.content.decode()
    variants = list(endpoint.variants.order_by("position").values_list("name", "model_id", "weight",
                                                                       "max_instances"))
    # A row removed by the page's script leaves a gap in the indices; the order stays.
    assert variants == [("main", blue.id, 1.0, 2), ("canary", green.id, 0.25, 3)]
    assert endpoint.autoscaling == {"target_invocations_per_instance": 20.0, "scale_in_cooldown_seconds": 60,
                                    "scale_out_cooldown_seconds": 5}
    assert endpoint.created_by == world.member and endpoint.serverless == {}


def test_it_creates_serverless_and_async_endpoints_with_their_settings(world):
    model = make_model(world.project)
    client = signed_in(world.member)
    client.post(page(world, "new/"), new_form(model, name="sls", type="serverless", **{
        "variants-0-min_instances": "0", "serverless_max_concurrency": "5", "serverless_idle_timeout_seconds": "30",
        "async_max_payload_mb": "7"}))
    client.post(page(world, "new/"), new_form(model, name="batchy", type="async", **{
        "variants-0-min_instances": "0", "async_max_payload_mb": "50", "serverless_max_concurrency": "9"}))
    sls, batchy = Endpoint.objects.get(name="sls"), Endpoint.objects.get(name="batchy")
    # Settings of another type are posted by the form but not applied.
    assert sls.serverless == {"max_concurrency": 5, "idle_timeout_seconds": 30} and sls.async_config == {}
    assert batchy.async_config == {"max_payload_mb": 50} and batchy.serverless == {}


def test_it_shows_each_error_next_to_its_field_and_creates_nothing(world):
    model = make_model(world.project)
    create(world, name="taken", model=model)
    form = new_form(model, name="taken", type="serverless", **{
        "variants-0-min_instances": "2", "variants-0-max_instances": "1",
        "variants-1-name": "b", "variants-1-model": "00000000-0000-0000-0000-000000000000", "variants-1-weight": "-1",
        "variants-1-min_instances": "0", "variants-1-max_instances": "1",
        "serverless_max_concurrency": "0", "autoscaling_enabled": "on", "autoscaling_scale_in": "30",
    })
    response = signed_in(world.member).post(page(world, "new/"), form)
    body = response.content.decode()
    assert response.status_code == 400
    assert 'data-testid="form-errors"' in body
    assert "already exists" in field_block(body, "name")
    assert "scales to zero" in field_block(body, "variants-0-min_instances")
    assert "No model &#x27;00000000-0000-0000-0000-000000000000&#x27;" in field_block(body, "variants-1-model")
    assert "between 0 and" in field_block(body, "variants-1-weight")
    assert "between 1 and 200" in field_block(body, "serverless_max_concurrency")
    assert "is required" in field_block(body, "autoscaling_target")
    # What the user typed stays, with the chosen type's sections shown.
    assert 'name="variants-1-name" value="b"' in body and 'name="autoscaling_scale_in" value="30"' in body
    assert 'name="type" value="serverless" data-endpoint-type checked>' in body
    assert re.search(r'<section data-for-type="serverless">', body)
    assert re.search(r'<section data-for-type="async" hidden>', body)
    assert Endpoint.objects.count() == 1


def test_it_points_to_training_when_the_project_has_no_model(world):
    body = signed_in(world.member).get(page(world, "new/")).content.decode()
    assert "No model to deploy" in body and "endpoint-form" not in body


# --- detail -------------------------------------------------------------------------------------


def test_it_shows_the_detail_with_variants_traffic_instances_and_live_hooks(world):
    blue, green = make_model(world.project, "blue"), make_model(world.project, "green")
    endpoint = create(world, variants=[
        {"name": "blue", "model": str(blue.id), "weight": 3, "min_instances": 1, "max_instances": 2},
        {"name": "green", "model": str(green.id), "weight": 1, "min_instances": 1, "max_instances": 2}],
        autoscaling={"target_invocations_per_instance": 10})
    variant = endpoint.variants.get(name="green")
    ScalingEvent.objects.create(endpoint=endpoint, variant=variant, from_instances=1, to_instances=2,
                                reason="load 25.0/s over 1 instance, target 10/s")
    response = signed_in(world.viewer).get(page(world, f"{endpoint.id}/"))
    body = response.content.decode()
    assert response.status_code == 200
    assert '<span id="endpoint-status" class="badge creating" data-testid="endpoint-status"' in body
    blue_row = re.search(r'<tr data-variant="blue">.*?</tr>', body, re.S).group(0)
    assert f'href="/projects/{world.project.id}/models/{blue.id}/"' in blue_row
    assert 'data-testid="variant-traffic">75%</td>' in blue_row
    assert 'data-testid="variant-traffic">25%</td>' in body
    assert body.count('<span class="badge pending">pending</span>') == 2  # one instance row per variant
    assert "load 25.0/s over 1 instance" in body and "1 → 2" in body
    assert "10 invocations/s per instance" in body
    assert f'data-ws="/ws/endpoints/{endpoint.id}/"' in body and "plotly/plotly.min.js" in body
    for chart in ("invocations", "latency", "errors", "instances", "cold-starts"):
        assert f'id="chart-{chart}"' in body
    data = json.loads(re.search(r'<script id="endpoint-data" type="application/json">(.*?)</script>', body,
                                re.S).group(1))
    assert data["variants"] == ["blue", "green"] and data["status"]["status"] == "creating"
    assert data["test_url"] == f"/api/v1/projects/{world.project.id}/endpoints/{endpoint.id}/test-invocations"
    panel = signed_in(world.viewer).get(page(world, f"{endpoint.id}/panel/"))
    assert panel.status_code == 200 and panel.content.decode().startswith('\n<div id="endpoint-panel"')


def test_it_shows_snippets_with_the_invocation_urls_and_an_example_from_the_features(world):
    endpoint = create(world, model=make_model(world.project, features=["age", "income", "tenure"]))
    body = signed_in(world.member).get(page(world, f"{endpoint.id}/")).content.decode()
    url = f"http://testserver/api/v1/endpoints/{endpoint.id}/invocations"
    curl = snippet(body, "curl")
    assert f'curl -X POST "{url}"' in curl and "Authorization: Bearer $STUDIO_TOKEN" in curl
    assert """-d '{"instances":[[0,0,0]]}'""" in curl
    assert "X-Api-Key: $STUDIO_ENDPOINT_KEY" in snippet(body, "curl-key")
    python = snippet(body, "python")
    assert f'requests.post("{url}", headers=headers, json={{"instances":[[0,0,0]]}}, timeout=60)' in python
    assert "os.environ['STUDIO_TOKEN']" in python and 'os.environ["STUDIO_ENDPOINT_KEY"]' in python
    # The test box holds the same one-record example, in the model's column order.
    textarea = re.search(r'<textarea id="id_test_body"[^>]*>(.*?)</textarea>', body, re.S).group(1)
    assert json.loads(textarea.replace("&quot;", '"')) == {"instances": [[0, 0, 0]]}
    assert "Columns in order: age, income, tenure." in body
    assert '<option value="main">main</option>' in body and 'data-testid="send-test"' in body


def test_it_builds_the_example_from_the_saved_preprocessing(world):
    data, _ = mixed_table()
    preprocessor = TabularPreprocessor()
    preprocessor.fit(data)
    model = make_model(world.project, name="mixed", features=["x1", "x2", "city"])
    name = default_storage.save(f"{model.artifact_prefix}preprocessing.json",
                                ContentFile(json.dumps(preprocessor.to_json()).encode()))
    model.artifact_files = [name]
    model.save()
    endpoint = create(world, model=model)
    body = signed_in(world.member).get(page(world, f"{endpoint.id}/")).content.decode()
    data_json = json.loads(re.search(r'<script id="endpoint-data" type="application/json">(.*?)</script>', body,
                                     re.S).group(1))
    city = preprocessor.columns[2].categories[0]
    assert json.loads(data_json["examples"]["json"]) == {"instances": [[0, 0, city]]}
    assert data_json["examples"]["csv"] == f"x1,x2,city\n0,0,{city}\n"


def test_it_shows_the_async_invocation_url_for_async_endpoints_and_no_test_box(world):
    endpoint = create(world, type="async")
    body = signed_in(world.member).get(page(world, f"{endpoint.id}/")).content.decode()
    async_url = f"http://testserver/api/v1/endpoints/{endpoint.id}/async-invocations"
    assert f'curl -X POST "{async_url}"' in snippet(body, "curl") and 'job["status_url"]' in snippet(body, "python")
    assert 'id="test-invoke-form"' not in body and "Asynchronous endpoints answer with a stored output" in body


def test_it_hides_every_action_from_viewers_and_refuses_their_posts(world):
    endpoint = create(world)
    key, _ = services.invoke_key_create(user=world.member, endpoint=endpoint)
    client = signed_in(world.viewer)
    body = client.get(page(world, f"{endpoint.id}/")).content.decode()
    for action in ('data-testid="delete-endpoint"', 'id="test-invoke-form"', 'data-testid="invoke-keys"',
                   'data-testid="edit-endpoint"', 'data-testid="create-key"', key.prefix):
        assert action not in body, action
    assert "Members of this team can send test invocations" in body
    assert 'data-testid="snippet-curl"' in body  # reading how to call it is fine
    model = Model.objects.get()
    assert client.get(page(world, "new/")).status_code == 403
    assert client.post(page(world, "new/"), new_form(model, name="by-viewer")).status_code == 403
    for suffix in ("edit/", "delete/", "keys/", f"keys/{key.id}/revoke/"):
        assert client.post(page(world, f"{endpoint.id}/{suffix}"), new_form(model)).status_code == 403, suffix
    transform = transform_page(world)
    assert "Members of this team can start transform jobs." in client.get(transform).content.decode()
    assert client.get(transform + "new/").status_code == 403
    assert client.post(transform + "new/", {"model": str(model.id)}).status_code == 403
    endpoint.refresh_from_db()
    key.refresh_from_db()
    assert endpoint.status == "creating" and key.revoked_at is None
    assert list(Endpoint.objects.values_list("name", flat=True)) == ["churn"]
    assert InvokeKey.objects.count() == 1 and not TransformJob.objects.exists()


def test_it_is_a_404_for_outsiders_everywhere(world):
    endpoint = create(world)
    key, _ = services.invoke_key_create(user=world.member, endpoint=endpoint)
    job = TransformJob.objects.create(project=world.project, name="t", model=Model.objects.get(),
                                      created_by=world.member)
    client = signed_in(world.outsider)
    for url in (page(world), page(world, "new/"), page(world, f"{endpoint.id}/"), page(world, f"{endpoint.id}/panel/"),
                transform_page(world), transform_page(world, "new/"), transform_page(world, f"{job.id}/"),
                transform_page(world, f"{job.id}/panel/")):
        assert client.get(url).status_code == 404, url
    for url in (page(world, "new/"), page(world, f"{endpoint.id}/edit/"), page(world, f"{endpoint.id}/delete/"),
                page(world, f"{endpoint.id}/keys/"), page(world, f"{endpoint.id}/keys/{key.id}/revoke/"),
                transform_page(world, "new/"), transform_page(world, f"{job.id}/stop/")):
        assert client.post(url, {}).status_code == 404, url
    # The outsider's own project does not reach into this one either.
    theirs = f"/projects/{world.other_project.id}/endpoints/{endpoint.id}/"
    assert client.get(theirs).status_code == 404
    endpoint.refresh_from_db()
    assert endpoint.status == "creating"


def test_it_shows_a_new_invoke_key_secret_once_and_revokes_keys(world):
    endpoint = create(world)
    client = signed_in(world.member)
    response = client.post(page(world, f"{endpoint.id}/keys/"), {"name": "mobile app"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    key = InvokeKey.objects.get()
    secret = re.search(r'data-testid="new-key-secret">(sk-ep-[^<]+)</pre>', body).group(1)
    assert response.status_code == 200 and body.startswith('<section class="card" id="invoke-keys"')
    assert services.invoke_key_hash(secret) == key.key_hash and secret.startswith(key.prefix)
    assert "shown only once" in body and "mobile app" in body
    # The page never shows it again; the list shows the prefix only.
    later = client.get(page(world, f"{endpoint.id}/")).content.decode()
    assert secret not in later and f"{key.prefix}…" in later and 'data-testid="new-key-secret"' not in later
    # Without htmx the whole page comes back, with the secret of the second key only.
    second = client.post(page(world, f"{endpoint.id}/keys/"), {"name": ""}).content.decode()
    new_secret = re.search(r'data-testid="new-key-secret">(sk-ep-[^<]+)</pre>', second).group(1)
    assert new_secret != secret and secret not in second and 'id="endpoint"' in second
    revoked = client.post(page(world, f"{endpoint.id}/keys/{key.id}/revoke/"), HTTP_HX_REQUEST="true")
    key.refresh_from_db()
    assert revoked.status_code == 200 and key.revoked_at is not None
    row = re.search(rf'<tr data-key="{key.id}">.*?</tr>', revoked.content.decode(), re.S).group(0)
    assert ">revoked</span>" in row and "revoke-key" not in row


def test_it_sends_a_test_invocation_with_the_session_and_csrf_token(world, monkeypatch):
    endpoint = create(world)
    calls = []

    def fake_invoke(*, user, endpoint, body, content_type, target_variant=""):
        calls.append((user, endpoint.id, body, content_type, target_variant))
        return 200, b'{"predictions": [{"label": "yes", "probabilities": {"yes": 0.9, "no": 0.1}}], "variant": "main"}'

    monkeypatch.setattr(services, "endpoint_test_invoke", fake_invoke)
    client = signed_in(world.member, enforce_csrf_checks=True)
    body = client.get(page(world, f"{endpoint.id}/")).content.decode()
    form = re.search(r'<form id="test-invoke-form" data-test-url="([^"]+)">(.*?)</form>', body, re.S)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.group(2)).group(1)
    payload = {"body": '{"instances": [[0, 0]]}', "content_type": "application/json", "target_variant": "main"}
    response = client.post(form.group(1), json.dumps(payload), content_type="application/json",
                           HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == 200 and answer["response"]["predictions"][0]["label"] == "yes"
    assert isinstance(answer["elapsed_ms"], float)
    assert calls == [(world.member, endpoint.id, b'{"instances": [[0, 0]]}', "application/json", "main")]
    # The session alone is not enough: the page's CSRF token must come with it.
    refused = client.post(form.group(1), json.dumps(payload), content_type="application/json")
    assert refused.status_code == 403 and len(calls) == 1


def test_it_refuses_a_viewers_test_invocation(world):
    endpoint = create(world)
    url = f"/api/v1/projects/{world.project.id}/endpoints/{endpoint.id}/test-invocations"
    response = signed_in(world.viewer).post(url, json.dumps({"body": "{}"}), content_type="application/json")
    assert response.status_code == 403


def test_it_edits_weights_limits_and_autoscaling(world):
    endpoint = create(world, autoscaling={"target_invocations_per_instance": 10})
    model = Model.objects.get()
    client = signed_in(world.member)
    edit = {"variants-0-name": "main", "variants-0-model": str(model.id), "variants-0-weight": "2",
            "variants-0-min_instances": "2", "variants-0-max_instances": "4"}
    response = client.post(page(world, f"{endpoint.id}/edit/"), edit)
    assert response.status_code == 302 and response["Location"] == page(world, f"{endpoint.id}/")
    variant = endpoint.variants.get()
    endpoint.refresh_from_db()
    assert (variant.weight, variant.min_instances, variant.max_instances, variant.desired_instances) == (2, 2, 4, 2)
    assert endpoint.autoscaling == {}  # unticked: autoscaling is switched off
    # The edit form shows the current values.
    body = client.get(page(world, f"{endpoint.id}/")).content.decode()
    assert 'name="variants-0-weight" value="2"' in body and 'name="variants-0-max_instances" value="4"' in body
    bad = client.post(page(world, f"{endpoint.id}/edit/"), {**edit, "variants-0-max_instances": "1"})
    text = bad.content.decode()
    assert bad.status_code == 400 and 'data-testid="edit-errors"' in text and "<details open>" in text
    assert "below min_instances" in field_block(text, "variants-0-max_instances")
    variant.refresh_from_db()
    assert variant.max_instances == 4


def test_it_deletes_an_endpoint_after_confirmation(world):
    endpoint = create(world)
    body = signed_in(world.member).get(page(world, f"{endpoint.id}/")).content.decode()
    assert "return confirm(&#x27;Delete endpoint" in body or "return confirm('Delete endpoint" in body
    response = signed_in(world.member).post(page(world, f"{endpoint.id}/delete/"), follow=True)
    assert response.redirect_chain == [(page(world), 302)]
    assert "is being deleted" in response.content.decode()
    endpoint.refresh_from_db()
    assert endpoint.status == "deleting"
    after = signed_in(world.member).get(page(world, f"{endpoint.id}/")).content.decode()
    assert 'data-testid="delete-endpoint"' not in after and 'id="test-invoke-form"' not in after


def test_it_renders_every_page_for_owner_member_and_viewer(world):
    endpoint = create(world)
    job = TransformJob.objects.create(project=world.project, name="t", model=Model.objects.get(),
                                      created_by=world.member)
    for user, can_edit in ((world.owner, True), (world.member, True), (world.viewer, False)):
        client = signed_in(user)
        for url in (page(world), page(world, f"{endpoint.id}/"), page(world, f"{endpoint.id}/panel/"),
                    transform_page(world), transform_page(world, f"{job.id}/"),
                    transform_page(world, f"{job.id}/panel/")):
            assert client.get(url).status_code == 200, (user.username, url)
        for url in (page(world, "new/"), transform_page(world, "new/")):
            assert client.get(url).status_code == (200 if can_edit else 403), (user.username, url)


# --- batch transform ------------------------------------------------------------------------------


def test_it_creates_a_transform_job_from_the_form_and_shows_its_progress(world):
    dataset = classification_dataset(world.project)
    model = make_model(world.project, features=["f1", "f2"])
    client = signed_in(world.member)
    empty = client.get(transform_page(world)).content.decode()
    assert "No batch transform jobs yet" in empty and f'href="{transform_page(world, "new/")}"' in empty
    form_page = client.get(transform_page(world, f"new/?model={model.id}&dataset={dataset.id}")).content.decode()
    assert f'<option value="{model.id}" selected>' in form_page
    assert f'<option value="{dataset.id}" selected>' in form_page
    form = {"name": "score-all", "model": str(model.id), "input_dataset": str(dataset.id), "split_type": "line",
            "batch_strategy": "multi_record", "max_payload_mb": "6", "max_concurrent": "2", "input_filter": "",
            "join_source": "input", "output_filter": ""}
    response = client.post(transform_page(world, "new/"), form)
    job = TransformJob.objects.get()
    assert response.status_code == 302 and response["Location"] == transform_page(world, f"{job.id}/")
    assert (job.name, job.join_source, job.max_concurrent, job.created_by) == ("score-all", "input", 2, world.member)
    TransformJob.objects.filter(id=job.id).update(status="running", records_total=300, records_done=75,
                                                  parts_total=4, parts_done=1)
    body = client.get(transform_page(world, f"{job.id}/")).content.decode()
    assert '<span id="transform-status" class="badge running"' in body
    assert 'value="25.0" data-testid="transform-progress"' in body and ">75/300</b>" in body
    assert "1/4 parts" in body and 'data-testid="stop-transform"' in body
    assert f'hx-get="{transform_page(world, f"{job.id}/panel/")}" hx-trigger="every 2s, studio-refresh"' in body
    assert f'data-project-ws="/ws/projects/{world.project.id}/?since=' in body
    row = re.search(rf'<tr data-transform-job="{job.id}">.*?</tr>', client.get(transform_page(world)).content.decode(),
                    re.S).group(0)
    assert "score-all" in row and "75/300" in row and 'value="25"' in row
    # A taken name is a conflict shown at the name.
    again = client.post(transform_page(world, "new/"), form)
    assert again.status_code == 409 and "already exists" in field_block(again.content.decode(), "name")


def test_it_links_the_output_dataset_of_a_completed_job_and_stops_polling(world):
    dataset = classification_dataset(world.project)
    model = make_model(world.project)
    job = TransformJob.objects.create(project=world.project, name="done", model=model, input_dataset=dataset,
                                      output_dataset=dataset, status="completed", records_total=300,
                                      records_done=300, status_message="Wrote 300 rows")
    body = signed_in(world.viewer).get(transform_page(world, f"{job.id}/")).content.decode()
    assert f'href="/projects/{world.project.id}/data/{dataset.id}/">churn</a>' in body
    assert 'value="100.0"' in body and "every 2s" not in body and "stop-transform" not in body


def test_it_shows_transform_errors_next_to_their_fields(world):
    dataset = classification_dataset(world.project)
    model = make_model(world.project)
    form = {"name": "bad name!", "model": str(model.id), "input_dataset": str(dataset.id), "split_type": "line",
            "batch_strategy": "every_record", "max_payload_mb": "500", "max_concurrent": "2",
            "input_filter": "$[x", "join_source": "none", "output_filter": ""}
    response = signed_in(world.member).post(transform_page(world, "new/"), form)
    body = response.content.decode()
    assert response.status_code == 400
    assert "letters, digits" in field_block(body, "name")
    assert "batch_strategy must be one of" in field_block(body, "batch_strategy")
    assert "from 1 to 100" in field_block(body, "max_payload_mb")
    assert field_block(body, "input_filter").count('<ul class="errorlist">') == 1
    assert not TransformJob.objects.exists()


def test_it_stops_a_running_transform_job_for_members(world):
    model = make_model(world.project)
    job = TransformJob.objects.create(project=world.project, name="long", model=model, status="running")
    assert signed_in(world.viewer).post(transform_page(world, f"{job.id}/stop/")).status_code == 403
    response = signed_in(world.member).post(transform_page(world, f"{job.id}/stop/"), HTTP_HX_REQUEST="true")
    job.refresh_from_db()
    assert response.status_code == 200 and job.status == "stopped"
    assert response.content.decode().startswith('<div id="transform-panel" data-status="stopped">')
    again = signed_in(world.member).post(transform_page(world, f"{job.id}/stop/"), HTTP_HX_REQUEST="true")
    assert again.status_code == 409 and "already finished" in again.content.decode()
