from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import Http404, JsonResponse
from django.shortcuts import render

from algorithms import UnknownAlgorithm, get_algorithm, list_algorithms
from studio.accounts.selectors import project_list, team_list
from studio.core.catalog import algorithm_entry
from studio.core.pages import project_access


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


@login_required
def algorithm_list(request, project_id):
    """The built-in algorithms, each with what it does, needs and reports, and a way to train it."""
    access = project_access(request, project_id)
    return render(request, "algorithms/algorithm_list.html", access.context(
        "algorithms", algorithms=[algorithm_entry(a) for a in list_algorithms()]))


@login_required
def algorithm_detail(request, project_id, algorithm):
    access = project_access(request, project_id)
    try:
        algo = get_algorithm(algorithm)
    except UnknownAlgorithm:
        raise Http404("No such algorithm.") from None
    return render(request, "algorithms/algorithm_detail.html", access.context(
        "algorithms", algorithm=algorithm_entry(algo)))
