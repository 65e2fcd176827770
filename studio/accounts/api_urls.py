from __future__ import annotations

from django.urls import path

from studio.accounts import api

urlpatterns = [
    path("auth/signup", api.SignupApi.as_view(), name="api-signup"),
    path("auth/token", api.TokenApi.as_view(), name="api-token"),
    path("me", api.MeApi.as_view(), name="api-me"),
    path("me/invitations", api.MyInvitationListApi.as_view(), name="api-my-invitations"),
    path("me/invitations/<uuid:invitation_id>/accept", api.MyInvitationAcceptApi.as_view(),
         name="api-my-invitation-accept"),
    path("me/invitations/<uuid:invitation_id>/decline", api.MyInvitationDeclineApi.as_view(),
         name="api-my-invitation-decline"),
    path("invitations/<str:token>", api.InvitationTokenApi.as_view(), name="api-invitation"),
    path("invitations/<str:token>/accept", api.InvitationTokenAcceptApi.as_view(), name="api-invitation-accept"),
    path("tokens", api.ApiTokenListApi.as_view(), name="api-tokens"),
    path("tokens/<uuid:token_id>", api.ApiTokenDetailApi.as_view(), name="api-token-detail"),
    path("teams", api.TeamListApi.as_view(), name="api-teams"),
    path("teams/<slug:slug>", api.TeamDetailApi.as_view(), name="api-team"),
    path("teams/<slug:slug>/members", api.MemberListApi.as_view(), name="api-members"),
    path("teams/<slug:slug>/members/<str:username>", api.MemberDetailApi.as_view(), name="api-member"),
    path("teams/<slug:slug>/invitations", api.TeamInvitationListApi.as_view(), name="api-team-invitations"),
    path("teams/<slug:slug>/invitations/<uuid:invitation_id>", api.TeamInvitationDetailApi.as_view(),
         name="api-team-invitation"),
    path("teams/<slug:slug>/transfer-ownership", api.TeamTransferApi.as_view(), name="api-team-transfer"),
    path("teams/<slug:slug>/leave", api.TeamLeaveApi.as_view(), name="api-team-leave"),
    path("projects", api.ProjectListApi.as_view(), name="api-projects"),
    path("projects/<uuid:project_id>", api.ProjectDetailApi.as_view(), name="api-project"),
]
