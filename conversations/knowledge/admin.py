"""The knowledge base in the admin: the articles the bot answers from, and the questions it met
without one, each a click away from the article that would answer it."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from conversations.knowledge.services import (
    knowledge_article_save,
    knowledge_articles_delete,
    unanswered_question_resolve,
)
from conversations.models import KnowledgeArticle, UnansweredQuestion

PREVIEW_CHARS = 120
QUESTION_HELP_CHARS = 500


@admin.register(KnowledgeArticle)
class KnowledgeArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "approved", "page", "source", "updated_at"]
    list_filter = ["approved", "page"]
    search_fields = ["title", "body"]
    fields = ["title", "body", "approved", "page", "source", "updated_at"]
    list_select_related = ["page"]
    readonly_fields = ["source", "updated_at"]
    actions = ["approve", "unapprove"]

    def formfield_for_dbfield(self, db_field, request: HttpRequest, **kwargs: Any) -> forms.Field:
        if db_field.name == "body":
            kwargs["widget"] = forms.Textarea(attrs={"rows": 16, "cols": 100})
            kwargs["help_text"] = (
                "Plain text or Markdown. The bot gives approved articles to anyone who asks: write "
                "no names, phone numbers, order numbers or anything else about a person."
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_form(self, request: HttpRequest, obj: KnowledgeArticle | None = None, **kwargs: Any):
        """From an unanswered question: the question is shown beside the title, never put in it.

        A person's words saved as a title would be given to everyone else the bot answers, and
        stay after that person is forgotten.
        """
        form = super().get_form(request, obj, **kwargs)
        question = _question_from(request) if obj is None else None
        if question is not None:
            # The form class is made for this request, its fields with it: changing one is local.
            form.base_fields["title"].help_text = format_html(
                "Written for the question “{}”. Give the article a title of your own, the topic "
                "in a few words: the question is not saved with it.",
                Truncator(" ".join(question.text.split())).chars(QUESTION_HELP_CHARS),
            )
        return form

    def save_model(
        self, request: HttpRequest, obj: KnowledgeArticle, form: forms.ModelForm, change: bool
    ) -> None:
        knowledge_article_save(article=obj)
        question = _question_from(request)
        if question is not None and not change:
            unanswered_question_resolve(question=question, article=obj)

    def delete_model(self, request: HttpRequest, obj: KnowledgeArticle) -> None:
        knowledge_articles_delete(articles=KnowledgeArticle.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[KnowledgeArticle]) -> None:
        knowledge_articles_delete(articles=queryset)

    @admin.action(description="Approve: the bot may answer from them", permissions=["change"])
    def approve(self, request: HttpRequest, queryset: QuerySet[KnowledgeArticle]) -> None:
        self._approval_set(request, queryset, approved=True)

    @admin.action(description="Unapprove: the bot stops using them", permissions=["change"])
    def unapprove(self, request: HttpRequest, queryset: QuerySet[KnowledgeArticle]) -> None:
        self._approval_set(request, queryset, approved=False)

    def _approval_set(
        self, request: HttpRequest, queryset: QuerySet[KnowledgeArticle], *, approved: bool
    ) -> None:
        changed = [article for article in queryset if article.approved != approved]
        for article in changed:
            article.approved = approved
            knowledge_article_save(article=article)
            self.log_change(request, article, [{"changed": {"fields": ["Approved"]}}])
        state = "approved" if approved else "unapproved"
        self.message_user(request, f"{len(changed)} article(s) {state}.", messages.SUCCESS)


class ArticleWrittenFilter(admin.SimpleListFilter):
    title = "article written"
    parameter_name = "written"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("no", "Not yet"), ("yes", "Yes")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in ("yes", "no"):
            return queryset.filter(article__isnull=self.value() == "no")
        return queryset


@admin.register(UnansweredQuestion)
class UnansweredQuestionAdmin(admin.ModelAdmin):
    """Read and dismiss (delete); an article is written from a question, not the question edited."""

    list_display = ["question", "asked_at", "conversation", "article_link"]
    list_filter = [ArticleWrittenFilter, "asked_at"]
    search_fields = ["text"]
    list_select_related = ["message__conversation__identity__contact", "article"]
    fields = ["text", "asked_at", "conversation", "article_link"]
    readonly_fields = fields
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the bot lists them

    @admin.display(description="Question")
    def question(self, question: UnansweredQuestion) -> str:
        return Truncator(" ".join(question.text.split())).chars(PREVIEW_CHARS)

    @admin.display(description="Conversation")
    def conversation(self, question: UnansweredQuestion) -> str:
        conversation = question.message.conversation
        url = reverse("admin:conversations_conversation_change", args=[conversation.pk])
        return format_html(
            '<a href="{}#message-{}">{}</a>', url, question.message_id, conversation.identity.contact
        )

    @admin.display(description="Article")
    def article_link(self, question: UnansweredQuestion) -> str:
        if question.article is not None:
            url = reverse("admin:conversations_knowledgearticle_change", args=[question.article_id])
            return format_html('<a href="{}">{}</a>', url, question.article)
        url = reverse("admin:conversations_knowledgearticle_add") + f"?question={question.pk}"
        return format_html('<a class="addlink" href="{}">Write an article</a>', url)


def _question_from(request: HttpRequest) -> UnansweredQuestion | None:
    question_id = request.GET.get("question", "")
    return UnansweredQuestion.objects.filter(pk=question_id).first() if question_id.isdigit() else None
