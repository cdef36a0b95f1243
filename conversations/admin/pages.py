"""The connected Pages in the admin: the list (name, id, Instagram account, token state, last check),
"Connect a Page" by pasting a Page access token, each Page's own system prompt and handoff
message, and disconnecting. The work is conversations.services.pages'."""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from conversations.hours import BusinessHoursError, business_hours_parse
from conversations.models import Page
from conversations.services.pages import (
    PAGE_SETTINGS,
    PageConnectError,
    page_connect,
    page_disconnect,
    page_settings_update,
)


class PageConnectForm(forms.Form):
    # Never rendered back into the page, and never logged.
    access_token = forms.CharField(
        label="Page access token",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off", "size": 60}),
        help_text=(
            "A Page access token of the Page (Meta's Graph API Explorer, or your app's Messenger "
            "settings: Generate token). The service asks Facebook which Page it is for, subscribes the app "
            "to its messages and comments, and finds its Instagram account."
        ),
    )


class PageSettingsForm(forms.ModelForm):
    def clean_business_hours(self) -> str:
        """The hours as BUSINESS_HOURS writes them, or the error naming the part that is wrong."""
        text = self.cleaned_data["business_hours"]
        try:
            business_hours_parse(text, time_zone=settings.TIME_ZONE)
        except BusinessHoursError as error:
            raise forms.ValidationError(str(error)) from error
        return text


@admin.register(Page)
class PageAdmin(admin.ModelAdmin):
    form = PageSettingsForm
    list_display = ["name", "page_id", "instagram", "token_state", "token_checked_at", "connected"]
    list_filter = ["token_state"]
    search_fields = ["name", "=page_id", "instagram_username"]
    fields = [
        "name",
        "page_id",
        "instagram",
        "token_state",
        "token_checked_at",
        "token_error",
        "connected_at",
        "disconnected_at",
        *PAGE_SETTINGS,
    ]
    readonly_fields = [field for field in fields if field not in PAGE_SETTINGS]
    actions = ["disconnect"]

    @admin.display(description="Instagram", ordering="instagram_username")
    def instagram(self, page: Page) -> str:
        if not page.instagram_account_id:
            return "—"
        return f"@{page.instagram_username} ({page.instagram_account_id})"

    @admin.display(description="Connected", boolean=True, ordering="disconnected_at")
    def connected(self, page: Page) -> bool:
        return page.disconnected_at is None

    def has_delete_permission(self, request: HttpRequest, obj: Page | None = None) -> bool:
        return False  # disconnected, never deleted: its conversations and articles refer to it

    # Django's error reports show a POST's fields; the token must not be among them.
    @method_decorator(sensitive_post_parameters("access_token"))
    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        """ "Connect a Page": a token pasted, the Page connected (again) as `manage.py pages connect` does."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = PageConnectForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                page = page_connect(access_token=form.cleaned_data["access_token"])
            except PageConnectError as error:
                form.add_error("access_token", error.reason)
            else:
                self.log_addition(request, page, [{"added": {}}])
                instagram = (
                    f", with Instagram @{page.instagram_username}" if page.instagram_account_id else ""
                )
                self.message_user(request, f"Connected {page}{instagram}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:conversations_page_changelist"))
        context = {
            **self.admin_site.each_context(request),
            **(extra_context or {}),
            "opts": self.opts,
            "title": "Connect a Page",
            "form": form,
        }
        return TemplateResponse(request, "admin/conversations/page/connect.html", context)

    def save_model(self, request: HttpRequest, obj: Page, form: forms.ModelForm, change: bool) -> None:
        page_settings_update(page=obj)

    @admin.action(
        description="Disconnect: stop answering them (their conversations stay)", permissions=["change"]
    )
    def disconnect(self, request: HttpRequest, queryset: QuerySet[Page]) -> None:
        pages = list(queryset.filter(disconnected_at=None))
        for page in pages:
            page_disconnect(page_id=page.page_id)
            self.log_change(request, page, "Disconnected")
        self.message_user(request, f"{len(pages)} Page(s) disconnected.", messages.SUCCESS)
