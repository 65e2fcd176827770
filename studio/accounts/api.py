from __future__ import annotations

from django.contrib.auth import authenticate
from django.http import Http404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from studio.accounts import selectors, services
from studio.accounts.models import ApiToken, Membership, Project, Role, Team
from studio.accounts.selectors import role_for


class SignupIn(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(write_only=True)
    email = serializers.EmailField(required=False, allow_blank=True)


class UserOut(serializers.Serializer):
    id = serializers.UUIDField()
    username = serializers.CharField()


class SignupApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(request=SignupIn, responses={201: UserOut})
    def post(self, request):
        data = SignupIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_signup(**data.validated_data)
        return Response(UserOut(user).data, status=status.HTTP_201_CREATED)


class TokenIn(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(write_only=True)
    name = serializers.CharField(required=False, max_length=100)


class TokenApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request) -> str:
        return "Bearer"  # wrong credentials are a 401, as for every other API call

    @extend_schema(request=TokenIn, responses={200: inline_serializer("TokenOut", {"token": serializers.CharField()})})
    def post(self, request):
        data = TokenIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(request, username=data.validated_data["username"],
                            password=data.validated_data["password"])
        if user is None:
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
    name = serializers.CharField(max_length=100)


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
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)


class MemberListApi(generics.ListAPIView):
    serializer_class = MemberOut

    def get_queryset(self):
        team = selectors.team_get(user=self.request.user, slug=self.kwargs["slug"])
        return selectors.membership_list(user=self.request.user, team=team)

    @extend_schema(request=MemberIn, responses={201: MemberOut})
    def post(self, request, slug: str):
        team = selectors.team_get(user=request.user, slug=slug)
        data = MemberIn(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.member_add(actor=request.user, team=team, **data.validated_data)
        return Response(MemberOut(membership).data, status=status.HTTP_201_CREATED)


class MemberDetailApi(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request, slug: str, username: str):
        team = selectors.team_get(user=request.user, slug=slug)
        services.member_remove(actor=request.user, team=team, username=username)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProjectOut(serializers.ModelSerializer):
    team = serializers.CharField(source="team.slug")

    class Meta:
        model = Project
        fields = ["id", "team", "name", "slug", "description", "created_at"]


class ProjectIn(serializers.Serializer):
    team = serializers.CharField()
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)


class ProjectPatch(serializers.Serializer):
    name = serializers.CharField(required=False, max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)


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


class ApiTokenListApi(generics.ListAPIView):
    serializer_class = ApiTokenOut

    def get_queryset(self):
        return selectors.api_token_list(user=self.request.user)

    @extend_schema(request=inline_serializer("ApiTokenIn", {"name": serializers.CharField()}),
                   responses={201: inline_serializer("ApiTokenCreated", {
                       "id": serializers.UUIDField(), "name": serializers.CharField(),
                       "token": serializers.CharField()})})
    def post(self, request):
        name = str(request.data.get("name") or "API token")
        token, secret = services.api_token_create(user=request.user, name=name)
        return Response({"id": str(token.id), "name": token.name, "token": secret}, status=status.HTTP_201_CREATED)


class ApiTokenDetailApi(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request, token_id):
        services.api_token_revoke(user=request.user, token_id=token_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
