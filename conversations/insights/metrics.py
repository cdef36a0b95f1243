"""What /metrics reports, in Prometheus's text format, added up over every process.

gunicorn runs several web processes and the worker a pool of them, so prometheus_client runs
in its multiprocess mode: each process writes its counts to files in PROMETHEUS_MULTIPROC_DIR
(config.settings sets it before anything imports prometheus_client) and a scrape adds them up.
Only counters and histograms are kept that way; the queue's depth is read from Redis at scrape
time by django-rq's own collector.
"""

import itertools
from datetime import datetime

from django.utils import timezone
from django_rq.contrib.prometheus import RQCollector
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

from conversations.models import ChannelIdentity, Handoff, Message

MESSAGES_RECEIVED = Counter(
    "messenger_messages_received",
    "Messages people sent the Pages, each counted once when stored, by kind and channel",
    ["kind", "channel"],
)
REPLIES_SENT = Counter(
    "messenger_replies_sent",
    "Messages the Pages sent through the Send API, by who wrote them and channel",
    ["role", "channel"],
)
FAILURES = Counter(
    "messenger_failures",
    "Messages marked failed: a reply that could not be sent, or a person's message that could not be answered; "
    "by reason code",
    ["reason"],
)
HANDOFFS = Counter(
    "messenger_handoffs", "Conversations handed over to staff, by what asked for it", ["trigger"]
)
RATE_LIMITED = Counter(
    "messenger_rate_limited", "Messages over the per-sender rate limit, stored but not answered"
)
AI_REPLIES = Counter(
    "messenger_ai_replies",
    "AI replies written, by whether the model was given a knowledge article",
    ["knowledge"],
)
CSAT_ANSWERS = Counter(
    "messenger_csat_answers",
    "Answers to the question asked when staff hand a conversation back (CSAT), by score (1 to 5)",
    ["score"],
)
COMMENTS_RECEIVED = Counter(
    "messenger_comments_received",
    "New comments on the Pages' posts and Instagram media, each counted once when stored "
    "(COMMENT_REPLIES on), by channel",
    ["channel"],
)
PRIVATE_REPLIES_SENT = Counter(
    "messenger_private_replies_sent",
    "Private replies to comments that Meta accepted, by channel",
    ["channel"],
)
LLM_CALLS = Counter(
    "messenger_llm_calls",
    "Chat completion calls to Groq, by model and outcome (answered; refused: 429 or 498; failed)",
    ["model", "outcome"],
)
LLM_LATENCY = Histogram(
    "messenger_llm_latency_seconds",
    "Time Groq took to answer one completion request",
    buckets=(0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60),
)
WEBHOOK_TO_SEND = Histogram(
    "messenger_webhook_to_send_seconds",
    "From the webhook storing a person's message to the bot's reply to it sent",
    buckets=(0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120, 300, 900),
)

MEDIA_CALLS = Counter(
    "messenger_media_calls",
    "Groq calls reading what people sent: transcriptions (kind audio) and image descriptions (kind image), "
    "by outcome",
    ["kind", "outcome"],
)
MEDIA_LATENCY = Histogram(
    "messenger_media_call_seconds",
    "Time Groq took to transcribe a voice message or describe an image, by kind",
    ["kind"],
    buckets=(0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60),
)
MEDIA_UNREADABLE = Counter(
    "messenger_media_unreadable",
    "Voice messages and images the bot could not read before answering (each try), by kind and reason",
    ["kind", "reason"],
)

# Every label value known in advance is reported from the start, at 0, so that a rate over a
# series that has not moved yet is 0 rather than missing.
_CHANNELS = ChannelIdentity.META_CHANNELS
for _counter, _labels in (
    (MESSAGES_RECEIVED, {"kind": ("text", "attachment", "postback", "quick_reply"), "channel": _CHANNELS}),
    (
        REPLIES_SENT,
        {"role": (Message.Role.AI, Message.Role.STAFF, Message.Role.SYSTEM), "channel": _CHANNELS},
    ),
    (HANDOFFS, {"trigger": Handoff.Trigger.values}),
    (COMMENTS_RECEIVED, {"channel": _CHANNELS}),
    (PRIVATE_REPLIES_SENT, {"channel": _CHANNELS}),
    (AI_REPLIES, {"knowledge": ("yes", "no")}),
    (CSAT_ANSWERS, {"score": ("1", "2", "3", "4", "5")}),
):
    for _values in itertools.product(*_labels.values()):
        _counter.labels(**dict(zip(_labels, _values, strict=True)))
for _kind in ("audio", "image"):
    for _outcome in ("ok", "error"):
        MEDIA_CALLS.labels(kind=_kind, outcome=_outcome)


def message_kind(*, message: Message) -> str:
    """The `kind` label of a received message: postback, quick_reply, attachment or text."""
    if "postback_payload" in message.details:
        return "postback"
    if "quick_reply_payload" in message.details:
        return "quick_reply"
    if message.attachments and not message.text:
        return "attachment"
    return "text"


def reply_sent_observe(*, received_at: datetime) -> None:
    WEBHOOK_TO_SEND.observe(max((timezone.now() - received_at).total_seconds(), 0.0))


def metrics_render() -> bytes:
    """Every process's metrics added up, then the queues' state, in Prometheus's text format."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(RQCollector())
    return generate_latest(registry)
