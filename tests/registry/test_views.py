from __future__ import annotations

import json

import pytest
from django.test import Client

from studio.endpoints.models import Endpoint
from studio.registry import services
from studio.registry.models import Model, ModelGroup, ModelVersion
from tests.conftest import PASSWORD
from tests.registry.conftest import bare_model, deploy
from tests.training.factories import new_job, run_job

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def page(world, suffix: str = "") -> str:
    return f"/projects/{world.project.id}/models/{suffix}"


def test_it_shows_an_empty_state_that_points_to_training(world):
    member = signed_in(world.member).get(page(world)).content.decode()
    assert "No models yet" in member and f"/projects/{world.project.id}/training/new/" in member
    viewer = signed_in(world.viewer).get(page(world)).content.decode()
    assert "No models yet" in viewer and "Train a model" not in viewer


def test_it_lists_models_and_shows_one(world, enqueued):
    job = run_job(new_job(world, name="houses-v1"))
    model = job.model
    listing = signed_in(world.viewer).get(page(world)).content.decode()
    assert "houses-v1" in listing and f"{model.metrics['validation:loss']:.4g}" in listing
    detail = signed_in(world.viewer).get(page(world, f"{model.id}/"))
    body = detail.content.decode()
    assert detail.status_code == 200
    assert "manifest.json" in body and "arrays.npz" in body and "x1, x2, x3" in body
    assert "preprocessing.json" in body and 'data-testid="model-preprocessing"' in body
    assert "missing → training mean" in body and "3 columns → 3 features, missing values: mean" in body
    assert f"/projects/{world.project.id}/training/{job.id}/" in body
    assert f"/projects/{world.project.id}/models/{model.id}/download/" in body
    download = signed_in(world.viewer).get(page(world, f"{model.id}/download/"))
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"


def test_it_hides_model_pages_from_outsiders(world, enqueued):
    model = run_job(new_job(world)).model
    client = signed_in(world.outsider)
    for suffix in ("", f"{model.id}/", f"{model.id}/download/"):
        assert client.get(page(world, suffix)).status_code == 404, suffix


def group_page(world, group) -> str:
    return page(world, f"groups/{group.id}/")


def test_it_lists_groups_with_a_create_form_for_members_only(world):
    services.model_group_create(user=world.member, project=world.project, name="pricing", description="House prices")
    member = signed_in(world.member).get(page(world)).content.decode()
    assert 'data-testid="model-groups"' in member and "pricing" in member and "House prices" in member
    assert 'data-testid="group-create"' in member
    viewer = signed_in(world.viewer).get(page(world)).content.decode()
    assert "pricing" in viewer and 'data-testid="group-create"' not in viewer


def test_it_creates_a_group_from_the_list_page(world):
    client = signed_in(world.member)
    response = client.post(page(world, "groups/new/"), {"name": "pricing", "description": "v1 of prices"})
    group = ModelGroup.objects.get(name="pricing")
    assert response.status_code == 302 and response["Location"] == group_page(world, group)
    again = client.post(page(world, "groups/new/"), {"name": "PRICING"}, follow=True).content.decode()
    assert "already exists" in again and ModelGroup.objects.count() == 1
    assert signed_in(world.viewer).post(page(world, "groups/new/"), {"name": "mine"}).status_code == 403


def test_a_member_registers_a_model_in_a_new_or_existing_group(world):
    model, other = bare_model(world.project, "houses-v1"), bare_model(world.project, "houses-v2")
    client = signed_in(world.member)
    detail = client.get(page(world, f"{model.id}/")).content.decode()
    assert 'data-testid="register-form"' in detail and "Not registered in any model group." in detail
    body = client.post(page(world, f"{model.id}/register/"), {"group": "", "group_name": "pricing"},
                       follow=True).content.decode()
    assert "Registered as version 1 of model group &#x27;pricing&#x27;, pending approval." in body
    group = ModelGroup.objects.get(name="pricing")
    client.post(page(world, f"{other.id}/register/"), {"group": str(group.id)})
    assert list(group.versions.order_by("version").values_list("version", "model__name")) == [
        (1, "houses-v1"), (2, "houses-v2")]
    twice = client.post(page(world, f"{model.id}/register/"), {"group": "", "group_name": "pricing"},
                        follow=True).content.decode()
    assert "already exists" in twice and ModelGroup.objects.count() == 1
    shown = client.get(page(world, f"{model.id}/")).content.decode()
    assert f"groups/{group.id}/#version-1" in shown and "(next v3)" not in shown  # only groups it is not in
    assert signed_in(world.viewer).post(page(world, f"{model.id}/register/"),
                                        {"group_name": "viewers"}).status_code == 403


def test_the_model_page_draws_the_lineage_and_offers_deploy_and_delete_to_members(world):
    model = bare_model(world.project, "houses")
    group = services.model_group_create(user=world.member, project=world.project, name="pricing")
    services.model_version_create(user=world.member, group=group, model=model)
    deploy(model, name="prod")
    body = signed_in(world.member).get(page(world, f"{model.id}/")).content.decode()
    assert 'id="lineage-figure"' in body and "plotly/plotly.min.js" in body
    figure = json.loads(body.split('<script id="lineage-figure" type="application/json">', 1)[1].split("</script>")[0])
    assert [t.get("name") for t in figure["data"][1:]] == ["Model", "Version", "Endpoint"]
    assert figure["data"][2]["text"] == ["pricing v1"]
    assert f'href="/projects/{world.project.id}/endpoints/new/?model={model.id}"' in body
    assert f'action="/projects/{world.project.id}/models/{model.id}/delete/"' in body
    viewer = signed_in(world.viewer).get(page(world, f"{model.id}/")).content.decode()
    assert 'id="lineage-figure"' in viewer and "/endpoints/new/" not in viewer and "/delete/" not in viewer
    assert 'data-testid="register-form"' not in viewer


def test_deleting_a_served_model_shows_the_conflict_and_an_idle_one_goes(world):
    served, idle = bare_model(world.project, "served"), bare_model(world.project, "idle")
    deploy(served, name="prod")
    client = signed_in(world.member)
    response = client.post(page(world, f"{served.id}/delete/"), follow=True)
    body = response.content.decode()
    assert response.redirect_chain[-1][0] == page(world, f"{served.id}/")
    assert 'class="alert error"' in body and "used by endpoint &#x27;prod&#x27;" in body
    assert Model.objects.filter(id=served.id).exists()
    gone = client.post(page(world, f"{idle.id}/delete/"), follow=True)
    assert gone.redirect_chain[-1][0] == page(world) and "Model &#x27;idle&#x27; and its files deleted." in \
        gone.content.decode()
    assert not Model.objects.filter(id=idle.id).exists()
    assert signed_in(world.viewer).post(page(world, f"{served.id}/delete/")).status_code == 403


def registered(world, n: int = 2):
    group = services.model_group_create(user=world.member, project=world.project, name="pricing")
    for i in range(n):
        services.model_version_create(user=world.member, group=group, model=bare_model(world.project, f"m{i + 1}"))
    return group


def test_the_group_page_lists_versions_with_approval_actions_for_members(world):
    group = registered(world)
    body = signed_in(world.member).get(group_page(world, group)).content.decode()
    assert body.count('data-testid="version-row"') == 2
    assert body.index('id="version-2"') < body.index('id="version-1"')  # newest first
    assert body.count('data-testid="approve"') == 2 and body.count('data-testid="deploy-version"') == 2
    assert "registered by mark" in body
    viewer = signed_in(world.viewer).get(group_page(world, group)).content.decode()
    assert viewer.count('data-testid="version-row"') == 2
    assert 'data-testid="approve"' not in viewer and "/endpoints/new/" not in viewer
    assert 'data-testid="delete-group"' not in viewer


def test_approving_with_htmx_re_renders_the_row_with_who(world):
    group = registered(world, n=1)
    url = page(world, f"groups/{group.id}/versions/1/approval/")
    response = signed_in(world.member).post(url, {"approval_status": "approved"}, HTTP_HX_REQUEST="true")
    row = response.content.decode()
    assert response.status_code == 200 and row.strip().startswith('<tr id="version-1"')
    assert ">approved</span>" in row and "approved by mark" in row and 'data-testid="approve"' not in row
    version = ModelVersion.objects.get(group=group, version=1)
    assert version.approval_status == "approved" and version.approved_by == world.member
    rejected = signed_in(world.owner).post(url, {"approval_status": "rejected"}, HTTP_HX_REQUEST="true")
    assert "rejected by olivia" in rejected.content.decode()
    bad = signed_in(world.owner).post(url, {"approval_status": "maybe"}, HTTP_HX_REQUEST="true")
    assert bad.status_code == 400 and "approval_status must be one of" in bad.content.decode()
    plain = signed_in(world.member).post(url, {"approval_status": "pending"}, follow=True)
    assert "Version 1 of &#x27;pricing&#x27; is now pending." in plain.content.decode()
    assert signed_in(world.viewer).post(url, {"approval_status": "approved"}).status_code == 403
    assert ModelVersion.objects.get(group=group, version=1).approval_status == "pending"


def test_only_admins_delete_a_group_and_not_while_deployed(world):
    group = registered(world, n=1)
    deploy(Model.objects.get(name="m1"), name="prod")
    assert signed_in(world.member).post(page(world, f"groups/{group.id}/delete/")).status_code == 403
    owner = signed_in(world.owner)
    assert 'data-testid="delete-group"' in owner.get(group_page(world, group)).content.decode()
    blocked = owner.post(page(world, f"groups/{group.id}/delete/"), follow=True).content.decode()
    assert "deployed on endpoint &#x27;prod&#x27;" in blocked and ModelGroup.objects.filter(id=group.id).exists()
    Endpoint.objects.all().delete()
    done = owner.post(page(world, f"groups/{group.id}/delete/"), follow=True)
    assert done.redirect_chain[-1][0] == page(world) and not ModelGroup.objects.exists()


def test_it_hides_registry_pages_from_outsiders(world):
    group = registered(world, n=1)
    model = Model.objects.get(name="m1")
    client = signed_in(world.outsider)
    for suffix in (f"groups/{group.id}/", f"{model.id}/"):
        assert client.get(page(world, suffix)).status_code == 404, suffix
    for suffix in ("groups/new/", f"groups/{group.id}/delete/", f"groups/{group.id}/versions/1/approval/",
                   f"{model.id}/delete/", f"{model.id}/register/"):
        assert client.post(page(world, suffix), {"approval_status": "approved", "name": "x"}).status_code == 404
    assert ModelVersion.objects.get().approval_status == "pending" and Model.objects.filter(id=model.id).exists()


def test_site_admins_see_groups_and_versions_in_django_admin(world):
    group = registered(world, n=1)
    version = group.versions.get()
    world.owner.is_staff = world.owner.is_superuser = True
    world.owner.save()
    client = signed_in(world.owner)
    for url in ("/admin/registry/modelgroup/", f"/admin/registry/modelgroup/{group.id}/change/",
                "/admin/registry/modelversion/", f"/admin/registry/modelversion/{version.id}/change/"):
        response = client.get(url)
        assert response.status_code == 200 and "pricing" in response.content.decode(), url
    assert client.get("/admin/registry/modelversion/add/").status_code == 403
