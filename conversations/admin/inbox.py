"""The staff's inbox: conversations as a triage list and as chat transcripts, with the
actions a support team needs (pause/resume the bot, reply, retry, forget a contact).

Admin code stays thin: reads come from conversations.selectors, writes go through
conversations.services; the admin only checks permissions and reports outcomes.
"""

from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator, smart_split, unescape_string_literal
from django.views.decorators.http import require_POST

from conversations.media.services import media_files_forget
from conversations.models import (
    ChannelIdentity,
    Contact,
    Conversation,
    Message,
    MessageAttachment,
    Page,
    SystemPrompt,
)
from conversations.selectors import (
    TRANSCRIPT_LIMIT,
    conversation_comments,
    conversation_list_with_flags,
    conversation_search,
    conversation_transcript,
    conversation_waited,
    conversations_waiting_count,
    duration_words,
    handoff_latest,
    messaging_window_text,
    system_prompt_current,
    system_prompt_history,
)
from conversations.services.conversations import contact_forget, conversation_bot_pause
from conversations.services.replies import conversation_hand_back, reply_retry
from conversations.services.staff import staff_reply_send, system_prompt_update
from messenger.errors import DeliveryError

PREVIEW_CHARS = 80
SEND_PERMISSION = "conversations.send_message"
# The files people sent are part of their messages.
MESSAGE_VIEW_PERMISSION = "conversations.view_message"
# Forgetting a person deletes their contact row, and everything cascades from it.
FORGET_PERMISSION = "conversations.delete_contact"


class StaffReplyForm(forms.Form):
    text = forms.CharField(
        label="Reply as staff",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Write to this person as the Page…"}),
    )


class BotStateFilter(admin.SimpleListFilter):
    title = "bot"
    parameter_name = "bot"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("active", "Active"), ("paused", "Paused")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in ("active", "paused"):
            return queryset.filter(bot_active=self.value() == "active")
        return queryset


class FlagFilter(admin.SimpleListFilter):
    """Filters on one of the EXISTS flags annotated by conversation_list_with_flags."""

    flag: str

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in ("yes", "no"):
            return queryset.filter(**{self.flag: self.value() == "yes"})
        return queryset


class WaitingForStaffFilter(admin.SimpleListFilter):
    """Handed over to staff (by the model, or the person's "Talk to a person") and not answered yet."""

    title = "waiting for staff"
    parameter_name = "waiting"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in ("yes", "no"):
            return queryset.filter(waiting_for_staff_since__isnull=self.value() == "no")
        return queryset


class PageFilter(admin.SimpleListFilter):
    """The Facebook Page a conversation is with (on Instagram: the Page the account is linked to)."""

    title = "Page"
    parameter_name = "page"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        pages = [(page.page_id, str(page)) for page in Page.objects.order_by("name", "page_id")]
        environment = settings.FACEBOOK_PAGE_ID
        if environment and environment not in dict(pages):
            pages.append((environment, f"FACEBOOK_PAGE_ACCESS_TOKEN's Page ({environment})"))
        return pages

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(identity__page_id=self.value())
        return queryset


class FailuresFilter(FlagFilter):
    title = "failed messages"
    parameter_name = "failed"
    flag = "has_failures"


class UnansweredFilter(FlagFilter):
    title = "waiting for a reply"
    parameter_name = "unanswered"
    flag = "is_unanswered"


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = [
        "contact_name",
        "channel",
        "psid",
        "last_message_preview",
        "last_activity_at",
        "bot_state",
        "flags",
    ]
    list_display_links = ["contact_name"]
    list_filter = [
        ("identity__channel", admin.ChoicesFieldListFilter),
        PageFilter,
        WaitingForStaffFilter,
        BotStateFilter,
        UnansweredFilter,
        FailuresFilter,
        "last_activity_at",
    ]
    # What the search box covers; conversation_search implements it with indexes.
    search_fields = ["identity__contact__name", "=identity__external_id", "messages__text"]
    search_help_text = "Search by contact name, PSID or message text."
    ordering = ["-last_activity_at", "-id"]
    # A full COUNT(*) of 100,000 rows on every page view buys nothing.
    show_full_result_count = False
    actions = ["pause_bot", "resume_bot"]
    change_form_template = "admin/conversations/conversation/change_form.html"
    change_list_template = "admin/conversations/conversation/change_list.html"

    class Media:
        css = {"all": ["conversations/admin/inbox.css"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return conversation_list_with_flags(conversations=super().get_queryset(request))

    def delete_model(self, request: HttpRequest, obj: Conversation) -> None:
        self.delete_queryset(request, Conversation.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        # The files people sent go with their messages.
        with transaction.atomic():
            media_files_forget(messages=Message.objects.filter(conversation__in=queryset))
            super().delete_queryset(request, queryset)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # conversations start when a person writes in

    def get_list_display(self, request: HttpRequest) -> list[str]:
        # The list of those waiting for staff says how long each has waited.
        if request.GET.get(WaitingForStaffFilter.parameter_name) == "yes":
            return [*self.list_display, "waited"]
        return self.list_display

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        return super().changelist_view(
            request, {**(extra_context or {}), "waiting_count": conversations_waiting_count()}
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Conversation], search_term: str
    ) -> tuple[QuerySet[Conversation], bool]:
        # A pasted PSID is found by one index probe, not by also scanning every message's text;
        # other digits (an order number, say) still search the messages.
        term = search_term.strip()
        if term.isdigit():
            by_psid = queryset.filter(identity__external_id=term)
            if by_psid.exists():
                return by_psid, False
        # Words split as Django's own search splits them ("quoted phrases" stay whole).
        terms = [
            unescape_string_literal(bit) if bit.startswith(('"', "'")) and bit[0] == bit[-1] else bit
            for bit in smart_split(search_term)
        ]
        return conversation_search(conversations=queryset, terms=terms), False

    # --- list columns ---------------------------------------------------------------------

    @admin.display(description="Contact", ordering="identity__contact__name")
    def contact_name(self, conversation: Conversation) -> str:
        contact = conversation.identity.contact
        if contact.picture_url:
            return format_html(
                '<img class="contact-picture" src="{}" alt=""> {}', contact.picture_url, contact
            )
        return str(contact)

    @admin.display(description="Channel", ordering="identity__channel")
    def channel(self, conversation: Conversation) -> str:
        return conversation.identity.get_channel_display()

    @admin.display(description="PSID", ordering="identity__external_id")
    def psid(self, conversation: Conversation) -> str:
        return conversation.identity.external_id

    @admin.display(description="Last message")
    def last_message_preview(self, conversation: Conversation) -> str:
        return Truncator(conversation.last_message_text).chars(PREVIEW_CHARS)

    @admin.display(description="Bot", ordering="bot_active")
    def bot_state(self, conversation: Conversation) -> str:
        return "Active" if conversation.bot_active else "Paused"

    @admin.display(description="Waited (business hours)", ordering="waiting_for_staff_since")
    def waited(self, conversation: Conversation) -> str:
        waited = conversation_waited(conversation=conversation, now=timezone.now())
        return "" if waited is None else duration_words(waited)

    @admin.display(description="Flags")
    def flags(self, conversation: Conversation) -> str:
        badges = [
            (css, label)
            for css, label, shown in [
                ("waiting", "Waiting for staff", conversation.waiting_for_staff_since is not None),
                ("unanswered", "Unanswered", conversation.is_unanswered),
                ("failed", "Failed", conversation.has_failures),
            ]
            if shown
        ]
        return format_html_join(" ", '<span class="badge badge-{}">{}</span>', badges)

    # --- bulk actions ---------------------------------------------------------------------

    @admin.action(description="Pause the bot (staff answer)", permissions=["change"])
    def pause_bot(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        for conversation in queryset:
            conversation_bot_pause(conversation=conversation, by=request.user)
        self.message_user(request, f"Bot paused in {len(queryset)} conversation(s).", messages.SUCCESS)

    @admin.action(description="Resume the bot", permissions=["change"])
    def resume_bot(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        asked = sum(conversation_hand_back(conversation=conversation) for conversation in queryset)
        self.message_user(
            request,
            f"Bot resumed in {len(queryset)} conversation(s)"
            + (f"; {asked} person(s) asked how we did." if asked else "."),
            messages.SUCCESS,
        )

    # --- the conversation page ------------------------------------------------------------

    def get_urls(self) -> list:
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/reply/", view(self.reply_view), name="{}_{}_reply".format(*info)),
            path("<path:object_id>/bot/", view(self.bot_view), name="{}_{}_bot".format(*info)),
            path("<path:object_id>/forget/", view(self.forget_view), name="{}_{}_forget".format(*info)),
            path(
                "<path:object_id>/messages/<int:message_id>/retry/",
                view(self.retry_view),
                name="{}_{}_retry".format(*info),
            ),
            path(
                "<path:object_id>/media/<int:attachment_id>/",
                view(self.media_view),
                name="{}_{}_media".format(*info),
            ),
        ] + super().get_urls()

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        if request.method == "POST":
            # Nothing on the page is a form field (a stale save would undo a pause); its
            # forms post to the action views below.
            return HttpResponseRedirect(request.path)
        return super().change_view(request, object_id, form_url, extra_context)

    def get_readonly_fields(self, request: HttpRequest, obj: Conversation | None = None) -> list[str]:
        return [field.name for field in self.opts.fields]

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Conversation | None = None,
    ) -> HttpResponse:
        transcript = conversation_transcript(conversation=obj)
        context.update(
            # The page is about a person, not a form to change: their name is the heading.
            title=str(obj.identity.contact),
            subtitle=None,
            conversation=obj,
            contact=obj.identity.contact,
            # The comments whose private replies started (or went to) this conversation.
            comments=conversation_comments(conversation=obj),
            transcript=[(message, attachment_links(message)) for message in transcript],
            transcript_truncated=len(transcript) == TRANSCRIPT_LIMIT,
            reply_form=StaffReplyForm(),
            # A console conversation is an operator trying the bot: nobody to write to.
            can_send=request.user.has_perm(SEND_PERMISSION) and _on_meta(obj),
            window=messaging_window_text(conversation=obj),
            waited=self.waited(obj),
            handoff=handoff_latest(conversation=obj),
            can_change=self.has_change_permission(request, obj),
            can_forget=request.user.has_perm(FORGET_PERMISSION),
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    @staticmethod
    def _conversation_or_404(object_id: str) -> Conversation:
        return get_object_or_404(
            Conversation.objects.select_related("identity__contact"), pk=unquote(object_id)
        )

    @staticmethod
    def _back_to(conversation: Conversation) -> HttpResponseRedirect:
        return HttpResponseRedirect(
            reverse("admin:conversations_conversation_change", args=[conversation.pk]) + "#reply"
        )

    @method_decorator(require_POST)
    def reply_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        _require(request.user.has_perm(SEND_PERMISSION))
        conversation = self._conversation_or_404(object_id)
        _require(_on_meta(conversation))
        form = StaffReplyForm(request.POST)
        if not form.is_valid():
            self.message_user(request, "The reply is empty: nothing was sent.", messages.ERROR)
            return self._back_to(conversation)
        try:
            staff_reply_send(conversation=conversation, text=form.cleaned_data["text"], sent_by=request.user)
        except DeliveryError as error:
            self.message_user(request, f"Not delivered: {error.reason}", messages.ERROR)
        else:
            self.message_user(request, "Reply sent.", messages.SUCCESS)
        return self._back_to(conversation)

    @method_decorator(require_POST)
    def bot_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        conversation = self._conversation_or_404(object_id)
        _require(self.has_change_permission(request, conversation))
        if request.POST.get("bot") == "pause":
            conversation_bot_pause(conversation=conversation, by=request.user)
            self.message_user(request, "Bot paused: it will not answer this person until resumed.")
        elif conversation_hand_back(conversation=conversation):
            self.message_user(
                request, "Bot resumed: it answers this person's next message, and asks them how we did."
            )
        else:
            self.message_user(request, "Bot resumed: it answers this person's next message.")
        return self._back_to(conversation)

    @method_decorator(require_POST)
    def retry_view(self, request: HttpRequest, object_id: str, message_id: int) -> HttpResponse:
        _require(request.user.has_perm(SEND_PERMISSION))
        conversation = self._conversation_or_404(object_id)
        _require(_on_meta(conversation))
        message = get_object_or_404(conversation.messages, pk=message_id, status=Message.Status.FAILED)
        if not conversation.bot_active:
            self.message_user(request, "The bot is paused: resume it first, then retry.", messages.WARNING)
            return self._back_to(conversation)
        try:
            job_id = reply_retry(message=message)
        except ValueError as error:
            self.message_user(request, str(error), messages.ERROR)
        else:
            self.message_user(
                request,
                "Retry queued: the bot answers again shortly."
                if job_id
                else "The job queue is unreachable: the retry starts by itself once it is back.",
                messages.SUCCESS if job_id else messages.WARNING,
            )
        return self._back_to(conversation)

    def media_view(self, request: HttpRequest, object_id: str, attachment_id: int) -> HttpResponse:
        """A file a person sent, as kept (conversations.media), for staff who may read messages.

        Only audio, images and video are shown in the page; anything else is a download. The
        file came from outside: it may not run as a page of ours (sandboxed, never sniffed).
        """
        _require(request.user.has_perm(MESSAGE_VIEW_PERMISSION))
        attachment = get_object_or_404(
            MessageAttachment.objects.exclude(file=""),
            pk=attachment_id,
            message__conversation_id=unquote(object_id),
        )
        try:
            kept = attachment.file.open("rb")
        except OSError as error:  # removed from the storage behind our back
            raise Http404("The file is no longer kept.") from error
        inline = attachment.content_type.split("/")[0] in ("audio", "image", "video")
        response = FileResponse(
            kept,
            content_type=attachment.content_type if inline else "application/octet-stream",
            as_attachment=not inline,
            filename=attachment.file.name.rsplit("/", 1)[-1],
        )
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        response["Cache-Control"] = "private, max-age=3600"
        return response

    def forget_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        _require(request.user.has_perm(FORGET_PERMISSION))
        conversation = self._conversation_or_404(object_id)
        contact = conversation.identity.contact
        if request.method == "POST":
            contact_forget(contact=contact)
            self.message_user(request, f"{contact} and all their messages were deleted.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:conversations_conversation_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Forget {contact}?",
            "conversation": conversation,
            "contact": contact,
            "message_count": conversation.messages.count(),
        }
        return TemplateResponse(request, "admin/conversations/conversation/forget.html", context)


def _on_meta(conversation: Conversation) -> bool:
    return conversation.identity.channel in ChannelIdentity.META_CHANNELS


def _require(allowed: bool) -> None:
    if not allowed:
        raise PermissionDenied


def attachment_links(message: Message) -> list[dict[str, Any]]:
    """The attachments `message` carries, as links safe to render (http/https URLs only), each with
    how the bot read it (`read`: transcript or description, or why it could not) and the kept
    file's address on our side (`file_url`) while it is kept (conversations.media)."""
    attachments = message.attachments if isinstance(message.attachments, list) else []
    read = {attachment.position: attachment for attachment in message.media.all()} if attachments else {}
    links = []
    for position, attachment in enumerate(attachments):
        url = attachment.get("url") if isinstance(attachment, dict) else None
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            continue
        kind = str(attachment.get("type") or "file")
        kept = read.get(position)
        links.append(
            {
                "url": url,
                "kind": kind,
                "is_image": kind in ("image", "sticker"),
                "title": attachment.get("title") or kind,
                "read": kept,
                "file_url": reverse(
                    "admin:conversations_conversation_media", args=[message.conversation_id, kept.pk]
                )
                if kept and kept.file
                else "",
            }
        )
    return links


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["__str__", "created_at"]
    search_fields = ["name", "=identities__external_id"]
    date_hierarchy = "created_at"

    def delete_model(self, request: HttpRequest, obj: Contact) -> None:
        contact_forget(contact=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Contact]) -> None:
        for contact in queryset:
            contact_forget(contact=contact)


@admin.register(ChannelIdentity)
class ChannelIdentityAdmin(admin.ModelAdmin):
    list_display = ["external_id", "channel", "page_id", "contact", "created_at"]
    list_filter = ["channel"]
    search_fields = ["=external_id", "contact__name"]
    list_select_related = ["contact"]
    raw_id_fields = ["contact"]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["__str__", "role", "status", "conversation", "created_at"]
    list_filter = ["role", "status", "created_at"]
    search_fields = ["text", "=external_id"]
    list_select_related = ["conversation__identity__contact"]
    raw_id_fields = ["conversation", "reply_to", "sent_by"]
    show_full_result_count = False

    def delete_model(self, request: HttpRequest, obj: Message) -> None:
        self.delete_queryset(request, Message.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        # The files people sent go with their messages.
        with transaction.atomic():
            media_files_forget(messages=queryset)
            super().delete_queryset(request, queryset)


@admin.register(SystemPrompt)
class SystemPromptAdmin(admin.ModelAdmin):
    """Editing the prompt adds a version; saved versions are never changed, they are history."""

    list_display = ["created_at", "created_by", "preview", "in_use"]
    fields = ["text"]

    @admin.display(description="Prompt")
    def preview(self, prompt: SystemPrompt) -> str:
        return Truncator(prompt.text).chars(120)

    @admin.display(description="In use", boolean=True)
    def in_use(self, prompt: SystemPrompt) -> bool:
        return prompt.in_use

    def get_queryset(self, request: HttpRequest) -> QuerySet[SystemPrompt]:
        return system_prompt_history(prompts=super().get_queryset(request))

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"text": system_prompt_current()}

    def has_change_permission(self, request: HttpRequest, obj: SystemPrompt | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SystemPrompt | None = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: SystemPrompt, form: forms.ModelForm, change: bool
    ) -> None:
        saved = system_prompt_update(text=form.cleaned_data["text"], created_by=request.user)
        obj.pk, obj.created_at, obj.created_by = saved.pk, saved.created_at, saved.created_by
