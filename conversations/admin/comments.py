"""Comments in the admin: every comment the service stored (COMMENT_REPLIES on), with what was
replied (privately and publicly), when, and why not. Read only: the service writes them
(conversations.services.comments); forgetting the person deletes theirs."""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from conversations.admin.inbox import PageFilter
from conversations.models import Comment

PREVIEW_CHARS = 80


class CommentPageFilter(PageFilter):
    """The Page a comment is on (an Instagram comment: the Page the account is linked to)."""

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(page_id=self.value())
        return queryset


@admin.register(Comment)
class CommentAdmin(admin.ModelAdmin):
    list_display = [
        "commented_at",
        "platform",
        "post",
        "person",
        "comment_text",
        "replied",
        "reply_sent_at",
        "outcome",
        "conversation_link",
    ]
    list_display_links = ["commented_at"]
    list_filter = ["status", "platform", CommentPageFilter, "public_reply_status", "received_at"]
    search_fields = ["text", "author_name", "=author_id", "=comment_id", "=post_id"]
    search_help_text = "Search by text, person, or a comment's, post's or person's id."
    date_hierarchy = "received_at"
    show_full_result_count = False
    list_select_related = ["conversation__identity__contact"]
    fields = [
        "platform",
        "page_id",
        "post_id",
        "comment_id",
        "parent_id",
        "author_name",
        "author_id",
        "text",
        "commented_at",
        "received_at",
        "status",
        "reason",
        "reply_text",
        "handoff_reason",
        "reply_sent_at",
        "reply_mid",
        "knowledge_articles",
        "public_reply_text",
        "public_reply_status",
        "public_reply_id",
        "public_reply_error",
        "conversation_link",
    ]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # people make comments

    def has_change_permission(self, request: HttpRequest, obj: Comment | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Comment | None = None) -> bool:
        return False  # forgetting the person deletes them, tombstone included

    @admin.display(description="Post", ordering="post_id")
    def post(self, comment: Comment) -> str:
        return comment.post_id or "—"

    @admin.display(description="Person", ordering="author_name")
    def person(self, comment: Comment) -> str:
        return comment.author_name or comment.author_id

    @admin.display(description="Comment")
    def comment_text(self, comment: Comment) -> str:
        return Truncator(comment.text).chars(PREVIEW_CHARS)

    @admin.display(description="Replied")
    def replied(self, comment: Comment) -> str:
        parts = [Truncator(comment.reply_text).chars(PREVIEW_CHARS)] if comment.reply_text else []
        if comment.public_reply_status == Comment.PublicReply.POSTED:
            parts.append(f"Public: {Truncator(comment.public_reply_text).chars(PREVIEW_CHARS)}")
        return " · ".join(parts) or "—"

    @admin.display(description="Status", ordering="status")
    def outcome(self, comment: Comment) -> str:
        if comment.reason:
            return f"{comment.get_status_display()}: {comment.reason}"
        return comment.get_status_display()

    @admin.display(description="Conversation")
    def conversation_link(self, comment: Comment) -> str:
        if comment.conversation is None:
            return "—"
        url = reverse("admin:conversations_conversation_change", args=[comment.conversation_id])
        return format_html('<a href="{}">{}</a>', url, comment.conversation.identity.contact)
