from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render

from studio.accounts.selectors import project_list, team_list


@login_required
def home(request):
    teams = team_list(user=request.user)
    projects = project_list(user=request.user)
    return render(request, "core/home.html", {"teams": teams, "projects": projects})


def health(request):
    """Liveness for load balancers: the database answers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
