from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from studio.accounts import views

urlpatterns = [
    path("signup/", views.signup, name="signup"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("settings/tokens/", views.tokens, name="tokens"),
    path("settings/tokens/<uuid:token_id>/revoke/", views.token_revoke, name="token-revoke"),
    path("teams/new/", views.team_create, name="team-create"),
    path("teams/<slug:slug>/", views.team_detail, name="team-detail"),
    path("teams/<slug:slug>/members/", views.member_add, name="member-add"),
    path("teams/<slug:slug>/members/<str:username>/remove/", views.member_remove, name="member-remove"),
    path("teams/<slug:slug>/projects/", views.project_create, name="project-create"),
    path("projects/<uuid:project_id>/", views.project_detail, name="project-detail"),
    path("projects/<uuid:project_id>/delete/", views.project_delete, name="project-delete"),
    path("projects/<uuid:project_id>/activity/", views.project_activity, name="project-activity"),
]
