"""What the admin benchmarks share: Django set up on DATABASE_URL, 100,000 conversations seeded
once, a logged-in moderator, and timing a page with the queries it ran."""

import os
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Development settings: a benchmark needs no secrets (timing records queries under DEBUG anyway).
os.environ.setdefault("DEBUG", "true")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.db import connection, reset_queries  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from conversations.models import ChannelIdentity, Contact, Conversation, Message  # noqa: E402

BATCH = 5_000
RUNS = 7


@dataclass(frozen=True)
class Timing:
    milliseconds: list[float]
    # The last run's queries: (milliseconds, SQL).
    queries: list[tuple[float, str]]

    @property
    def p50(self) -> float:
        return statistics.median(self.milliseconds)

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.milliseconds, n=20, method="inclusive")[-1]


def conversations_seed(total: int) -> None:
    """`total` conversations with three messages each (a question, the answer, thanks), one a
    minute into the past, unless they are there already."""
    have = Conversation.objects.count()
    now = timezone.now()
    for start in range(have, total, BATCH):
        numbers = range(start, min(start + BATCH, total))
        contacts = Contact.objects.bulk_create(Contact(name=f"Person {n}") for n in numbers)
        identities = ChannelIdentity.objects.bulk_create(
            ChannelIdentity(contact=c, page_id="1001", external_id=f"{9 * 10**15 + n}")
            for c, n in zip(contacts, numbers, strict=False)
        )
        conversations = Conversation.objects.bulk_create(
            Conversation(
                identity=i, last_activity_at=now - timedelta(minutes=n), last_message_text=f"Thanks {n}"
            )
            for i, n in zip(identities, numbers, strict=False)
        )
        Message.objects.bulk_create(
            Message(
                conversation=c,
                role=role,
                status=status,
                text=f"{text} {n}",
                created_at=now - timedelta(minutes=n),
            )
            for c, n in zip(conversations, numbers, strict=False)
            for role, status, text in [
                ("client", "answered", "Do you ship order"),
                ("ai", "failed" if n % 500 == 0 else "sent", "We ship order"),
                ("client", "received" if n % 7 == 0 else "answered", "Thanks"),
            ]
        )
        print(f"  {min(start + BATCH, total):,} of {total:,} conversations", flush=True)
    analyze()


def analyze() -> None:
    # VACUUM too: index-only scans need the visibility map that autovacuum would build later.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def moderator_client() -> Client:
    user, _ = get_user_model().objects.get_or_create(username="bench-moderator", defaults={"is_staff": True})
    user.groups.add(Group.objects.get(name="Moderators"))
    client = Client()
    client.force_login(user)
    return client


def timed(client: Client, url: str, params: dict | None = None, runs: int = RUNS) -> Timing:
    """`runs` requests after a first, untimed one; call it under DEBUG so queries are recorded."""
    client.get(url, params or {})
    milliseconds = []
    for _ in range(runs):
        reset_queries()
        started = time.perf_counter()
        response = client.get(url, params or {})
        milliseconds.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    queries = [(float(query["time"]) * 1000, query["sql"]) for query in connection.queries]
    return Timing(milliseconds, queries)
