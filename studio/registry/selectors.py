"""Every read of models, scoped to projects the user's teams can see."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet
from django.http import Http404

from studio.accounts.selectors import project_list
from studio.registry.models import Model

if TYPE_CHECKING:
    from studio.accounts.models import Project, User


def model_list(*, user: User, project: Project) -> QuerySet[Model]:
    return Model.objects.filter(project=project, project__in=project_list(user=user)).select_related("training_job")


def model_get(*, user: User, project: Project, model_id) -> Model:
    try:
        return model_list(user=user, project=project).get(id=model_id)
    except (Model.DoesNotExist, ValueError, TypeError):
        raise Http404("No such model in this project.") from None
