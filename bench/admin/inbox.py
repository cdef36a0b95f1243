"""How fast the admin's conversation list is with 100,000 conversations.

Seeds the database named by DATABASE_URL (use a scratch one: it adds 100,000 contacts and
300,000 messages unless they are there already), then times the list page as a moderator
sees it: plain, searched by PSID, by name, by message text and by both, filtered to failures.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_inbox \\
        .venv/bin/python bench/admin/inbox.py [--conversations 100000]
"""
import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, reset_queries  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from conversations.models import ChannelIdentity, Contact, Conversation, Message  # noqa: E402

BATCH = 5_000
RUNS = 7


def seed(total: int) -> None:
    have = Conversation.objects.count()
    now = timezone.now()
    for start in range(have, total, BATCH):
        numbers = range(start, min(start + BATCH, total))
        contacts = Contact.objects.bulk_create(Contact(name=f"Person {n}") for n in numbers)
        identities = ChannelIdentity.objects.bulk_create(
            ChannelIdentity(contact=c, page_id="1001", external_id=f"{9 * 10**15 + n}") for c, n in zip(contacts, numbers)
        )
        conversations = Conversation.objects.bulk_create(
            Conversation(identity=i, last_activity_at=now - timedelta(minutes=n), last_message_text=f"Thanks {n}")
            for i, n in zip(identities, numbers)
        )
        Message.objects.bulk_create(
            Message(conversation=c, role=role, status=status, text=f"{text} {n}", created_at=now - timedelta(minutes=n))
            for c, n in zip(conversations, numbers)
            for role, status, text in [
                ("client", "answered", "Do you ship order"),
                ("ai", "failed" if n % 500 == 0 else "sent", "We ship order"),
                ("client", "received" if n % 7 == 0 else "answered", "Thanks"),
            ]
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def timed(client: Client, url: str, params: dict) -> tuple[float, int]:
    timings = []
    for _ in range(RUNS):
        reset_queries()
        started = time.perf_counter()
        response = client.get(url, params)
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
    return statistics.median(timings) * 1000, len(connection.queries)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=100_000)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    seed(args.conversations)
    user, _ = get_user_model().objects.get_or_create(username="bench-moderator", defaults={"is_staff": True})
    user.groups.add(Group.objects.get(name="Moderators"))
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    url = "/admin/conversations/conversation/"
    print(f"{Conversation.objects.count()} conversations, {Message.objects.count()} messages; median of {RUNS}")
    # DEBUG records the queries; the test client's host must be allowed.
    with override_settings(DEBUG=True, ALLOWED_HOSTS=["testserver"]):
        for label, params in [
            ("list, newest first", {}),
            ("search PSID", {"q": f"{9 * 10**15 + 4242}"}),
            ("search name", {"q": "Person 4242"}),
            ("search message text", {"q": "ship order 4242"}),
            ("search name + message", {"q": "Person 4242 ship"}),
            # Matches every conversation: the page's count of them is the cost.
            ("search common word", {"q": "order"}),
            ("filter failed", {"failed": "yes"}),
            ("filter unanswered", {"unanswered": "yes"}),
            ("filter paused", {"bot": "paused"}),
        ]:
            milliseconds, queries = timed(client, url, params)
            print(f"{label:24} {milliseconds:8.1f} ms  {queries} queries")


if __name__ == "__main__":
    main()
