"""Messenger's webhook: Meta's subscription handshake and its signed event deliveries.

Thin on purpose: check the signature on the raw body, parse it into
typed events, hand them to conversations.services.inbound, answer. Meta retries anything
but a 200, so a 200 is sent only once the events are stored; a 4xx only for requests a
retry could not fix.
"""

import functools
import hmac
import json
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from conversations.services.inbound import inbound_events_store
from messenger.parser import parse_webhook
from messenger.signature import signature_is_valid

logger = logging.getLogger(__name__)


@method_decorator(csrf_exempt, name="dispatch")
class MessengerWebhookView(View):
    http_method_names = ["get", "post"]

    def get(self, request: HttpRequest) -> HttpResponse:
        """Meta's subscription check: echo the challenge when the verify token matches."""
        token = request.GET.get("hub.verify_token", "")
        if (
            request.GET.get("hub.mode") == "subscribe"
            and settings.FACEBOOK_VERIFY_TOKEN
            and hmac.compare_digest(token.encode(), settings.FACEBOOK_VERIFY_TOKEN.encode())
        ):
            return HttpResponse(request.GET.get("hub.challenge", ""), content_type="text/plain")
        return _refusal(status=403, detail="verification failed")

    def post(self, request: HttpRequest) -> HttpResponse:
        if not settings.FACEBOOK_APP_SECRET:
            _log_missing_app_secret()
            return _refusal(status=403, detail="signatures cannot be checked")
        if not signature_is_valid(
            body=request.body,
            header=request.headers.get("X-Hub-Signature-256"),
            app_secret=settings.FACEBOOK_APP_SECRET,
        ):
            return _refusal(status=403, detail="invalid signature")
        try:
            # ValueError covers invalid JSON and UTF-8 as well as parser.MalformedEnvelope.
            events = parse_webhook(json.loads(request.body))
        except (ValueError, RecursionError) as error:
            return _refusal(status=400, detail=f"not a Messenger webhook: {error}")
        inbound_events_store(events=events)
        return HttpResponse("EVENT_RECEIVED", content_type="text/plain")


def _refusal(*, status: int, detail: str) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status)


@functools.cache
def _log_missing_app_secret() -> None:
    # Once per process: every POST is refused, and one line says why.
    logger.error("FACEBOOK_APP_SECRET is not set: refusing every webhook POST, since none can be verified.")
