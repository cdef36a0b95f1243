"""Reads. Writes live in services.py."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import product

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import (
    BooleanField,
    Exists,
    ExpressionWrapper,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    prefetch_related_objects,
)
from django.utils import timezone
from django_rq import get_connection
from redis.exceptions import RedisError

from conversations.hours import BusinessHours, business_hours_parse
from conversations.models import (
    ChannelIdentity,
    Comment,
    Conversation,
    Handoff,
    Message,
    SystemPrompt,
    Tombstone,
)
from conversations.pages import PageInfo, page_for_conversation
from messenger.window import Window, messaging_window

# Rate-limited messages whose one notice is still to be sent (conversations.services.ratelimit).
NOTICE_PENDING = Q(
    status=Message.Status.RATE_LIMITED,
    **{f"details__{Message.RATE_LIMIT_NOTICE}": Message.RATE_LIMIT_NOTICE_PENDING},
)
# Admin searches of more words than this scan (see conversation_search).
SPLIT_TERMS_MAX = 4
# The conversation page shows this many of the newest messages.
TRANSCRIPT_LIMIT = 500


def health_failures() -> dict[str, str]:
    """Which of our own dependencies are unreachable, by component name."""
    failures = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as error:
        failures["database"] = type(error).__name__
    try:
        get_connection("default").ping()
    except RedisError as error:
        failures["redis"] = type(error).__name__
    return failures


def system_prompt_current() -> str:
    """The newest staff-edited system prompt, or the one from settings."""
    prompt = SystemPrompt.objects.values_list("text", flat=True).first()
    return prompt or settings.LLM_SYSTEM_PROMPT


@dataclass(frozen=True)
class HandoffSettings:
    """What a handoff tells the person, when staff are there, and whether the person is asked
    how we did afterwards."""

    message: str
    # Outside `hours`; "{opens}" in it is the next opening in words.
    message_closed: str
    hours: BusinessHours
    csat_enabled: bool
    csat_question: str
    csat_thanks: str


def handoff_settings(*, page: PageInfo | None) -> HandoffSettings:
    """The handoff settings that hold for a conversation with `page` (None: the console's, or a
    Page no longer connected): every reader of them asks here.

    The Page's handoff messages and business hours, else the settings'; CSAT is the settings'
    for every Page.
    """
    return HandoffSettings(
        message=(page and page.handoff_message) or settings.HANDOFF_MESSAGE,
        message_closed=(page and page.handoff_message_closed) or settings.HANDOFF_MESSAGE_CLOSED,
        hours=business_hours_parse(
            (page and page.business_hours) or settings.BUSINESS_HOURS, time_zone=settings.TIME_ZONE
        ),
        csat_enabled=settings.CSAT_ENABLED,
        csat_question=settings.CSAT_QUESTION,
        csat_thanks=settings.CSAT_THANKS,
    )


def conversation_waited(*, conversation: Conversation, now: datetime) -> timedelta | None:
    """How long the conversation has waited for staff, counting business hours only; None when
    it does not wait."""
    if conversation.waiting_for_staff_since is None:
        return None
    hours = handoff_settings(page=page_for_conversation(identity=conversation.identity)).hours
    return hours.elapsed(conversation.waiting_for_staff_since, now)


def conversation_get_by_psid(*, psid: str, page_id: str = "") -> Conversation | None:
    """The Messenger or Instagram conversation with the person behind this PSID (or IGSID), on
    Page `page_id` when given; None if they never wrote in.

    A PSID is scoped to one page; if two pages' PSIDs collide, the most recent thread wins.
    """
    conversations = Conversation.objects.select_related("identity__contact").filter(
        identity__channel__in=ChannelIdentity.META_CHANNELS, identity__external_id=psid
    )
    if page_id:
        conversations = conversations.filter(identity__page_id=page_id)
    return conversations.order_by("-last_activity_at").first()


def conversation_id_by_sender(*, channel: str, page_id: str, psid: str) -> int | None:
    """The id of the conversation with this sender on this channel and Page, or None before their
    first message."""
    ids = Conversation.objects.filter(
        identity__channel=channel, identity__page_id=page_id, identity__external_id=psid
    ).values_list("pk", flat=True)
    return next(iter(ids), None)


def tombstone_covers(
    *, channel: str, page_id: str, psid: str, external_id: str | None, sent_at: datetime | None
) -> bool:
    """Whether a message from this sender belongs to a person since forgotten: its id was one of
    theirs, or it was sent before they were forgotten (the deletion covered it).

    A new message from them is not covered: they are answered as someone new. One indexed query.
    """
    identity = Tombstone.identity_digest(channel=channel, page_id=page_id, external_id=psid)
    digests = [identity] + ([Tombstone.message_digest(external_id=external_id)] if external_id else [])
    found = dict(Tombstone.objects.filter(digest__in=digests).values_list("digest", "created_at"))
    forgotten_at = found.pop(identity, None)
    return bool(found) or (forgotten_at is not None and sent_at is not None and sent_at < forgotten_at)


def conversation_list_with_flags(*, conversations: QuerySet[Conversation]) -> QuerySet[Conversation]:
    """`conversations` with their contact and the flags staff triage by.

    `is_unanswered`: a client message still waits for a reply; `has_failures`: a message
    could not be sent. Both are correlated EXISTS subqueries, evaluated per shown row (one
    index probe each), so a page of a 100,000-thread list costs the same as a short one.
    """
    messages = Message.objects.filter(conversation=OuterRef("pk"))
    return conversations.select_related("identity__contact").annotate(
        is_unanswered=Exists(messages.filter(status=Message.Status.RECEIVED)),
        has_failures=Exists(messages.filter(status=Message.Status.FAILED)),
    )


def conversation_search(*, conversations: QuerySet[Conversation], terms: list[str]) -> QuerySet[Conversation]:
    """`conversations` matching every term, as the admin's search always has: each term is in
    the contact's name, is the PSID, or is in the text of one same message (case-insensitive
    substrings; the PSID exactly).

    That OR across three tables is no index lookup, so the conversations are gathered as a
    union of the ways they can match: for each split of the terms into "in the name" and "in
    one message", an AND on the name and an AND on a message's text, each an index lookup
    (trigram indexes on PostgreSQL, migration 0004). A conversation whose PSID is a term is
    checked directly. Past SPLIT_TERMS_MAX terms the splits outnumber a scan's cost: it scans.
    """
    terms = list(dict.fromkeys(terms))
    if not terms:
        return conversations
    each_term = Q.create(
        [
            Q(identity__contact__name__icontains=term)
            | Q(identity__external_id=term)
            | Q(messages__text__icontains=term)
            for term in terms
        ]
    )
    if len(terms) > SPLIT_TERMS_MAX:
        return conversations.filter(pk__in=Conversation.objects.filter(each_term).values("pk"))
    ways = [Conversation.objects.filter(identity__external_id__in=terms).filter(each_term).values("pk")]
    for in_name in product((True, False), repeat=len(terms)):
        name_terms = [term for term, named in zip(terms, in_name, strict=False) if named]
        text_terms = [term for term, named in zip(terms, in_name, strict=False) if not named]
        name_has = [Q(identity__contact__name__icontains=term) for term in name_terms]
        way = Conversation.objects.filter(*name_has)
        if text_terms:
            one_message = Message.objects.filter(conversation=OuterRef("pk"))
            way = way.filter(Exists(one_message.filter(*[Q(text__icontains=term) for term in text_terms])))
        ways.append(way.values("pk"))
    first, *rest = ways
    return conversations.filter(pk__in=first.union(*rest, all=True))


def conversation_transcript(*, conversation: Conversation, limit: int = TRANSCRIPT_LIMIT) -> list[Message]:
    """The newest `limit` messages of the conversation, oldest first, as a chat shows them."""
    newest = (
        conversation.messages.select_related("sent_by", "reply_to")
        .prefetch_related("knowledge_articles")
        .order_by("-created_at", "-id")[:limit]
    )
    transcript = list(reversed(newest))
    messages_attachments_prefetch(messages=transcript)
    return transcript


def system_prompt_history(*, prompts: QuerySet[SystemPrompt]) -> QuerySet[SystemPrompt]:
    """Saved versions of the system prompt, newest first, `in_use` marking the newest."""
    newest = SystemPrompt.objects.order_by("-created_at", "-id").values("pk")[:1]
    return (
        prompts.select_related("created_by")
        .annotate(in_use=ExpressionWrapper(Q(pk=Subquery(newest)), output_field=BooleanField()))
        .order_by("-created_at", "-id")
    )


def messages_awaiting_reply(*, conversation: Conversation) -> list[Message]:
    """Client messages stored but not answered yet, oldest first: the next reply answers them all.

    With the message each one replies to, which the prompt quotes.
    """
    return list(
        conversation.messages.filter(role=Message.Role.CLIENT, status=Message.Status.RECEIVED)
        .select_related("reply_to")
        .order_by("created_at", "id")
    )


def messages_attachments_prefetch(*, messages: list[Message], quoted: bool = False) -> None:
    """Load, in one query, the attachments as read (MessageAttachment) of those of `messages` that
    have attachments, and with `quoted` of the messages they reply to (loaded with them, as
    messages_awaiting_reply does): what conversations.prompts renders. Messages without
    attachments cost nothing."""
    with_attachments = [message for message in messages if message.attachments]
    if quoted:
        replied_to = [message.reply_to for message in messages if message.reply_to_id]
        with_attachments += [message for message in replied_to if message and message.attachments]
    prefetch_related_objects(with_attachments, "media")


def messages_history(
    *, conversation: Conversation, limit: int, before: Message | None = None
) -> list[Message]:
    """The last `limit` messages the LLM may read (before `before`, when given), oldest first.

    One range scan of the (conversation, created_at, id) index however long the thread is.
    Rate-limited messages were never for the LLM and failed sends never reached the person.
    """
    messages = conversation.messages.all()
    if before is not None:
        messages = messages.filter(
            Q(created_at__lt=before.created_at) | Q(created_at=before.created_at, id__lt=before.id)
        )
    newest_first = (
        messages.exclude(status=Message.Status.RATE_LIMITED)
        .exclude(status=Message.Status.FAILED, role__in=Message.OUTGOING_ROLES)
        .order_by("-created_at", "-id")[:limit]
    )
    history = list(reversed(newest_first))
    messages_attachments_prefetch(messages=history)
    return history


def messages_bot_unsent(*, conversation: Conversation, handoff: bool = False) -> list[Message]:
    """Bot messages stored but not sent yet (a job died mid-send), in order; with `handoff`, only
    the notices telling the person they were handed over (sent even though the bot is paused)."""
    unsent = conversation.messages.select_related("conversation__identity").filter(
        role__in=Message.BOT_ROLES, status=Message.Status.SENDING
    )
    if handoff:
        unsent = unsent.filter(**{f"details__{Message.HANDOFF_NOTICE}": True})
    return list(unsent.order_by("created_at", "id"))


def messages_needing_reply_job(*, stale_before: datetime, since: datetime) -> list[Message]:
    """For the recovery sweep: per Messenger or Instagram conversation, the newest message whose job
    is overdue.

    Overdue, with the bot active: a client message still waiting, or a bot message still
    unsent, created between `since` and `stale_before`, or a rate-limit notice still pending;
    and, whatever the bot's state, a handover notice still unsent.
    Each part is a range scan of a partial index (message_awaiting_reply, message_sweep).
    """
    # Console conversations are answered while the operator waits, never by a job.
    window = Q(created_at__gte=since, conversation__identity__channel__in=ChannelIdentity.META_CHANNELS)
    unsent = Q(role__in=Message.BOT_ROLES, status=Message.Status.SENDING, created_at__lt=stale_before)
    overdue = Q(conversation__bot_active=True) & (
        Q(role=Message.Role.CLIENT, status=Message.Status.RECEIVED, created_at__lt=stale_before)
        | unsent
        | NOTICE_PENDING
    )
    # The notice of a handover is sent even though the handover paused the bot.
    overdue |= unsent & Q(**{f"details__{Message.HANDOFF_NOTICE}": True})
    newest_per_conversation: dict[int, Message] = {}
    for message in (
        Message.objects.filter(window & overdue)
        .select_related("conversation__identity")
        .order_by("created_at", "id")
    ):
        newest_per_conversation[message.conversation_id] = message
    return list(newest_per_conversation.values())


def handoff_latest(*, conversation: Conversation) -> Handoff | None:
    """The conversation's newest handover to staff, if it had one."""
    return conversation.handoffs.order_by("-created_at", "-id").first()


def comments_needing_reply_job(*, stale_before: datetime, since: datetime) -> list[int]:
    """For the recovery sweep: the ids of comments received between `since` and `stale_before`
    whose private reply is still to be written or sent, or whose public reply is still to be
    posted (a range scan of the partial index comment_pending)."""
    pending = Q(status__in=[Comment.Status.RECEIVED, Comment.Status.SENDING]) | Q(
        public_reply_status=Comment.PublicReply.PENDING
    )
    return list(
        Comment.objects.filter(pending, received_at__gte=since, received_at__lt=stale_before)
        .order_by("received_at", "id")
        .values_list("pk", flat=True)
    )


def conversation_comments(*, conversation: Conversation) -> list[Comment]:
    """The comments whose private replies went to this conversation, oldest first: where it started."""
    return list(conversation.comments.order_by("commented_at", "id"))


def conversations_waiting_count() -> int:
    """How many conversations wait for staff (a partial index holds just those)."""
    return Conversation.objects.filter(waiting_for_staff_since__isnull=False).count()


def messaging_window_text(*, conversation: Conversation) -> str:
    """What Messenger's window allows staff now, in a sentence for the reply box."""
    state = messaging_window(person_last_wrote_at=conversation.person_last_wrote_at, now=timezone.now())
    if state.window is Window.UNKNOWN:
        return "No message from this person yet: Messenger decides whether the Page may write."
    if state.window is Window.CLOSED:
        return "More than 7 days since this person's last message: Messenger allows no message."
    left = duration_words(state.closes_at - timezone.now())
    if state.window is Window.OPEN:
        return f"Messenger's 24-hour window: {left} left."
    if settings.FACEBOOK_HUMAN_AGENT_TAG:
        return f"Past 24 hours: sent with the HUMAN_AGENT tag, for {left} more."
    return "Past 24 hours: Messenger refuses a message now (FACEBOOK_HUMAN_AGENT_TAG is off)."


def duration_words(delta: timedelta) -> str:
    """`delta` as staff read it at a glance: "2 d 3 h", "1 h 20 min", "5 min"."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    days, hours, minutes = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
