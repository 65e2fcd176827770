"""REST API of comments, run tags and notes, notifications and the user's webhook: thin, rules in services."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from studio.accounts.models import Role
from studio.accounts.permissions import require_role
from studio.accounts.selectors import project_get
from studio.core.api import StrictBooleanField, StrictCharField, single_param
from studio.social import selectors, services
from studio.social.models import COMMENT_MAX_LENGTH, Comment, Notification, TargetType, Webhook, WebhookDelivery
from studio.training.selectors import training_job_get

# --- comments ---------------------------------------------------------------------------------------------


# A number is read as its text here, on purpose (tests/social/test_comments_api.py), so the schema says so too.
@extend_schema_field({"oneOf": [{"type": "string", "minLength": 1, "maxLength": COMMENT_MAX_LENGTH},
                                {"type": "number"}]})
class CommentBodyField(serializers.CharField):
    pass


class CommentIn(serializers.Serializer):
    target_type = serializers.ChoiceField(choices=TargetType.values)
    target_id = StrictCharField(max_length=64, help_text="Id of the training job, tuning job, model, "
                                                         "endpoint or pipeline execution.")
    body = CommentBodyField(max_length=COMMENT_MAX_LENGTH, trim_whitespace=True,
                            help_text="Plain text, shown as written (no markdown, no HTML); a number is taken as "
                                      "its text.")


class CommentEditIn(serializers.Serializer):
    body = StrictCharField(max_length=COMMENT_MAX_LENGTH, trim_whitespace=True)


class CommentOut(serializers.ModelSerializer):
    author = serializers.SerializerMethodField()
    body = serializers.SerializerMethodField(help_text="Empty once the comment is deleted.")
    deleted = serializers.BooleanField(source="is_deleted")

    class Meta:
        model = Comment
        fields = ["id", "target_type", "target_id", "author", "body", "created_at", "edited_at", "deleted"]

    def get_author(self, comment: Comment) -> str | None:
        return comment.author.username if comment.author else None

    def get_body(self, comment: Comment) -> str:
        return "" if comment.is_deleted else comment.body


class CommentListApi(generics.GenericAPIView):
    serializer_class = CommentOut

    @extend_schema(
        parameters=[
            OpenApiParameter("target_type", str, enum=TargetType.values, description="Only comments on this kind."),
            OpenApiParameter("target_id", str, description="Only comments on this object (with target_type)."),
        ],
        responses=CommentOut(many=True),
    )
    def get(self, request, project_id):
        project = project_get(user=request.user, project_id=project_id)
        target_type = request.query_params.get("target_type")
        target_id = request.query_params.get("target_id")
        if target_type is not None or target_id is not None:
            if target_type not in TargetType.values:
                raise ValidationError({"target_type": [f"target_type must be one of {', '.join(TargetType.values)}."]})
            # A target named in the URL that is not visible is a 404, like any object of another team.
            target = selectors.target_get(user=request.user, project=project, target_type=target_type,
                                          target_id=target_id)
            comments = selectors.comment_list(user=request.user, project=project, target_type=target.type,
                                              target_id=target.id)
        else:
            comments = selectors.comment_list(user=request.user, project=project)
        page = self.paginate_queryset(comments)
        return self.get_paginated_response(CommentOut(page, many=True).data)

    @extend_schema(request=CommentIn, responses={201: CommentOut})
    def post(self, request, project_id):
        project = project_get(user=request.user, project_id=project_id)
        require_role(user=request.user, team=project.team, role=Role.MEMBER)  # 403 before validating the body
        data = CommentIn(data=request.data)
        data.is_valid(raise_exception=True)
        comment = services.comment_create(user=request.user, project=project, **data.validated_data)
        return Response(CommentOut(comment).data, status=status.HTTP_201_CREATED)


class CommentDetailApi(APIView):
    @extend_schema(responses=CommentOut)
    def get(self, request, project_id, comment_id):
        return Response(CommentOut(_comment(request, project_id, comment_id)).data)

    @extend_schema(request=CommentEditIn, responses=CommentOut)
    def patch(self, request, project_id, comment_id):
        comment = _comment(request, project_id, comment_id)
        require_role(user=request.user, team=comment.project.team, role=Role.MEMBER)  # 403 before the body
        data = CommentEditIn(data=request.data)
        data.is_valid(raise_exception=True)
        comment = services.comment_update(user=request.user, comment=comment, body=data.validated_data["body"])
        return Response(CommentOut(comment).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, project_id, comment_id):
        services.comment_delete(user=request.user, comment=_comment(request, project_id, comment_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _comment(request, project_id, comment_id) -> Comment:
    project = project_get(user=request.user, project_id=project_id)
    return selectors.comment_get(user=request.user, project=project, comment_id=comment_id)


# --- tags and notes of training jobs ----------------------------------------------------------------------


class TagsIn(serializers.Serializer):
    add = serializers.ListField(child=serializers.JSONField(), required=False, default=list,
                                help_text="Tags to add: lowercase letters, digits and . _ : / + = - (max 50 chars).")
    remove = serializers.ListField(child=serializers.JSONField(), required=False, default=list)


class NotesIn(serializers.Serializer):
    notes = StrictCharField(allow_blank=True, trim_whitespace=False,
                            max_length=services.NOTES_MAX_LENGTH + 1000,  # the service trims, then checks
                            help_text="Plain text; replaces the run's notes.")


TagsNotesOut = inline_serializer("TrainingJobTagsNotes", {
    "id": serializers.UUIDField(),
    "tags": serializers.ListField(child=serializers.CharField()),
    "notes": serializers.CharField(),
})


def _tags_notes(job) -> dict:
    return {"id": str(job.id), "tags": list(job.tags or []), "notes": job.notes}


class TrainingJobTagsApi(APIView):
    @extend_schema(request=TagsIn, responses=TagsNotesOut)
    def patch(self, request, project_id, job_id):
        job = _job(request, project_id, job_id)
        require_role(user=request.user, team=job.project.team, role=Role.MEMBER)  # 403 before the body
        data = TagsIn(data=request.data)
        data.is_valid(raise_exception=True)
        job = services.training_job_tag(user=request.user, job=job, **data.validated_data)
        return Response(_tags_notes(job))


class TrainingJobNotesApi(APIView):
    @extend_schema(request=NotesIn, responses=TagsNotesOut)
    def patch(self, request, project_id, job_id):
        job = _job(request, project_id, job_id)
        require_role(user=request.user, team=job.project.team, role=Role.MEMBER)  # 403 before the body
        data = NotesIn(data=request.data)
        data.is_valid(raise_exception=True)
        job = services.training_job_notes_set(user=request.user, job=job, notes=data.validated_data["notes"])
        return Response(_tags_notes(job))


def _job(request, project_id, job_id):
    project = project_get(user=request.user, project_id=project_id)
    return training_job_get(user=request.user, project=project, job_id=job_id)


# --- notifications and the webhook ------------------------------------------------------------------------


class NotificationOut(serializers.ModelSerializer):
    project = serializers.UUIDField(source="project_id", allow_null=True)
    read = serializers.BooleanField(source="is_read")

    class Meta:
        model = Notification
        fields = ["id", "kind", "title", "body", "url", "project", "read", "read_at", "created_at"]


class NotificationListApi(generics.GenericAPIView):
    serializer_class = NotificationOut

    @extend_schema(parameters=[OpenApiParameter("unread", bool, description="Only unread notifications.")],
                   responses=NotificationOut(many=True))
    def get(self, request):
        unread = False
        if (raw := single_param(request, "unread")) is not None:  # no boolean is a 400, not silently "all"
            try:
                unread = serializers.BooleanField().to_internal_value(raw)
            except serializers.ValidationError:
                raise serializers.ValidationError({"unread": ["true or false."]}) from None
        notifications = selectors.notification_list(user=request.user, unread_only=unread)
        page = self.paginate_queryset(notifications)
        response = self.get_paginated_response(NotificationOut(page, many=True).data)
        response["X-Unread-Count"] = str(selectors.unread_count(user=request.user))
        return response


class NotificationReadApi(APIView):
    @extend_schema(request=None, responses=NotificationOut)
    def post(self, request, notification_id):
        notification = selectors.notification_get(user=request.user, notification_id=notification_id)
        notification = services.notification_mark_read(user=request.user, notification=notification)
        return Response(NotificationOut(notification).data)


class NotificationReadAllApi(APIView):
    @extend_schema(request=None, responses=inline_serializer("NotificationsMarkedRead", {
        "marked": serializers.IntegerField(), "unread": serializers.IntegerField()}))
    def post(self, request):
        marked = services.notifications_mark_all_read(user=request.user)
        return Response({"marked": marked, "unread": selectors.unread_count(user=request.user)})


@extend_schema_field({"type": "string", "enum": list(services.WEBHOOK_EVENTS)})
class WebhookEventField(StrictCharField):
    """An event kind; the schema lists them, the service refuses others naming the `events` field."""


class WebhookIn(serializers.Serializer):
    url = StrictCharField(required=False, allow_blank=True, max_length=2000,
                          help_text="http(s) URL the studio POSTs to; internal addresses are refused.")
    enabled = StrictBooleanField(required=False)
    events = serializers.ListField(child=WebhookEventField(), required=False,
                                   help_text=f"Kinds to send (empty: all): {', '.join(services.WEBHOOK_EVENTS)}.")


class WebhookOut(serializers.ModelSerializer):
    signature_header = serializers.SerializerMethodField()

    class Meta:
        model = Webhook
        fields = ["url", "enabled", "events", "secret", "signature_header", "updated_at"]

    def get_signature_header(self, webhook: Webhook) -> str:
        return f"{services.SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of the raw body with the secret>"


class WebhookDeliveryOut(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = ["id", "event", "status", "attempts", "last_result", "created_at", "delivered_at"]


class WebhookApi(APIView):
    @extend_schema(responses=WebhookOut)
    def get(self, request):
        return Response(WebhookOut(services.webhook_get_or_create(user=request.user)).data)

    @extend_schema(request=WebhookIn, responses=WebhookOut)
    def patch(self, request):
        data = WebhookIn(data=request.data)
        data.is_valid(raise_exception=True)
        webhook = services.webhook_update(user=request.user, **data.validated_data)
        return Response(WebhookOut(webhook).data)

    @extend_schema(request=WebhookIn, responses=WebhookOut)
    def put(self, request):
        return self.patch(request)


class WebhookTestApi(APIView):
    @extend_schema(request=None, responses=WebhookDeliveryOut)
    def post(self, request):
        delivery = services.webhook_test(user=request.user)
        return Response(WebhookDeliveryOut(delivery).data)


class WebhookRotateSecretApi(APIView):
    @extend_schema(request=None, responses=WebhookOut)
    def post(self, request):
        return Response(WebhookOut(services.webhook_rotate_secret(user=request.user)).data)


class WebhookDeliveryListApi(generics.GenericAPIView):
    serializer_class = WebhookDeliveryOut

    @extend_schema(responses=WebhookDeliveryOut(many=True))
    def get(self, request):
        page = self.paginate_queryset(selectors.webhook_delivery_list(user=request.user))
        return self.get_paginated_response(WebhookDeliveryOut(page, many=True).data)
