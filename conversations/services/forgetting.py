"""Forgetting a person leaves no trace of them, but one on purpose.

Deleting the contact deletes their identities, conversations, messages, handoffs, the
unanswered questions staff were shown, and the comments whose private replies went to them (the
database cascades). The files they sent (voice messages, images) are deleted from the storage
once that has committed. Three things hold their words elsewhere and are cleaned here: their other
comments (by the same author id: comments that got no private reply, e.g. ignored ones, and on
Instagram any comment of their IGSID), the admin's action log (LogEntry keeps each object's
name, e.g. the contact's, and the message's text) and a knowledge article whose title is their
question as "Write an article" once proposed it (the bot would give it to anyone).

What stays, on purpose, is a tombstone (conversations.models.Tombstone): keyed hashes of their
identity and of their messages' and comments' ids, so that Meta's late retries and replayed
deliveries of their old messages and comments are ignored instead of re-creating them. Tombstones go after
Tombstone.RETENTION (tombstones_purge, hourly).
"""

import logging

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import CharField, Expression, Model, Q, QuerySet, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone
from django.utils.text import Truncator, capfirst

from conversations.knowledge.services import knowledge_article_save
from conversations.media.services import media_files_forget
from conversations.models import (
    ChannelIdentity,
    Comment,
    Contact,
    Conversation,
    Handoff,
    KnowledgeArticle,
    Message,
    Tombstone,
    UnansweredQuestion,
)

logger = logging.getLogger(__name__)

_TITLE_MAX_CHARS = KnowledgeArticle._meta.get_field("title").max_length


def contact_traces_erase(*, contact: Contact) -> None:
    """Leave a tombstone of `contact` and erase their words outside their own rows, in the
    transaction of contact_forget, which then deletes the contact."""
    identities = ChannelIdentity.objects.filter(contact=contact)
    conversations = Conversation.objects.filter(identity__in=identities)
    messages = Message.objects.filter(conversation__in=conversations)
    questions = UnansweredQuestion.objects.filter(message__in=messages)
    comments = Comment.objects.filter(
        pk__in=list(_comments_of(identities=identities, conversations=conversations))
    )
    _tombstones_record(identities=identities, messages=messages, comments=comments)
    media_files_forget(messages=messages)
    articles = _articles_quoting_unapprove(questions=questions)
    for model, rows in (
        (Contact, Contact.objects.filter(pk=contact.pk)),
        (ChannelIdentity, identities),
        (Conversation, conversations),
        (Message, messages),
        (UnansweredQuestion, questions),
        (Handoff, Handoff.objects.filter(conversation__in=conversations)),
        (Comment, comments),
    ):
        # "Contact #12 (forgotten)": the entry still says which object it was about.
        name = Concat(
            Value(f"{capfirst(model._meta.verbose_name)} #"),
            "object_id",
            Value(" (forgotten)"),
            output_field=CharField(),
        )
        _admin_log_redact(model=model, rows=rows, name=name)
    for article in articles:
        _admin_log_redact(
            model=KnowledgeArticle,
            rows=KnowledgeArticle.objects.filter(pk=article.pk),
            name=Value(article.title),
        )
    comments.delete()


def tombstones_purge() -> int:
    """Delete the tombstones older than Tombstone.RETENTION; how many."""
    deleted, _ = Tombstone.objects.filter(created_at__lt=timezone.now() - Tombstone.RETENTION).delete()
    return deleted


def _comments_of(
    *, identities: QuerySet[ChannelIdentity], conversations: QuerySet[Conversation]
) -> QuerySet[Comment]:
    """The ids of the person's comments: those their private replies went to, every comment by
    the same authors on the same Pages, and on Instagram every comment of their IGSID."""
    authors = Q(conversation__in=conversations)
    linked = Comment.objects.filter(conversation__in=conversations)
    for platform, page_id, author_id in linked.values_list("platform", "page_id", "author_id").distinct():
        authors |= Q(platform=platform, page_id=page_id, author_id=author_id)
    for page_id, external_id in identities.filter(channel=ChannelIdentity.Channel.INSTAGRAM).values_list(
        "page_id", "external_id"
    ):
        authors |= Q(platform=ChannelIdentity.Channel.INSTAGRAM, page_id=page_id, author_id=external_id)
    return Comment.objects.filter(authors).values_list("pk", flat=True)


def _tombstones_record(
    *, identities: QuerySet[ChannelIdentity], messages: QuerySet[Message], comments: QuerySet[Comment]
) -> None:
    """One tombstone per identity, per message id and per comment id; forgetting someone again
    renews theirs."""
    digests = (
        [
            Tombstone.identity_digest(channel=channel, page_id=page_id, external_id=external_id)
            for channel, page_id, external_id in identities.values_list("channel", "page_id", "external_id")
        ]
        + [
            Tombstone.message_digest(external_id=external_id)
            for external_id in messages.filter(external_id__isnull=False)
            .values_list("external_id", flat=True)
            .iterator()
        ]
        + [
            # Comment ids never look like mids, so they share the messages' kind of tombstone.
            Tombstone.message_digest(external_id=comment_id)
            for comment_id in comments.values_list("comment_id", flat=True).iterator()
        ]
    )
    now = timezone.now()
    Tombstone.objects.bulk_create(
        [Tombstone(digest=digest, created_at=now) for digest in digests],
        update_conflicts=True,
        unique_fields=["digest"],
        update_fields=["created_at"],
        batch_size=1000,
    )


def _articles_quoting_unapprove(*, questions: QuerySet[UnansweredQuestion]) -> list[KnowledgeArticle]:
    """The articles written from `questions` whose title is the question itself, as "Write an
    article" proposed it before it stopped doing so: unapproved and retitled for staff to
    write a title of their own."""
    articles = []
    for question in questions.filter(article__isnull=False).select_related("article"):
        article = question.article
        if article.title != Truncator(" ".join(question.text.split())).chars(_TITLE_MAX_CHARS):
            continue
        article.title = f"Untitled #{article.pk}: its title quoted a person who was forgotten"
        article.approved = False
        knowledge_article_save(article=article)
        articles.append(article)
        logger.warning(
            "Knowledge article %s unapproved: its title quoted a person who was forgotten", article.pk
        )
    return articles


def _admin_log_redact(*, model: type[Model], rows: QuerySet, name: Expression) -> None:
    """Rename the admin log's entries about `rows` to `name`, and drop their change messages
    (which can quote related objects); who did what, and when, stays."""
    LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(model),
        object_id__in=rows.annotate(key=Cast("pk", CharField())).values("key"),
    ).update(object_repr=name, change_message="")
