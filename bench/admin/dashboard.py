"""How fast the admin's dashboard is with 100,000 conversations and 1,000,000 messages.

Seeds the database named by DATABASE_URL (use a scratch one) with the inbox benchmark's
100,000 conversations, then, in SQL, question-and-answer exchanges over the last 40 days up
to 1,000,000 messages: every tenth answer in two parts, one in a hundred failed, three in
five given knowledge articles, half of the rest an unanswered question, a handoff every
fiftieth exchange, half of them rated (CSAT). Then it times the dashboard as a moderator sees it and prints each query.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_dashboard REDIS_URL=redis://127.0.0.1:6379/12 \\
        .venv/bin/python bench/admin/dashboard.py [--messages 1000000]
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import Max, Min
from django.test.utils import override_settings
from django.urls import reverse

# Sets Django up before the models are imported.
from bench.admin.common import RUNS, analyze, conversations_seed, moderator_client, timed
from conversations.models import Conversation, KnowledgeArticle, Message

CONVERSATIONS = 100_000
HISTORY_DAYS = 40
ARTICLES = 20
# Messages per exchange: a question, its answer, and a second part for one answer in ten.
MESSAGES_PER_EXCHANGE = 2.1
NO_CACHE = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
FAILURE_CODES = [
    "llm:503",
    "llm:429",
    "graph:551",
    "graph:10/2018278",
    "outside_window",
    "graph:190",
    "llm:400",
]

# Each statement adds one kind of row for the exchanges whose question ids are above %(before)s.
HISTORY_SQL = [
    (
        "questions",
        """
        INSERT INTO conversations_message
            (conversation_id, role, text, attachments, status, error_code, error_detail, details, reaction,
             created_at, sent_at, llm_model)
        SELECT %(first_conversation)s + n %% %(conversations)s, 'client',
               'Do you ship to country ' || (n %% 300) || '?', '[]', 'answered', '', '', '{}', '',
               asked_at, asked_at - interval '1 second', ''
        FROM (SELECT n, now() - random() * %(days)s * interval '1 day' AS asked_at
              FROM generate_series(1, %(exchanges)s) AS n) AS exchange
        """,
    ),
    (
        "answers",
        """
        INSERT INTO conversations_message
            (conversation_id, role, text, attachments, status, error_code, error_detail, details, reaction,
             created_at, sent_at, llm_model, prompt_tokens, completion_tokens, llm_latency_ms, reply_to_id)
        SELECT conversation_id, 'ai', 'We ship there in 5-8 working days.', '[]',
               CASE WHEN failed THEN 'failed' ELSE 'sent' END,
               CASE WHEN failed THEN (%(failure_codes)s::text[])[1 + (id / 100) %% %(failure_code_count)s] ELSE '' END,
               '', '{}', '', created_at + wait / 2,
               CASE WHEN failed THEN NULL ELSE created_at + wait END,
               'openai/gpt-oss-120b', 900, 60, 1500, id
        FROM (SELECT id, conversation_id, created_at, id %% 100 = 0 AS failed,
                     (1.5 + 120 * power(random(), 4)) * interval '1 second' AS wait
              FROM conversations_message WHERE id > %(before)s AND role = 'client') AS question
        """,
    ),
    (
        "second parts",
        """
        INSERT INTO conversations_message
            (conversation_id, role, text, attachments, status, error_code, error_detail, details, reaction,
             created_at, sent_at, llm_model, reply_to_id)
        SELECT conversation_id, 'ai', 'Customs duties are paid on arrival.', '[]', 'sent', '', '', '{}', '',
               created_at, sent_at + interval '400 milliseconds', '', reply_to_id
        FROM conversations_message
        WHERE id > %(before)s AND role = 'ai' AND status = 'sent' AND reply_to_id %% 10 = 1
        """,
    ),
    (
        "knowledge given",
        """
        INSERT INTO conversations_message_knowledge_articles (message_id, knowledgearticle_id)
        SELECT id, %(first_article)s + id %% %(articles)s FROM conversations_message
        WHERE id > %(before)s AND role = 'ai' AND llm_model <> '' AND id %% 5 < 3
        """,
    ),
    (
        "unanswered questions",
        """
        INSERT INTO conversations_unansweredquestion (message_id, text, asked_at)
        SELECT question.id, question.text, question.created_at
        FROM conversations_message AS answer JOIN conversations_message AS question ON question.id = answer.reply_to_id
        WHERE answer.id > %(before)s AND answer.role = 'ai' AND answer.llm_model <> '' AND answer.id %% 5 = 3
        """,
    ),
    (
        "handoffs",
        """
        INSERT INTO conversations_handoff (
            conversation_id, trigger, reason, created_at, summary, alerted_at, csat_score, csat_answered_at
        )
        SELECT conversation_id, CASE WHEN id %% 3 = 0 THEN 'person' ELSE 'model' END,
               'The person asks for a refund.', created_at + interval '5 seconds',
               'They want a refund; the bot promised nothing.', created_at + interval '8 seconds',
               CASE WHEN id %% 100 = 0 THEN 1 + id %% 7 %% 5 END,
               CASE WHEN id %% 100 = 0 THEN created_at + interval '1 hour' END
        FROM conversations_message WHERE id > %(before)s AND role = 'client' AND id %% 50 = 0
        """,
    ),
]


def history_seed(*, messages: int) -> None:
    """Exchanges over the last HISTORY_DAYS days until the database holds about `messages`."""
    exchanges = int((messages - Message.objects.count()) / MESSAGES_PER_EXCHANGE)
    if exchanges <= 0:
        return
    if not KnowledgeArticle.objects.exists():
        KnowledgeArticle.objects.bulk_create(
            KnowledgeArticle(title=f"Shipping to zone {n}", body="5-8 working days.") for n in range(ARTICLES)
        )
    params = {
        "before": Message.objects.aggregate(last=Max("pk"))["last"] or 0,
        "first_conversation": Conversation.objects.aggregate(first=Min("pk"))["first"],
        "conversations": Conversation.objects.count(),
        "first_article": KnowledgeArticle.objects.aggregate(first=Min("pk"))["first"],
        "articles": KnowledgeArticle.objects.count(),
        "exchanges": exchanges,
        "days": HISTORY_DAYS,
        "failure_codes": FAILURE_CODES,
        "failure_code_count": len(FAILURE_CODES),
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.42)")
        for label, sql in HISTORY_SQL:
            started = time.perf_counter()
            cursor.execute(sql, params)
            print(f"  {cursor.rowcount:>9,} {label} ({time.perf_counter() - started:.0f} s)", flush=True)
    analyze()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1_000_000)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    print(f"Seeding {CONVERSATIONS:,} conversations", flush=True)
    conversations_seed(CONVERSATIONS)
    print(f"Seeding exchanges up to {args.messages:,} messages", flush=True)
    history_seed(messages=args.messages)
    client = moderator_client()
    print(
        f"{Conversation.objects.count():,} conversations, {Message.objects.count():,} messages; "
        f"dashboard, {RUNS} warm requests",
        flush=True,
    )
    # DEBUG records the queries; the test client's host must be allowed. Without a cache every
    # request counts all the days, as the first view of a day does.
    for label, caches in [
        ("settled days cached", settings.CACHES),
        ("no cache, every day counted", NO_CACHE),
    ]:
        with override_settings(DEBUG=True, ALLOWED_HOSTS=["testserver"], CACHES=caches):
            timing = timed(client, reverse("admin-dashboard"))
        runs = ", ".join(f"{t:.0f}" for t in timing.milliseconds)
        print(
            f"{label}: p50 {timing.p50:.1f} ms, p95 {timing.p95:.1f} ms (runs: {runs}); queries of the last:"
        )
        for milliseconds, sql in timing.queries:
            print(f"  {milliseconds:7.1f} ms  {' '.join(sql.split())[:140]}")


if __name__ == "__main__":
    main()
