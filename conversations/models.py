"""The channel-agnostic core: who wrote in, on which channel, every message, and what the bot knows.

Messenger specifics (page ids, PSIDs, mids) appear only as opaque strings here.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import salted_hmac
from encrypted_fields.fields import EncryptedTextField


class Page(models.Model):
    """A Facebook Page connected to the service (`manage.py pages connect`, or the admin), and the
    Instagram professional account linked to it: the service answers both with its token.

    The environment's FACEBOOK_PAGE_ACCESS_TOKEN is one more Page, never stored here
    (conversations.pages). A disconnected Page keeps its row and its conversations; connecting
    it again restores it.
    """

    class TokenState(models.TextChoices):
        UNCHECKED = "unchecked", "Not checked yet"
        WORKS = "works", "Works"
        REFUSED = "refused", "Refused by Facebook"

    page_id = models.CharField("Page id", max_length=64, unique=True)
    name = models.CharField(max_length=255)
    # Encrypted at rest with keys from SECRET_KEY (+ SECRET_KEY_FALLBACKS) and SALT_KEY
    # (FIELD_ENCRYPTION_SALTS); NULL once disconnected. `manage.py pages reencrypt` rewrites
    # every token with the newest key after a rotation.
    access_token = EncryptedTextField(null=True, blank=True, editable=False)
    # NULL, not "", when no Instagram account is linked: unique only among real ids.
    instagram_account_id = models.CharField(
        "Instagram account id", max_length=64, unique=True, null=True, blank=True, editable=False
    )
    instagram_username = models.CharField(max_length=255, blank=True, editable=False)
    token_state = models.CharField(
        max_length=16, choices=TokenState.choices, default=TokenState.UNCHECKED, editable=False
    )
    token_checked_at = models.DateTimeField("last check", null=True, blank=True, editable=False)
    token_error = models.CharField(max_length=500, blank=True, editable=False)
    system_prompt = models.TextField(
        blank=True,
        help_text="Blank: the system prompt of every Page (System prompts), else LLM_SYSTEM_PROMPT.",
    )
    handoff_message = models.TextField(
        blank=True, help_text="What the person is told when handed over to staff. Blank: HANDOFF_MESSAGE."
    )
    business_hours = models.CharField(
        max_length=500,
        blank=True,
        help_text="When staff answer this Page's conversations, e.g. mon-fri 09:00-17:00; sat 10:00-13:00 "
        "(in TIME_ZONE). Blank: BUSINESS_HOURS.",
    )
    handoff_message_closed = models.TextField(
        blank=True,
        help_text="What the person is told when handed over outside those hours; {opens} is the next "
        "opening. Blank: HANDOFF_MESSAGE_CLOSED.",
    )
    connected_at = models.DateTimeField(default=timezone.now, editable=False)
    disconnected_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name", "page_id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.page_id})"


class Contact(models.Model):
    """A person who wrote in; created automatically on their first message."""

    # From the channel's profile (Messenger: fetched by a job after the first message).
    name = models.CharField(max_length=255, blank=True)
    first_name = models.CharField(max_length=255, blank=True)
    picture_url = models.URLField(max_length=2000, blank=True)
    # When the profile was last asked for, and why it was refused if it was (asked again a
    # week later, never per message).
    profile_fetched_at = models.DateTimeField(null=True, blank=True)
    profile_error = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # The hourly profile sweep looks for contacts without a name to ask for.
            models.Index(fields=["profile_fetched_at"], condition=Q(name=""), name="contact_profile_missing"),
        ]

    def __str__(self) -> str:
        return self.name or f"Contact #{self.pk}"


class ChannelIdentity(models.Model):
    """How a contact is addressed on one channel: a Facebook Page's id (on Instagram too: the
    Page the account is linked to) and the person's PSID or IGSID."""

    class Channel(models.TextChoices):
        MESSENGER = "messenger", "Messenger"
        # Instagram Direct, through the Facebook Page the account is linked to.
        INSTAGRAM = "instagram", "Instagram"
        # `manage.py chat`: an operator trying the bot in a terminal.
        CONSOLE = "console", "Console"

    # The channels reached through Meta's Graph API, answered by reply jobs.
    META_CHANNELS = (Channel.MESSENGER, Channel.INSTAGRAM)

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="identities")
    channel = models.CharField(max_length=32, choices=Channel.choices, default=Channel.MESSENGER)
    page_id = models.CharField(max_length=64)
    external_id = models.CharField("PSID", max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "channel identities"
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "page_id", "external_id"], name="unique_channel_identity"
            ),
        ]
        indexes = [models.Index(fields=["external_id"], name="identity_external_id")]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} {self.external_id}"


class Conversation(models.Model):
    """One thread per channel identity (a PSID is already scoped to one page)."""

    identity = models.OneToOneField(ChannelIdentity, on_delete=models.CASCADE, related_name="conversation")
    bot_active = models.BooleanField(default=True)
    bot_paused_at = models.DateTimeField(null=True, blank=True)
    bot_paused_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,  # partial index below
    )
    # Denormalised so the admin's list sorts and previews 100,000 threads without joins.
    last_activity_at = models.DateTimeField(default=timezone.now)
    last_message_text = models.CharField(max_length=255, blank=True)
    # When the person last wrote, as the channel stamped it: Messenger's 24-hour window.
    person_last_wrote_at = models.DateTimeField(null=True, blank=True)
    # Handed over to staff (the bot is paused): since when, and why; cleared by a staff reply
    # or by resuming the bot.
    waiting_for_staff_since = models.DateTimeField(null=True, blank=True)
    handoff_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["-last_activity_at"], name="conversation_last_activity"),
            # Each message moves its conversation's last activity, which rewrites every index
            # entry of the row: the few paused conversations get an index of
            # their own for the admin's "paused" filter, and the rest are found through the one
            # above, which the "active" filter reads with no detour since nearly all are.
            models.Index(
                fields=["-last_activity_at"],
                condition=Q(bot_active=False),
                name="conversation_paused_activity",
            ),
            # Partial: the many rows with no pauser stay out of it.
            models.Index(
                fields=["bot_paused_by"],
                condition=Q(bot_paused_by__isnull=False),
                name="conversation_paused_by",
            ),
            # The admin's "waiting for staff" filter and count: few conversations wait at a time.
            models.Index(
                fields=["-last_activity_at"],
                condition=Q(waiting_for_staff_since__isnull=False),
                name="conversation_waiting",
            ),
        ]

    def __str__(self) -> str:
        return f"Conversation with {self.identity.contact}"


class Message(models.Model):
    class Role(models.TextChoices):
        CLIENT = "client", "Client"
        AI = "ai", "AI"
        STAFF = "staff", "Staff"
        SYSTEM = "system", "System"

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"  # client message waiting for a reply
        RATE_LIMITED = "rate_limited", "Rate-limited"  # client message never sent to the LLM
        ANSWERED = "answered", "Answered"  # client message a reply was produced for
        SENDING = "sending", "Sending"  # outgoing message stored, not yet accepted by the channel
        SENT = "sent", "Sent"  # outgoing message accepted by the channel
        FAILED = "failed", "Failed"  # gave up; error_detail says why

    # What the bot sends (LLM replies and fixed notices), and everything that goes out.
    BOT_ROLES = (Role.AI, Role.SYSTEM)
    OUTGOING_ROLES = (Role.AI, Role.SYSTEM, Role.STAFF)
    # A key of `details`: the notice telling the person they were handed over, sent even
    # though the handover paused the bot.
    HANDOFF_NOTICE = "handoff"
    # A key of `details`: the first message over the rate limit in a minute gets one notice,
    # pending until it is sent.
    RATE_LIMIT_NOTICE = "rate_limit_notice"
    RATE_LIMIT_NOTICE_PENDING, RATE_LIMIT_NOTICE_SENT = "pending", "sent"
    # A key of `details`: the person edited the message ({"original_text", "num_edit", "edited_at"});
    # `text` is the newest version.
    EDIT = "edit"

    # Indexed by message_conversation_time, which starts with it.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    text = models.TextField(blank=True)
    # [{"type": "image", "url": "...", "title": "...", ...}] as the channel described them.
    attachments = models.JSONField(default=list, blank=True)
    # Channel message id (Messenger `mid`): the dedup key for redelivered webhooks.
    # NULL, not "", when there is none: the unique constraint below then holds only for real ids.
    external_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    status = models.CharField(max_length=16, choices=Status.choices)
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_detail = models.TextField(blank=True, default="")
    # Client messages: the message they quote. Replies: the latest client message they answer.
    reply_to = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="replies", db_index=False
    )
    # Quick-reply / postback payloads, referrals and similar channel facts.
    details = models.JSONField(default=dict, blank=True)
    reaction = models.CharField(max_length=64, blank=True, default="")
    # The event exactly as the channel sent it, for debugging.
    raw = models.JSONField(null=True, blank=True)
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,  # partial index below
    )
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    # LLM facts, for ai messages.
    llm_model = models.CharField(max_length=128, blank=True, default="")
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    llm_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    # AI replies: the knowledge articles the prompt gave the LLM.
    knowledge_articles = models.ManyToManyField(
        "KnowledgeArticle", blank=True, related_name="replies", verbose_name="knowledge given"
    )

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"],
                condition=Q(external_id__isnull=False),
                name="unique_message_external_id",
            ),
        ]
        indexes = [
            # "The last 50 messages of a conversation" is one index range scan.
            models.Index(fields=["conversation", "created_at", "id"], name="message_conversation_time"),
            # The recovery sweep looks for client messages still waiting for a reply.
            models.Index(
                fields=["created_at"],
                condition=Q(status="received"),
                name="message_awaiting_reply",
            ),
            # The recovery sweep also finishes interrupted sends and pending rate-limit notices.
            models.Index(
                fields=["status", "created_at"],
                condition=Q(status__in=["sending", "rate_limited"]),
                name="message_sweep",
            ),
            # The admin's "failed messages" filter and flag over every conversation.
            models.Index(
                fields=["conversation"],
                condition=Q(status="failed"),
                name="message_failed",
            ),
            # For deleting a message or a user (SET NULL follows these keys). Partial: most
            # messages quote nothing and were not written by staff, and a webhook message
            # then writes two index entries fewer.
            models.Index(fields=["reply_to"], condition=Q(reply_to__isnull=False), name="message_reply_to"),
            models.Index(fields=["sent_by"], condition=Q(sent_by__isnull=False), name="message_sent_by"),
            # The admin's dashboard (conversations.insights.dashboard) counts a range of days from these
            # alone: messages in and out, first replies and their wait, AI answers.
            models.Index(fields=["created_at", "role", "status"], name="message_created_kind"),
            models.Index(
                fields=["created_at", "reply_to", "sent_at"],
                condition=Q(
                    reply_to__isnull=False, sent_at__isnull=False, role__in=["ai", "staff", "system"]
                ),
                name="message_reply_time",
            ),
            models.Index(
                fields=["created_at", "id"],
                condition=Q(role="ai") & ~Q(llm_model=""),
                name="message_ai_answer",
            ),
        ]
        permissions = [("send_message", "Can send messages to contacts")]

    def __str__(self) -> str:
        return f"{self.get_role_display()}: {self.text[:60]}"


class MessageAttachment(models.Model):
    """A voice message or an image a person sent, as the bot read it before answering: its
    transcript or description (what the prompt carries for it, kept for good), and the file,
    kept for staff until MEDIA_RETENTION_DAYS or until the person is forgotten
    (conversations.media)."""

    class Kind(models.TextChoices):
        AUDIO = "audio", "Voice message"
        IMAGE = "image", "Image"

    class State(models.TextChoices):
        # Not read yet, or a try failed for a reason that may pass (it is tried again while
        # its message still waits for the bot).
        PENDING = "pending", "Not read yet"
        UNDERSTOOD = "understood", "Understood"
        UNREADABLE = "unreadable", "Could not be read"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="media", db_index=False)
    # Its index in the message's `attachments`.
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    file = models.FileField(upload_to="messenger-media/%Y/%m/", blank=True, max_length=255)
    content_type = models.CharField(max_length=100, blank=True)
    size = models.PositiveIntegerField(null=True, blank=True)
    # When the file was removed (its retention ended); the text stays.
    file_removed_at = models.DateTimeField(null=True, blank=True)
    text = models.TextField(
        blank=True, help_text="The transcript of a voice message, or what an image shows."
    )
    # The transcription or vision model's facts, like the LLM's on an AI reply.
    model = models.CharField(max_length=128, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Why it could not be read: a code for metrics, and words for staff.
    error_code = models.CharField(max_length=32, blank=True)
    error_detail = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    understood_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["message", "position"]
        constraints = [
            models.UniqueConstraint(fields=["message", "position"], name="unique_message_attachment"),
        ]
        indexes = [
            # The retention job looks for files older than MEDIA_RETENTION_DAYS among those still kept.
            models.Index(fields=["created_at"], condition=~Q(file=""), name="message_attachment_kept"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"


class SystemPrompt(models.Model):
    """Each edit is a new row, so the newest row is the prompt and the rest its history."""

    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        get_latest_by = ["created_at", "id"]

    def __str__(self) -> str:
        return f"System prompt of {self.created_at:%Y-%m-%d %H:%M}"


class KnowledgeArticle(models.Model):
    """One of the business's own facts, in staff's words: the bot answers from the approved ones."""

    title = models.CharField(max_length=200)
    body = models.TextField(help_text="Plain text or Markdown.")
    approved = models.BooleanField(default=True, help_text="Only approved articles are given to the bot.")
    # Keyed by the Facebook Page's id, so a conversation's identity.page_id finds its
    # articles without a join. Pages are disconnected, never deleted, so nothing cascades.
    page = models.ForeignKey(
        Page,
        to_field="page_id",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="articles",
        help_text="Blank: given to the people writing to every Page.",
    )
    # Where an imported article came from (the path given to knowledge_import); empty when
    # written in the admin. Importing the same path again updates the article.
    source = models.CharField(max_length=500, unique=True, null=True, blank=True, editable=False)
    # Title (weight A) and body (weight B), kept by conversations.knowledge on every save; a
    # GIN index on PostgreSQL (migration 0008).
    search_vector = SearchVectorField(null=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title", "id"]

    def __str__(self) -> str:
        return self.title


class UnansweredQuestion(models.Model):
    """A question the bot answered with no knowledge article: what the knowledge base is missing."""

    # The newest of the client messages the reply answered.
    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="unanswered_question")
    text = models.TextField(help_text="What the person asked, all the messages the reply answered.")
    asked_at = models.DateTimeField()
    # The article staff wrote from it, once they did.
    article = models.ForeignKey(
        KnowledgeArticle, on_delete=models.SET_NULL, null=True, blank=True, related_name="questions"
    )

    class Meta:
        ordering = ["-asked_at", "-id"]
        indexes = [models.Index(fields=["-asked_at"], name="unanswered_question_asked")]

    def __str__(self) -> str:
        # Not the text: this is what the admin's action log keeps of a dismissed question.
        return f"Unanswered question #{self.pk}"


class Handoff(models.Model):
    """One handover of a person to staff: the record the dashboard counts, kept after it ends."""

    class Trigger(models.TextChoices):
        MODEL = "model", "The assistant"
        PERSON = "person", "The person asked"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="handoffs")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    reason = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    # What the person needs and what the bot told them, written by the LLM for staff once the
    # person was told of the handoff; empty when it could not be written.
    summary = models.TextField(blank=True)
    # When staff's alert was raised, with the summary or without it; until then the recovery
    # sweep sees that it is.
    alerted_at = models.DateTimeField(null=True, blank=True)
    # How we did (CSAT): when the person was asked, once staff handed the conversation back, and
    # their answer, 1 to 5, when they gave it.
    csat_asked_at = models.DateTimeField(null=True, blank=True)
    csat_score = models.PositiveSmallIntegerField(null=True, blank=True)
    csat_answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["created_at"], name="handoff_created"),
            # The recovery sweep's handoffs still to alert: few at any time.
            models.Index(
                fields=["created_at"], condition=Q(alerted_at__isnull=True), name="handoff_unalerted"
            ),
            # The dashboard counts the answers of a range of days.
            models.Index(
                fields=["csat_answered_at", "csat_score"],
                condition=Q(csat_answered_at__isnull=False),
                name="handoff_csat_answered",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(csat_score__isnull=True) | Q(csat_score__gte=1, csat_score__lte=5),
                name="handoff_csat_score_1_to_5",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_trigger_display()}: {self.reason[:60]}"


class Comment(models.Model):
    """A comment on a Page's post (Facebook) or on its Instagram account's media, and what the
    service did with it: at most one private reply, written by the LLM, and at most one public
    reply under it (COMMENT_PUBLIC_REPLY). conversations.services.comments keeps it.

    The private reply is stored before it is sent, so whoever runs the job again sends it, never
    writes it a second time. Once sent it is also a message of the person's conversation (on
    Facebook, the one with the PSID Meta answered; on Instagram, with the commenter's IGSID),
    where their answers then arrive.
    """

    class Status(models.TextChoices):
        RECEIVED = "received", "Waiting for its reply"
        SENDING = "sending", "Reply written, not sent yet"
        ANSWERED = "answered", "Answered"
        IGNORED = "ignored", "Ignored"
        FAILED = "failed", "Failed"

    class Platform(models.TextChoices):
        # The same values as ChannelIdentity.Channel: where the private reply arrives.
        FACEBOOK = "messenger", "Facebook"
        INSTAGRAM = "instagram", "Instagram"

    class PublicReply(models.TextChoices):
        NONE = "", "None"
        PENDING = "pending", "Not posted yet"
        POSTED = "posted", "Posted"
        FAILED = "failed", "Failed"

    # The Facebook Page (on Instagram, the Page the account is linked to) and where the comment is.
    page_id = models.CharField("Page id", max_length=64)
    platform = models.CharField(max_length=16, choices=Platform.choices)
    # Meta's comment id: the dedup key for redelivered webhooks, as a message's mid is.
    comment_id = models.CharField(max_length=255, unique=True)
    post_id = models.CharField("post", max_length=255, blank=True)
    parent_id = models.CharField(max_length=255, blank=True)
    # On Facebook an id of the commenter that is not their PSID; on Instagram their IGSID.
    author_id = models.CharField(max_length=64)
    author_name = models.CharField("person", max_length=255, blank=True)
    text = models.TextField(blank=True)
    commented_at = models.DateTimeField(help_text="When the comment was made, as Meta says.")
    received_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=16, choices=Status.choices)
    # Why it was ignored or failed: a short code to filter by, and a sentence for staff.
    reason_code = models.CharField(max_length=64, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    # The private reply: its text (stored before it is sent), the model that wrote it (its
    # tokens and time), the handoff the model asked for, the message id Meta gave it, when.
    reply_text = models.TextField("private reply", blank=True, default="")
    reply_llm = models.JSONField(null=True, blank=True)
    handoff_reason = models.TextField(blank=True, default="")
    reply_mid = models.CharField(max_length=255, blank=True, default="")
    reply_sent_at = models.DateTimeField("replied at", null=True, blank=True)
    knowledge_articles = models.ManyToManyField(
        "KnowledgeArticle", blank=True, related_name="comment_replies", verbose_name="knowledge given"
    )
    # The public reply under the comment: its text, state, the id Meta gave it, or why it failed.
    public_reply_text = models.TextField(blank=True, default="")
    public_reply_status = models.CharField(
        max_length=16, choices=PublicReply.choices, blank=True, default=PublicReply.NONE
    )
    public_reply_id = models.CharField(max_length=255, blank=True, default="")
    public_reply_error = models.TextField(blank=True, default="")
    # The conversation the private reply went to; forgetting the person deletes their comments.
    conversation = models.ForeignKey(
        Conversation,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="comments",
        db_index=False,  # partial index below
    )
    raw = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["-received_at"], name="comment_received"),
            # The recovery sweep: comments whose reply (private or public) is still to come.
            models.Index(
                fields=["received_at"],
                condition=Q(status__in=["received", "sending"]) | Q(public_reply_status="pending"),
                name="comment_pending",
            ),
            models.Index(
                fields=["conversation"], condition=Q(conversation__isnull=False), name="comment_conversation"
            ),
            # A person's comments, for "forget" and the admin's search.
            models.Index(fields=["platform", "page_id", "author_id"], name="comment_author"),
            # The dashboard's private replies per day.
            models.Index(
                fields=["reply_sent_at"], condition=Q(reply_sent_at__isnull=False), name="comment_replied"
            ),
        ]

    def __str__(self) -> str:
        # Not the text nor the name: this is what the admin's action log would keep.
        return f"Comment #{self.pk}"


class Tombstone(models.Model):
    """What is kept of a forgotten person, so that an old delivery Meta retries (or someone
    replays) is not taken for a new message or comment: a keyed hash of their channel identity and
    of each of their messages' and comments' ids (never an id itself, nor anything they wrote),
    for RETENTION."""

    RETENTION = timedelta(days=30)

    # HMAC-SHA256 under SECRET_KEY, in hex.
    digest = models.CharField(max_length=64, unique=True)
    # For an identity, when the person was forgotten: what they sent before it is covered.
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"Tombstone #{self.pk}"

    @staticmethod
    def identity_digest(*, channel: str, page_id: str, external_id: str) -> str:
        return Tombstone._digest("identity", channel, page_id, external_id)

    @staticmethod
    def message_digest(*, external_id: str) -> str:
        return Tombstone._digest("message", external_id)

    @staticmethod
    def _digest(*parts: str) -> str:
        # Keyed, so that without the secret key nobody can test whether a given PSID was here.
        return salted_hmac("conversations.Tombstone", "\n".join(parts), algorithm="sha256").hexdigest()
