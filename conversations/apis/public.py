"""The service's public pages: its health, and the privacy and data deletion pages Meta asks apps for."""

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from conversations.models import Tombstone
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
        {
            "contact_email": settings.CONTACT_EMAIL,
            "history_limit": settings.LLM_HISTORY_LIMIT,
            "tombstone_days": Tombstone.RETENTION.days,
        },
    )


@require_safe
def data_deletion(request):
    """The "Data Deletion Instructions URL" Meta asks apps for."""
    return render(
        request,
        "data_deletion.html",
        {"contact_email": settings.CONTACT_EMAIL, "tombstone_days": Tombstone.RETENTION.days},
    )
