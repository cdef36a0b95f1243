"""The job queue's pages (django-rq's, linked from the admin), for staff with its permission only.

django-rq's views check `is_staff` alone, yet they show failed jobs' tracebacks and arguments
(a person's words) and can empty a queue. Here every one of them needs django-rq's own "Access
admin page" permission (django_rq.admin): the Moderators group has it, superusers have every
permission, and other staff get 403.
"""

from collections.abc import Callable
from functools import wraps

from django.contrib import admin
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern
from django_rq.admin import QueueAdmin
from django_rq.models import Dashboard

PERMISSION = "django_rq.admin"
# django-rq's JSON stats and Prometheus metrics also answer a bearer RQ_API_TOKEN, checked by
# the views themselves: without the permission, a signed-in user counts as signed out there.
_TOKEN_VIEWS = {"django_rq_home_json", "django_rq_metrics"}


class JobQueueAdmin(QueueAdmin):
    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSION)

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.has_perm(PERMISSION)

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.has_perm(PERMISSION)

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> None:
        # The model has no table (django-rq's is unmanaged): the admin's object pages, asked for
        # one, say it does not exist instead of failing on the missing table.
        return None

    def get_urls(self) -> list[URLPattern]:
        return [
            URLPattern(
                pattern.pattern,
                _permission_required(pattern.callback, token_view=pattern.name in _TOKEN_VIEWS),
                pattern.default_args,
                pattern.name,
            )
            for pattern in super().get_urls()
        ]


def _permission_required(
    view: Callable[..., HttpResponse], *, token_view: bool
) -> Callable[..., HttpResponse]:
    @wraps(view)
    def guarded(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        # Someone signed out goes on to the view: the admin's login page, or the token's check.
        if request.user.is_authenticated and not request.user.has_perm(PERMISSION):
            if not token_view:
                raise PermissionDenied
            request.user = AnonymousUser()
        return view(request, *args, **kwargs)

    return guarded


# django_rq (before this app in INSTALLED_APPS) registered its own when RQ_SHOW_ADMIN_LINK is on.
if admin.site.is_registered(Dashboard):
    admin.site.unregister(Dashboard)
    admin.site.register(Dashboard, JobQueueAdmin)
