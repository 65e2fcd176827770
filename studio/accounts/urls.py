from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from studio.accounts import views

urlpatterns = [
    path("signup/", views.signup, name="signup"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("settings/tokens/", views.tokens, name="tokens"),
    path("settings/tokens/<uuid:token_id>/revoke/", views.token_revoke, name="token-revoke"),
    path("teams/new/", views.team_create, name="team-create"),
    path("teams/<slug:slug>/", views.team_detail, name="team-detail"),
    path("teams/<slug:slug>/members/", views.member_add, name="member-add"),
    path("teams/<slug:slug>/members/<str:username>/role/", views.member_role, name="member-role"),
    path("teams/<slug:slug>/members/<str:username>/remove/", views.member_remove, name="member-remove"),
    path("teams/<slug:slug>/leave/", views.team_leave, name="team-leave"),
    path("teams/<slug:slug>/transfer/", views.team_transfer, name="team-transfer"),
    path("teams/<slug:slug>/invitations/", views.invitation_create, name="invitation-create"),
    path("teams/<slug:slug>/invitations/<uuid:invitation_id>/revoke/", views.invitation_revoke,
         name="invitation-revoke"),
    path("teams/<slug:slug>/projects/", views.project_create, name="project-create"),
    path("invitations/<uuid:invitation_id>/accept/", views.my_invitation_accept, name="my-invitation-accept"),
    path("invitations/<uuid:invitation_id>/decline/", views.my_invitation_decline, name="my-invitation-decline"),
    path("invite/<str:token>/", views.invite_accept, name="invite-accept"),
    path("projects/<uuid:project_id>/", views.project_detail, name="project-detail"),
    path("projects/<uuid:project_id>/delete/", views.project_delete, name="project-delete"),
    path("projects/<uuid:project_id>/activity/", views.project_activity, name="project-activity"),
]
