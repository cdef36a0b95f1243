from django.conf import settings
from django.http import HttpResponse, HttpResponseForbidden, JsonResponse
from django.shortcuts import render
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST

from conversations.metrics import metrics_render
from conversations.selectors import health_failures


@never_cache
@require_safe
def health(request):
    failures = health_failures()
    if failures:
        return JsonResponse({"status": "unavailable", "failing": failures}, status=503)
    return JsonResponse({"status": "ok"})


@require_safe
def privacy(request):
    return render(
        request,
        "privacy.html",
        {"contact_email": settings.CONTACT_EMAIL, "history_limit": settings.LLM_HISTORY_LIMIT},
    )


@require_safe
def data_deletion(request):
    """The "Data Deletion Instructions URL" Meta asks apps for."""
    return render(request, "data_deletion.html", {"contact_email": settings.CONTACT_EMAIL})


@never_cache
@require_safe
def metrics(request):
    """Prometheus's scrape target: for a bearer METRICS_TOKEN or a staff member's session."""
    if not (_metrics_token_given(request) or (request.user.is_active and request.user.is_staff)):
        return HttpResponseForbidden(
            "Forbidden: send Authorization: Bearer <METRICS_TOKEN>, or sign in to the admin as staff.\n",
            content_type="text/plain",
        )
    return HttpResponse(metrics_render(), content_type=CONTENT_TYPE_LATEST)


def _metrics_token_given(request) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return bool(settings.METRICS_TOKEN) and scheme.lower() == "bearer" and constant_time_compare(
        token.strip(), settings.METRICS_TOKEN
    )
