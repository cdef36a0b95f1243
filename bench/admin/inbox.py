"""How fast the admin's conversation list is with 100,000 conversations.

Seeds the database named by DATABASE_URL (use a scratch one: it adds 100,000 contacts and
300,000 messages unless they are there already), then times the list page as a moderator
sees it: plain, searched by PSID, by name, by message text and by both, filtered to failures.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_inbox \\
        .venv/bin/python bench/admin/inbox.py [--conversations 100000]
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from django.core.management import call_command
from django.test.utils import override_settings

# Sets Django up before the models are imported.
from bench.admin.common import RUNS, conversations_seed, moderator_client, timed
from conversations.models import Conversation, Message


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=100_000)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    conversations_seed(args.conversations)
    client = moderator_client()
    url = "/admin/conversations/conversation/"
    print(
        f"{Conversation.objects.count()} conversations, {Message.objects.count()} messages; median of {RUNS}"
    )
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
            timing = timed(client, url, params)
            print(f"{label:24} {timing.p50:8.1f} ms  {len(timing.queries)} queries")


if __name__ == "__main__":
    main()
