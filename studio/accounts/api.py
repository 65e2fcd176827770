from __future__ import annotations

from django.contrib.auth import authenticate
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from studio.accounts import ratelimit, selectors, services
from studio.accounts.invite_links import invite_url
from studio.accounts.models import ApiToken, Invitation, Membership, Project, Role, Team
from studio.accounts.permissions import require_role
from studio.accounts.selectors import role_for
from studio.core.api import StrictBooleanField, StrictCharField, StrictIntegerField


class SignupIn(serializers.Serializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(write_only=True)
    email = serializers.EmailField(required=False, allow_blank=True)


class UserOut(serializers.Serializer):
    id = serializers.UUIDField()
    username = serializers.CharField()


class SignupApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(request=SignupIn, responses={
        201: UserOut, 429: OpenApiResponse(description="Too many sign-ups from this address (Retry-After)")})
    def post(self, request):
        try:
            ratelimit.signup_attempt(request)
        except ratelimit.RateLimited as exc:
            raise Throttled(wait=exc.retry_after, detail=str(exc)) from None
        data = SignupIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_signup(**data.validated_data)
        return Response(UserOut(user).data, status=status.HTTP_201_CREATED)


class TokenIn(serializers.Serializer):
    username = StrictCharField()
    password = StrictCharField(write_only=True)
    name = StrictCharField(required=False, max_length=100)


class TokenApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request) -> str:
        return "Bearer"  # wrong credentials are a 401, as for every other API call

    @extend_schema(request=TokenIn, responses={
        200: inline_serializer("TokenOut", {"token": serializers.CharField()}),
        429: OpenApiResponse(description="Too many failed sign-ins for this username from this address (Retry-After)"),
    })
    def post(self, request):
        data = TokenIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(request, username=data.validated_data["username"],
                            password=data.validated_data["password"])
        if user is None:
            limited = ratelimit.rate_limited(request)
            if limited is not None:
                raise Throttled(wait=limited.retry_after, detail=str(limited))
            raise AuthenticationFailed("Wrong username or password.")
        _, secret = services.api_token_create(user=user, name=data.validated_data.get("name", "API (auth/token)"))
        return Response({"token": secret})


class TeamRoleOut(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    role = serializers.CharField()


class MeApi(APIView):
    @extend_schema(responses=inline_serializer("Me", {
        "id": serializers.UUIDField(), "username": serializers.CharField(),
        "is_site_admin": serializers.BooleanField(), "teams": TeamRoleOut(many=True)}))
    def get(self, request):
        memberships = Membership.objects.filter(user=request.user).select_related("team")
        return Response({
            "id": str(request.user.id),
            "username": request.user.username,
            "is_site_admin": request.user.is_superuser,
            "teams": [{"slug": m.team.slug, "name": m.team.name, "role": m.role} for m in memberships],
        })


class TeamOut(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Team
        fields = ["slug", "name", "role", "created_at"]

    def get_role(self, team) -> str | None:
        return role_for(user=self.context["request"].user, team=team)


class TeamIn(serializers.Serializer):
    name = StrictCharField(max_length=100)


class TeamListApi(generics.ListAPIView):
    serializer_class = TeamOut

    def get_queryset(self):
        return selectors.team_list(user=self.request.user)

    @extend_schema(request=TeamIn, responses={201: TeamOut})
    def post(self, request):
        data = TeamIn(data=request.data)
        data.is_valid(raise_exception=True)
        team = services.team_create(user=request.user, **data.validated_data)
        return Response(TeamOut(team, context={"request": request}).data, status=status.HTTP_201_CREATED)


class TeamDetailApi(APIView):
    @extend_schema(responses=TeamOut)
    def get(self, request, slug: str):
        team = selectors.team_get(user=request.user, slug=slug)
        return Response(TeamOut(team, context={"request": request}).data)


class MemberOut(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")

    class Meta:
        model = Membership
        fields = ["username", "role", "created_at"]


class MemberIn(serializers.Serializer):
    username = StrictCharField()
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)


class MemberListApi(generics.ListAPIView):
    serializer_class = MemberOut

    def get_queryset(self):
        team = selectors.team_get(user=self.request.user, slug=self.kwargs["slug"])
        return selectors.membership_list(user=self.request.user, team=team)

    @extend_schema(request=MemberIn, responses={201: MemberOut})
    def post(self, request, slug: str):
        team = selectors.team_get(user=request.user, slug=slug)
        require_role(user=request.user, team=team, role=Role.ADMIN)  # a viewer gets 403, not a lesson in the body
        data = MemberIn(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.member_add(actor=request.user, team=team, **data.validated_data)
        return Response(MemberOut(membership).data, status=status.HTTP_201_CREATED)


class MemberRoleIn(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class MemberDetailApi(APIView):
    @extend_schema(request=MemberRoleIn, responses=MemberOut)
    def patch(self, request, slug: str, username: str):
        team = selectors.team_get(user=request.user, slug=slug)
        require_role(user=request.user, team=team, role=Role.ADMIN)  # 403 before validating the body
        data = MemberRoleIn(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.member_role_set(actor=request.user, team=team, username=username,
                                              role=data.validated_data["role"])
        return Response(MemberOut(membership).data)

    @extend_schema(responses={204: None})
    def delete(self, request, slug: str, username: str):
        team = selectors.team_get(user=request.user, slug=slug)
        services.member_remove(actor=request.user, team=team, username=username)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TransferIn(serializers.Serializer):
    username = StrictCharField()


class TeamTransferApi(APIView):
    @extend_schema(request=TransferIn, responses=MemberOut,
                   description="The named member becomes owner; you become admin. Only an owner may do this.")
    def post(self, request, slug: str):
        team = selectors.team_get(user=request.user, slug=slug)
        require_role(user=request.user, team=team, role=Role.OWNER)  # 403 before validating the body
        data = TransferIn(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.team_transfer_ownership(actor=request.user, team=team, **data.validated_data)
        return Response(MemberOut(membership).data)


class TeamLeaveApi(APIView):
    @extend_schema(request=None, responses={204: None},
                   description="Leave the team. The last owner cannot leave (409): transfer ownership first.")
    def post(self, request, slug: str):
        team = selectors.team_get(user=request.user, slug=slug)
        services.team_leave(user=request.user, team=team)
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationOut(serializers.ModelSerializer):
    kind = serializers.SerializerMethodField()
    username = serializers.CharField(source="invitee.username", default=None)
    invited_by = serializers.CharField(source="invited_by.username", default=None)
    state = serializers.CharField()
    team = serializers.CharField(source="team.slug")

    class Meta:
        model = Invitation
        fields = ["id", "team", "kind", "username", "prefix", "role", "state", "uses", "max_uses", "invited_by",
                  "expires_at", "created_at"]

    def get_kind(self, invitation) -> str:
        return "link" if invitation.is_link else "user"


class InvitationCreated(InvitationOut):
    url = serializers.CharField(allow_null=True, help_text="The invite link (links only). Shown once.")
    token = serializers.CharField(allow_null=True, help_text="The link's secret (links only). Shown once.")

    class Meta(InvitationOut.Meta):
        fields = [*InvitationOut.Meta.fields, "url", "token"]


class InvitationIn(serializers.Serializer):
    username = StrictCharField(required=False, allow_blank=True, help_text="Invite this existing user.")
    link = StrictBooleanField(required=False, default=False, help_text="Make an invite link instead.")
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)
    max_uses = StrictIntegerField(required=False, min_value=1, max_value=services.INVITATION_MAX_USES,
                                  help_text="Links only: how many people may join with it (default 1).")
    expires_in_days = StrictIntegerField(required=False, min_value=1, max_value=services.INVITATION_MAX_DAYS,
                                         default=services.INVITATION_DEFAULT_DAYS)


class TeamInvitationListApi(generics.ListAPIView):
    serializer_class = InvitationOut

    def get_queryset(self):
        team = selectors.team_get(user=self.request.user, slug=self.kwargs["slug"])
        require_role(user=self.request.user, team=team, role=Role.ADMIN)
        return selectors.invitation_list(user=self.request.user, team=team)

    @extend_schema(request=InvitationIn, responses={201: InvitationCreated},
                   description="Invite a user by username, or make a link (`link: true`). "
                               "The link's URL and secret are in this response only.")
    def post(self, request, slug: str):
        team = selectors.team_get(user=request.user, slug=slug)
        data = InvitationIn(data=request.data)
        data.is_valid(raise_exception=True)
        invitation, secret = services.invitation_create(actor=request.user, team=team, **data.validated_data)
        # InvitationCreated documents this shape; the secret exists only here, never in the database.
        body = {**InvitationOut(invitation).data, "url": invite_url(request, secret) if secret else None,
                "token": secret}
        return Response(body, status=status.HTTP_201_CREATED)


class TeamInvitationDetailApi(APIView):
    @extend_schema(responses={204: None}, description="Revoke an invitation or invite link.")
    def delete(self, request, slug: str, invitation_id):
        team = selectors.team_get(user=request.user, slug=slug)
        services.invitation_revoke(actor=request.user, team=team, invitation_id=invitation_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class JoinedOut(serializers.Serializer):
    team = TeamRoleOut()
    joined = serializers.BooleanField(help_text="False when you were already a member with this role or higher.")


def _joined(membership, joined: bool) -> dict:
    return {"team": {"slug": membership.team.slug, "name": membership.team.name, "role": membership.role},
            "joined": joined}


class InvitationTokenApi(APIView):
    @extend_schema(responses=InvitationOut, description="What an invite link offers, for whoever holds it.")
    def get(self, request, token: str):
        return Response(InvitationOut(selectors.invitation_by_token(token=token)).data)


class InvitationTokenAcceptApi(APIView):
    @extend_schema(request=None, responses=JoinedOut,
                   description="Join the team of an invite link. 409 with the reason when it is expired, "
                               "revoked or used up.")
    def post(self, request, token: str):
        membership, joined = services.invitation_accept_link(user=request.user, token=token)
        return Response(_joined(membership, joined))


class MyInvitationListApi(generics.ListAPIView):
    serializer_class = InvitationOut

    def get_queryset(self):
        return selectors.pending_invitations_for(user=self.request.user)


class MyInvitationAcceptApi(APIView):
    @extend_schema(request=None, responses=JoinedOut)
    def post(self, request, invitation_id):
        membership, joined = services.invitation_accept(user=request.user, invitation_id=invitation_id)
        return Response(_joined(membership, joined))


class MyInvitationDeclineApi(APIView):
    @extend_schema(request=None, responses=InvitationOut)
    def post(self, request, invitation_id):
        invitation = services.invitation_decline(user=request.user, invitation_id=invitation_id)
        return Response(InvitationOut(invitation).data)


class ProjectOut(serializers.ModelSerializer):
    team = serializers.CharField(source="team.slug")

    class Meta:
        model = Project
        fields = ["id", "team", "name", "slug", "description", "created_at"]


class ProjectIn(serializers.Serializer):
    team = StrictCharField()
    name = StrictCharField(max_length=100)
    description = StrictCharField(required=False, allow_blank=True, max_length=5000)


class ProjectPatch(serializers.Serializer):
    name = StrictCharField(required=False, max_length=100)
    description = StrictCharField(required=False, allow_blank=True, max_length=5000)


class ProjectListApi(generics.ListAPIView):
    serializer_class = ProjectOut

    def get_queryset(self):
        projects = selectors.project_list(user=self.request.user)
        if team := self.request.query_params.get("team"):
            projects = projects.filter(team__slug=team)
        return projects

    @extend_schema(request=ProjectIn, responses={201: ProjectOut})
    def post(self, request):
        data = ProjectIn(data=request.data)
        data.is_valid(raise_exception=True)
        slug = data.validated_data["team"]
        try:
            team = selectors.team_get(user=request.user, slug=slug)
        except Http404:
            # Same answer whether the team exists elsewhere or not at all: nothing leaks.
            raise serializers.ValidationError({"team": [f"You are not in a team '{slug}'."]}) from None
        project = services.project_create(
            user=request.user, team=team, name=data.validated_data["name"],
            description=data.validated_data.get("description", ""),
        )
        return Response(ProjectOut(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(APIView):
    @extend_schema(responses=ProjectOut)
    def get(self, request, project_id):
        return Response(ProjectOut(selectors.project_get(user=request.user, project_id=project_id)).data)

    @extend_schema(request=ProjectPatch, responses=ProjectOut)
    def patch(self, request, project_id):
        project = selectors.project_get(user=request.user, project_id=project_id)
        data = ProjectPatch(data=request.data)
        data.is_valid(raise_exception=True)
        project = services.project_update(user=request.user, project=project, **data.validated_data)
        return Response(ProjectOut(project).data)

    @extend_schema(responses={204: None})
    def delete(self, request, project_id):
        project = selectors.project_get(user=request.user, project_id=project_id)
        services.project_delete(user=request.user, project=project)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApiTokenOut(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at"]


class ApiTokenIn(serializers.Serializer):
    name = StrictCharField(required=False, allow_blank=True, max_length=100,
                           help_text="What the token is for; 'API token' when left out.")


class ApiTokenListApi(generics.ListAPIView):
    serializer_class = ApiTokenOut

    def get_queryset(self):
        return selectors.api_token_list(user=self.request.user)

    @extend_schema(request=ApiTokenIn,
                   responses={201: inline_serializer("ApiTokenCreated", {
                       "id": serializers.UUIDField(), "name": serializers.CharField(),
                       "token": serializers.CharField()})})
    def post(self, request):
        data = ApiTokenIn(data=request.data)  # a body that is not an object is a 400, not a 500
        data.is_valid(raise_exception=True)
        name = data.validated_data.get("name") or "API token"
        token, secret = services.api_token_create(user=request.user, name=name)
        return Response({"id": str(token.id), "name": token.name, "token": secret}, status=status.HTTP_201_CREATED)


class ApiTokenDetailApi(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request, token_id):
        services.api_token_revoke(user=request.user, token_id=token_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
