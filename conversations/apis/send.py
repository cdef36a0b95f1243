"""POST /api/integrations/messenger/send: other systems (and staff) write to a person as a Page."""

import logging

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from redis.exceptions import RedisError
from rest_framework import parsers, serializers, status
from rest_framework.exceptions import ParseError
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from conversations.pages import PageChoiceError
from conversations.services.staff import staff_message_send
from messenger.errors import (
    DeliveryError,
    InvalidTokenError,
    OutsideWindowError,
    PermanentDeliveryError,
    RecipientUnreachableError,
    TransientDeliveryError,
)

logger = logging.getLogger(__name__)

# Long texts are split into several messages; this bounds one request to a few of them.
TEXT_MAX_CHARS = 20_000

# What each kind of delivery failure means for the caller. Checked in order: subclasses first.
DELIVERY_FAILURES: list[tuple[type[DeliveryError], int, str]] = [
    # Refused before asking Meta: too long since the person last wrote (messenger.window).
    (OutsideWindowError, status.HTTP_422_UNPROCESSABLE_ENTITY, "outside_window"),
    # The person blocked the Page, left, or is outside the 24-hour window: retrying won't help.
    (RecipientUnreachableError, status.HTTP_422_UNPROCESSABLE_ENTITY, "recipient_unreachable"),
    # Our page token is wrong: Facebook refused us, the caller did nothing wrong.
    (InvalidTokenError, status.HTTP_502_BAD_GATEWAY, "invalid_page_token"),
    (PermanentDeliveryError, status.HTTP_502_BAD_GATEWAY, "delivery_failed"),
    (TransientDeliveryError, status.HTTP_503_SERVICE_UNAVAILABLE, "facebook_unavailable"),
]
RETRY_AFTER_SECONDS = 30


class CanSendMessages(BasePermission):
    """A user given "Can send messages" (staff or an integration's account): the admin's rule too."""

    message = "Sending messages needs the “Can send messages to contacts” permission."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm("conversations.send_message"))


class JSONParser(parsers.JSONParser):
    """DRF's, with JSON nested deeper than Python's recursion limit a 400 instead of a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type=media_type, parser_context=parser_context)
        except RecursionError as error:
            raise ParseError("JSON parse error - nested too deeply") from error


class MessageSendInputSerializer(serializers.Serializer):
    recipient_id = serializers.RegexField(
        # ASCII digits only: \d also takes other scripts' digits (Arabic-Indic, say), no PSID.
        r"^[0-9]{1,64}$",
        help_text="The person's page-scoped ID (PSID), as received in the webhook's sender.id.",
        error_messages={"invalid": "A PSID is a string of digits."},
    )
    page_id = serializers.RegexField(
        r"^[0-9]{1,64}$",
        required=False,
        help_text=(
            "The Facebook Page to send as (its id, as `manage.py pages list` shows it). Needed only when "
            "more than one Page is connected; a person who wrote on Instagram is answered there."
        ),
        error_messages={"invalid": "A Page id is a string of digits."},
    )
    text = serializers.CharField(
        max_length=TEXT_MAX_CHARS,
        help_text=(
            "The message. Over 2000 characters it is sent as several messages, split at paragraph, "
            "sentence or word boundaries."
        ),
    )


class MessageSendOutputSerializer(serializers.Serializer):
    recipient_id = serializers.CharField()
    message_id = serializers.CharField(
        help_text="Messenger's id of the message (`m_…`); for a text sent in several parts, the first part's."
    )


class DeliveryErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="Why the message was not delivered, readable by a person.")
    code = serializers.ChoiceField(choices=[code for _, _, code in DELIVERY_FAILURES])
    meta_code = serializers.IntegerField(
        allow_null=True, help_text="Meta's Graph API error code, when it gave one."
    )
    meta_subcode = serializers.IntegerField(
        allow_null=True, help_text="Meta's error subcode, when it gave one."
    )


def _delivery_failure_response(error: DeliveryError) -> Response:
    http_status, code = next(
        (http_status, code) for kind, http_status, code in DELIVERY_FAILURES if isinstance(error, kind)
    )
    body = DeliveryErrorSerializer(
        {"detail": error.reason, "code": code, "meta_code": error.code, "meta_subcode": error.subcode}
    ).data
    headers = (
        {"Retry-After": str(RETRY_AFTER_SECONDS)}
        if http_status == status.HTTP_503_SERVICE_UNAVAILABLE
        else None
    )
    return Response(body, status=http_status, headers=headers)


def _response_example(name: str, *, status_code: int, value: dict) -> OpenApiExample:
    return OpenApiExample(name, response_only=True, status_codes=[str(status_code)], value=value)


class SendRateThrottle(ScopedRateThrottle):
    """The `messenger_send` rate per user, counted in Redis (the cache) across all web processes.

    Fail-open like the webhook's rate limiter: a Redis outage must not turn sends into 500s.
    """

    def allow_request(self, request: Request, view: APIView) -> bool:
        try:
            return super().allow_request(request, view)
        except RedisError as error:
            logger.warning("Send throttle unavailable, letting the request through: %s", error)
            return True


class MessageSendApi(APIView):
    parser_classes = [JSONParser, parsers.FormParser, parsers.MultiPartParser]
    permission_classes = [CanSendMessages]
    throttle_classes = [SendRateThrottle]
    throttle_scope = "messenger_send"

    @extend_schema(
        operation_id="messenger_send",
        summary="Send a message to a person on Messenger",
        description=(
            "Sends `text` to a person, as the Page, and stores it in their conversation as a staff "
            "message (created on the first message Meta accepts for someone who has not written through "
            "this service). Unless STAFF_REPLY_PAUSES_BOT is off, the bot is paused for that conversation "
            "so it does not talk over a human. Messenger allows messages within 24 hours of the person's "
            "last message; after that, up to 7 days, only with the HUMAN_AGENT tag, which the service adds "
            "when FACEBOOK_HUMAN_AGENT_TAG is on. Otherwise it refuses before asking Meta: 422, "
            "`outside_window`."
        ),
        request=MessageSendInputSerializer,
        responses={
            200: MessageSendOutputSerializer,
            400: OpenApiResponse(
                description="Invalid input; field errors by field name (`page_id`: missing while several "
                "Pages are connected, or not a connected Page)."
            ),
            401: OpenApiResponse(description="No or invalid credentials."),
            403: OpenApiResponse(
                description="Authenticated, but without the “Can send messages” permission."
            ),
            422: OpenApiResponse(
                DeliveryErrorSerializer,
                description="Outside Messenger's window (`outside_window`), or Facebook says the person cannot be reached.",
            ),
            429: OpenApiResponse(description="Too many requests; see Retry-After."),
            502: OpenApiResponse(
                DeliveryErrorSerializer, description="Facebook refused the message (e.g. bad page token)."
            ),
            503: OpenApiResponse(
                DeliveryErrorSerializer, description="Facebook is unavailable; try again later."
            ),
        },
        examples=[
            OpenApiExample(
                "Send a message",
                request_only=True,
                value={"recipient_id": "6543210987654321", "text": "Hi! Your order has shipped."},
            ),
            _response_example(
                "Sent",
                status_code=200,
                value={"recipient_id": "6543210987654321", "message_id": "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM"},
            ),
            _response_example(
                "Invalid input",
                status_code=400,
                value={
                    "recipient_id": ["A PSID is a string of digits."],
                    "text": ["This field may not be blank."],
                },
            ),
            _response_example(
                "Outside the window",
                status_code=422,
                value={
                    "detail": "Not sent: the person last wrote more than 7 days ago, and Messenger allows no "
                    "message then.",
                    "code": "outside_window",
                    "meta_code": None,
                    "meta_subcode": None,
                },
            ),
            _response_example(
                "Bad page token",
                status_code=502,
                value={
                    "detail": "Invalid OAuth access token - Cannot parse access token (HTTP 400, code 190)",
                    "code": "invalid_page_token",
                    "meta_code": 190,
                    "meta_subcode": None,
                },
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = MessageSendInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        psid = serializer.validated_data["recipient_id"]
        try:
            messages = staff_message_send(
                psid=psid,
                text=serializer.validated_data["text"],
                sent_by=request.user,
                page_id=serializer.validated_data.get("page_id"),
            )
        except PageChoiceError as error:
            return Response({"page_id": [str(error)]}, status=status.HTTP_400_BAD_REQUEST)
        except DeliveryError as error:
            return _delivery_failure_response(error)
        return Response(
            MessageSendOutputSerializer({"recipient_id": psid, "message_id": messages[0].external_id}).data
        )
