"""Django admin: every model of every studio app is registered, and each list and change page opens."""

from __future__ import annotations

import time

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from studio.endpoints.models import EndpointMetric, ScalingEvent
from studio.ops.models import FailedTask
from studio.training.models import LogLine, MetricPoint, TrainingJob
from tests.conftest import make_user
from tests.core.test_tenancy import victims  # noqa: F401 - objects of every kind, as a fixture
from tests.ops.conftest import signed_in

pytestmark = pytest.mark.django_db


def studio_models():
    return [model for model in apps.get_models() if model.__module__.startswith("studio.")]


def test_it_registers_every_model_of_every_studio_app():
    missing = [f"{m._meta.app_label}.{m.__name__}" for m in studio_models() if not admin.site.is_registered(m)]
    assert missing == []


def test_it_opens_every_list_and_change_page(world, victims):  # noqa: F811
    job = TrainingJob.objects.get(id=victims["job_id"])
    MetricPoint.objects.create(job=job, name="train:loss", step=1, value=0.5, ts=time.time())
    LogLine.objects.create(job=job, seq=1, ts=time.time(), line="epoch 1")
    endpoint_variant = victims["endpoint_id"]
    from studio.endpoints.models import EndpointVariant

    variant = EndpointVariant.objects.get(endpoint_id=endpoint_variant)
    EndpointMetric.objects.create(endpoint_id=endpoint_variant, variant=variant, ts=time.time(), seconds=2)
    ScalingEvent.objects.create(endpoint_id=endpoint_variant, variant=variant, from_instances=1, to_instances=2,
                                reason="load")
    FailedTask.objects.create(task_name="t", exception="boom", traceback="Traceback")
    root = make_user("root")
    root.is_staff = root.is_superuser = True
    root.save()
    client = signed_in(root)
    for model in studio_models():
        meta = model._meta
        changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        assert client.get(changelist).status_code == 200, changelist
        obj = model.objects.first()
        if obj is not None:
            change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
            assert client.get(change).status_code == 200, change
