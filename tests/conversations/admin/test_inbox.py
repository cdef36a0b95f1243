"""The staff inbox in the Django admin, as a moderator (staff, not superuser) uses it."""

from datetime import timedelta

import django_rq
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone
from rq import SimpleWorker
from rq.registry import FailedJobRegistry

from conversations.models import ChannelIdentity, Contact, Conversation, Handoff, Message, SystemPrompt

LIST_URL = reverse("admin:conversations_conversation_changelist")


def page_url(conversation: Conversation, action: str = "change", *args: object) -> str:
    return reverse(f"admin:conversations_conversation_{action}", args=[conversation.pk, *args])


@pytest.fixture
def moderator(db):
    user = get_user_model().objects.create_user("mod", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Moderators"))
    return user


@pytest.fixture
def moderator_client(client, moderator):
    client.force_login(moderator)
    return client


@pytest.fixture
def make_conversation(db):
    def make(name: str, psid: str, *messages: dict, active_minutes_ago: int = 0, **fields) -> Conversation:
        identity = ChannelIdentity.objects.create(
            contact=Contact.objects.create(name=name), page_id="1001", external_id=psid
        )
        conversation = Conversation.objects.create(
            identity=identity,
            last_activity_at=timezone.now() - timedelta(minutes=active_minutes_ago),
            last_message_text=messages[-1].get("text", "") if messages else "",
            **fields,
        )
        for message in messages:
            Message.objects.create(conversation=conversation, **message)
        return conversation

    return make


@pytest.fixture
def ada(make_conversation):
    return make_conversation(
        "Ada Lovelace",
        "2400000000000001",
        {"role": "client", "status": "answered", "text": "Do you ship to Lisbon?"},
        {
            "role": "ai",
            "status": "sent",
            "text": "Yes, in 3 days.",
            "sent_at": timezone.now(),
            "read_at": timezone.now(),
        },
        {"role": "client", "status": "received", "text": "And the price?"},
    )


@pytest.fixture
def grace(make_conversation):
    return make_conversation(
        "Grace Hopper",
        "2400000000000002",
        {"role": "client", "status": "failed", "text": "Opening hours?", "error_detail": "LLM down"},
        {
            "role": "ai",
            "status": "failed",
            "text": "We open at 9.",
            "error_detail": "(#551) This person isn't available right now.",
        },
        active_minutes_ago=30,
        bot_active=False,
    )


def notices(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_moderators_group_has_exactly_the_inbox_and_knowledge_permissions(db):
    permissions = Group.objects.get(name="Moderators").permissions.values_list(
        "content_type__app_label", "codename"
    )
    assert set(permissions) == {
        ("conversations", "view_conversation"),
        ("conversations", "change_conversation"),
        ("conversations", "view_message"),
        ("conversations", "send_message"),
        ("conversations", "view_contact"),
        ("conversations", "delete_contact"),
        ("conversations", "view_systemprompt"),
        ("conversations", "add_systemprompt"),
        ("conversations", "view_knowledgearticle"),
        ("conversations", "add_knowledgearticle"),
        ("conversations", "change_knowledgearticle"),
        ("conversations", "view_unansweredquestion"),
        ("conversations", "view_comment"),
        ("conversations", "change_unansweredquestion"),
        ("conversations", "delete_unansweredquestion"),
        ("django_rq", "admin"),
    }


def test_list_shows_contact_psid_preview_bot_state_and_flags_newest_first(moderator_client, ada, grace):
    response = moderator_client.get(LIST_URL)

    assert response.status_code == 200
    html = response.content.decode()
    for text in ["Ada Lovelace", "2400000000000001", "And the price?", "Grace Hopper", "Paused", "Active"]:
        assert text in html
    assert html.index("Ada Lovelace") < html.index("Grace Hopper")
    rows = {row.identity.contact.name: row for row in response.context["cl"].result_list}
    assert (rows["Ada Lovelace"].is_unanswered, rows["Ada Lovelace"].has_failures) == (True, False)
    assert (rows["Grace Hopper"].is_unanswered, rows["Grace Hopper"].has_failures) == (False, True)
    assert 'class="badge badge-failed"' in html and 'class="badge badge-unanswered"' in html


def test_the_waiting_list_says_how_long_each_has_waited_in_business_hours(
    moderator_client, make_conversation, ada, settings
):
    # Open half of every day: any 48 hours hold 24 of business time.
    settings.BUSINESS_HOURS = "daily 00:00-12:00"
    waiting = make_conversation(
        "Grace Hopper",
        "2400000000000002",
        waiting_for_staff_since=timezone.now() - timedelta(hours=48),
        handoff_reason="Wants a refund",
        bot_active=False,
    )

    response = moderator_client.get(LIST_URL + "?waiting=yes")

    assert [row.pk for row in response.context["cl"].result_list] == [waiting.pk]
    html = response.content.decode()
    assert "Waited (business hours)" in html
    assert '<td class="field-waited">1 d 0 h</td>' in html
    page = moderator_client.get(page_url(waiting)).content.decode()
    assert '(<span class="waited">1 d 0 h</span> in business hours): Wants a refund' in page
    # The whole inbox has no such column.
    assert "Waited (business hours)" not in moderator_client.get(LIST_URL).content.decode()


def test_the_summary_of_the_latest_handoff_is_at_the_top_of_the_conversation_page(moderator_client, ada):
    now = timezone.now()
    Handoff.objects.create(
        conversation=ada,
        trigger="model",
        reason="Old",
        summary="An old summary.",
        created_at=now - timedelta(days=3),
    )
    Handoff.objects.create(
        conversation=ada,
        trigger="person",
        reason="The person asked to talk to a person.",
        summary="Wants the price of shipping to <b>Lisbon</b>; the bot said 3 days.",
        created_at=now,
        alerted_at=now,
    )

    html = moderator_client.get(page_url(ada)).content.decode()

    summary = html.index("Wants the price of shipping to &lt;b&gt;Lisbon&lt;/b&gt;; the bot said 3 days.")
    assert html.index("Summary for staff") < summary < html.index("Do you ship to Lisbon?")
    assert "The person asked: The person asked to talk to a person." in html
    assert "An old summary." not in html


@pytest.mark.parametrize(
    ("alerted", "shown"),
    [(False, "Being written…"), (True, "No summary: the assistant could not write one in time.")],
)
def test_a_handoff_without_its_summary_says_why(moderator_client, ada, alerted, shown):
    Handoff.objects.create(
        conversation=ada, trigger="model", reason="Refund", alerted_at=timezone.now() if alerted else None
    )
    assert shown in moderator_client.get(page_url(ada)).content.decode()


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("lovelace", "Ada Lovelace"),
        ("2400000000000002", "Grace Hopper"),
        ("opening hours", "Grace Hopper"),
        ("Lisbon", "Ada Lovelace"),
    ],
)
def test_search_by_name_psid_and_message_text(moderator_client, ada, grace, query, found):
    response = moderator_client.get(LIST_URL, {"q": query})
    assert [row.identity.contact.name for row in response.context["cl"].result_list] == [found]


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("LOVE", ["Ada Lovelace"]),  # a name fragment, any case
        ("lisBON", ["Ada Lovelace"]),  # a message fragment, any case
        ("o", ["Ada Lovelace", "Grace Hopper"]),  # in names and in several messages: each once
        ('"opening HOURS"', ["Grace Hopper"]),  # a quoted phrase is one term
        ("ada Lisbon", ["Ada Lovelace"]),  # one word in the name, the other in a message
        ("ship days", []),  # as ever, the words a name lacks must be in one same message
        ("grace 2400000000000002", ["Grace Hopper"]),  # a word in the name and the PSID
        ("240000000000000", []),  # a PSID matches whole, not as a fragment
        ("Do you ship to Lisbon", ["Ada Lovelace"]),  # past SPLIT_TERMS_MAX words: the scan
        ("Ada nine", []),
    ],
)
def test_search_matches_fragments_in_any_case_once_each(moderator_client, ada, grace, query, found):
    response = moderator_client.get(LIST_URL, {"q": query})
    assert [row.identity.contact.name for row in response.context["cl"].result_list] == found


@pytest.mark.parametrize(
    ("params", "found"),
    [
        ({"bot": "paused"}, ["Grace Hopper"]),
        ({"bot": "active"}, ["Ada Lovelace"]),
        ({"failed": "yes"}, ["Grace Hopper"]),
        ({"unanswered": "yes"}, ["Ada Lovelace"]),
        ({"unanswered": "no"}, ["Grace Hopper"]),
    ],
)
def test_filters_by_bot_state_failures_and_unanswered(moderator_client, ada, grace, params, found):
    response = moderator_client.get(LIST_URL, params)
    assert [row.identity.contact.name for row in response.context["cl"].result_list] == found


@pytest.mark.parametrize("conversations", [3, 60])
def test_list_page_costs_the_same_queries_however_many_rows(
    moderator_client, make_conversation, django_assert_max_num_queries, conversations
):
    for index in range(conversations):
        make_conversation(
            f"Person {index}",
            f"3{index:015d}",
            {"role": "client", "status": "failed", "text": f"Hello {index}"},
            {"role": "ai", "status": "sent", "text": "Hi!"},
        )
    # Session, user, the moderator's permissions (own + group's), the Pages the Page filter
    # offers, the paginator's count, how many wait for staff, and the page's rows with their
    # flags: nothing per row.
    with django_assert_max_num_queries(8):
        response = moderator_client.get(LIST_URL)
    assert len(response.context["cl"].result_list) == conversations


def test_search_costs_the_same_queries_however_many_rows_match(
    moderator_client, make_conversation, django_assert_max_num_queries
):
    for index in range(60):
        message = {"role": "client", "status": "received", "text": f"Order {index}"}
        make_conversation(f"Person {index}", f"3{index:015d}", message)
    # As the plain list: session, user, permissions (own + group's), the Pages, the counts and the page.
    with django_assert_max_num_queries(8):
        response = moderator_client.get(LIST_URL, {"q": "person order"})
    assert len(response.context["cl"].result_list) == 60


def test_conversation_page_queries_do_not_grow_with_the_transcript(
    moderator_client, moderator, make_conversation, django_assert_max_num_queries
):
    conversation = make_conversation(
        "Ada",
        "2400000000000001",
        *[{"role": "staff", "status": "sent", "text": f"#{n}", "sent_by": moderator} for n in range(50)],
    )
    # Session, user, conversation, permissions (own + group's), the transcript, the knowledge
    # its replies were given, the comments it started from, its handoffs, content types. The
    # last is cached per process once read: emptied here so the count is the same whatever ran
    # before in this process (under pytest-xdist, that depends on the scheduler).
    ContentType.objects.clear_cache()
    with django_assert_max_num_queries(10):
        response = moderator_client.get(page_url(conversation))
    assert response.content.decode().count("message message-staff") == 50


def test_conversation_page_is_the_whole_transcript_as_a_chat(moderator_client, make_conversation, moderator):
    now = timezone.now()
    conversation = make_conversation(
        "Ada Lovelace",
        "2400000000000001",
        {
            "role": "client",
            "status": "answered",
            "text": "Here is my receipt",
            "created_at": now - timedelta(minutes=5),
            "attachments": [
                {"type": "image", "url": "https://cdn.example/receipt.jpg"},
                {"type": "file", "url": "https://cdn.example/order.pdf", "title": "order.pdf"},
                {"type": "file", "url": "javascript:alert(1)"},
            ],
        },
        {
            "role": "ai",
            "status": "sent",
            "text": "Thanks, checking.",
            "created_at": now - timedelta(minutes=4),
            "sent_at": now,
            "delivered_at": now,
            "read_at": now,
        },
        {
            "role": "staff",
            "status": "sent",
            "text": "Refund done.",
            "created_at": now - timedelta(minutes=3),
            "sent_by": moderator,
            "sent_at": now,
        },
        {
            "role": "client",
            "status": "rate_limited",
            "text": "spam spam",
            "created_at": now - timedelta(minutes=2),
        },
        {
            "role": "system",
            "status": "failed",
            "text": "Sorry, I couldn't answer.",
            "created_at": now - timedelta(minutes=1),
            "error_detail": "(#10) This message is sent outside of allowed window.",
        },
    )

    response = moderator_client.get(page_url(conversation))

    assert response.status_code == 200
    html = response.content.decode()
    order = [
        html.index(text)
        for text in [
            "Here is my receipt",
            "Thanks, checking.",
            "Refund done.",
            "spam spam",
            "Sorry, I couldn&#x27;t answer.",
        ]
    ]
    assert order == sorted(order), "oldest first, newest at the bottom"
    for role in ["client", "ai", "staff", "system"]:
        assert f"message message-{role}" in html
    assert '<img src="https://cdn.example/receipt.jpg"' in html
    assert 'href="https://cdn.example/order.pdf"' in html and "order.pdf (file)" in html
    assert "javascript:" not in html
    assert "✓✓ Seen" in html and "✓ Sent" in html
    assert "Staff · mod" in html
    assert "Rate-limited" in html
    assert "Failed</strong>: (#10) This message is sent outside of allowed window." in html


def test_pause_and_resume_from_the_conversation_page(moderator_client, moderator, ada):
    response = moderator_client.post(page_url(ada, "bot"), {"bot": "pause"}, follow=True)
    ada.refresh_from_db()
    assert (ada.bot_active, ada.bot_paused_by) == (False, moderator)
    assert "Resume bot" in response.content.decode()

    moderator_client.post(page_url(ada, "bot"), {"bot": "resume"})
    ada.refresh_from_db()
    assert ada.bot_active and ada.bot_paused_by is None


def test_bulk_pause_and_resume(moderator_client, ada, grace):
    ids = [ada.pk, grace.pk]
    moderator_client.post(LIST_URL, {"action": "pause_bot", "_selected_action": ids})
    assert not Conversation.objects.filter(bot_active=True).exists()
    moderator_client.post(LIST_URL, {"action": "resume_bot", "_selected_action": ids})
    assert not Conversation.objects.filter(bot_active=False).exists()


@pytest.mark.parametrize("how", ["page", "bulk"])
def test_handing_back_after_a_handoff_asks_how_we_did(
    moderator_client, make_conversation, redis_conn, settings, django_capture_on_commit_callbacks, how
):
    settings.CSAT_ENABLED = True
    now = timezone.now()
    waiting = make_conversation(
        "Grace Hopper",
        "2400000000000002",
        bot_active=False,
        bot_paused_at=now,
        waiting_for_staff_since=now,
        person_last_wrote_at=now,
    )
    Handoff.objects.create(conversation=waiting, trigger="person", reason="x", created_at=now)

    with django_capture_on_commit_callbacks(execute=True):
        if how == "page":
            response = moderator_client.post(page_url(waiting, "bot"), {"bot": "resume"}, follow=True)
        else:
            response = moderator_client.post(
                LIST_URL, {"action": "resume_bot", "_selected_action": [waiting.pk]}, follow=True
            )

    assert notices(response) == [
        "Bot resumed: it answers this person's next message, and asks them how we did."
        if how == "page"
        else "Bot resumed in 1 conversation(s); 1 person(s) asked how we did."
    ]
    [question] = waiting.messages.all()
    assert (question.text, question.status) == ("How did we do?", "sending")
    assert [job.args for job in django_rq.get_queue().get_jobs()] == [(question.pk,)]


def test_reply_as_staff_is_sent_shown_and_pauses_the_bot(moderator_client, moderator, graph, ada):
    response = moderator_client.post(page_url(ada, "reply"), {"text": "A human here: 12 euros."}, follow=True)

    assert notices(response) == ["Reply sent."]
    [call] = graph.calls(kind="message")
    assert (call["psid"], call["json"]["message"]["text"]) == ("2400000000000001", "A human here: 12 euros.")
    assert "A human here: 12 euros." in response.content.decode()
    reply = ada.messages.get(role="staff")
    assert (reply.status, reply.sent_by) == ("sent", moderator)
    ada.refresh_from_db()
    assert not ada.bot_active


def test_reply_failure_is_an_admin_error_and_flagged_in_the_transcript(moderator_client, graph, ada):
    graph.script([{"on": "message", "status": 400, "code": 10, "subcode": 2018278}])

    response = moderator_client.post(page_url(ada, "reply"), {"text": "Still there?"}, follow=True)

    [notice] = notices(response)
    assert notice.startswith("Not delivered: (#10) This message is sent outside of allowed window.")
    assert ada.messages.get(role="staff").status == "failed"
    assert "Still there?" in response.content.decode()


def test_empty_reply_sends_nothing(moderator_client, graph, ada):
    response = moderator_client.post(page_url(ada, "reply"), {"text": "   "}, follow=True)
    assert notices(response) == ["The reply is empty: nothing was sent."]
    assert graph.calls() == []


def test_staff_without_the_permissions_cannot_act(client, graph, ada):
    client.force_login(get_user_model().objects.create_user("intern", is_staff=True))
    assert client.get(page_url(ada)).status_code == 403
    assert client.post(page_url(ada, "reply"), {"text": "Hi"}).status_code == 403
    assert client.post(page_url(ada, "bot"), {"bot": "pause"}).status_code == 403
    assert client.post(page_url(ada, "forget")).status_code == 403
    assert graph.calls() == []
    ada.refresh_from_db()
    assert ada.bot_active


def test_retry_a_failed_reply_queues_it_again(moderator_client, redis_conn, grace):
    grace.bot_active = True
    grace.save()
    failed_reply = grace.messages.get(role="ai")
    client_message = grace.messages.get(role="client")
    failed_reply.reply_to = client_message
    failed_reply.save()

    response = moderator_client.post(page_url(grace, "retry", failed_reply.pk), follow=True)

    assert notices(response) == ["Retry queued: the bot answers again shortly."]
    client_message.refresh_from_db()
    assert client_message.status == "received"
    assert django_rq.get_queue("default").get_job_ids() == [f"reply-{client_message.pk}"]


def test_retry_needs_the_bot_active(moderator_client, redis_conn, grace):
    failed_reply = grace.messages.get(role="ai")
    response = moderator_client.post(page_url(grace, "retry", failed_reply.pk), follow=True)
    assert notices(response) == ["The bot is paused: resume it first, then retry."]
    assert grace.messages.get(role="client").status == "failed"


def test_forget_contact_asks_then_deletes_them_and_all_their_messages(moderator_client, ada, grace):
    confirm = moderator_client.get(page_url(ada, "forget"))
    assert "all 3 messages" in confirm.content.decode()
    assert Contact.objects.filter(name="Ada Lovelace").exists()

    response = moderator_client.post(page_url(ada, "forget"), follow=True)

    assert notices(response) == ["Ada Lovelace and all their messages were deleted."]
    assert not Contact.objects.filter(name="Ada Lovelace").exists()
    assert not Message.objects.filter(conversation_id=ada.pk).exists()
    assert Message.objects.filter(conversation=grace).count() == 2


def test_system_prompt_edit_adds_a_version_and_keeps_history(moderator_client, moderator, settings):
    add_url = reverse("admin:conversations_systemprompt_add")
    # The form starts from the prompt in use: the settings' default until staff edit it.
    assert (
        moderator_client.get(add_url).context["adminform"].form.initial["text"] == settings.LLM_SYSTEM_PROMPT
    )

    moderator_client.post(add_url, {"text": "Be brief."})
    moderator_client.post(add_url, {"text": "Be brief and kind."})

    assert list(SystemPrompt.objects.values_list("text", "created_by")) == [
        ("Be brief and kind.", moderator.pk),
        ("Be brief.", moderator.pk),
    ]
    history = moderator_client.get(reverse("admin:conversations_systemprompt_changelist"))
    rows = list(history.context["cl"].result_list)
    assert [(row.text, row.in_use) for row in rows] == [("Be brief and kind.", True), ("Be brief.", False)]
    old = rows[1]
    moderator_client.post(
        reverse("admin:conversations_systemprompt_change", args=[old.pk]), {"text": "Hacked"}
    )
    old.refresh_from_db()
    assert old.text == "Be brief."


def test_rq_dashboard_is_linked_and_failed_jobs_can_be_requeued(moderator_client, redis_conn):
    queue = django_rq.get_queue("default")
    job = queue.enqueue("math.sqrt", -1)
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    assert job.id in FailedJobRegistry(queue=queue).get_job_ids()

    index = moderator_client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:django_rq_home") in index
    failed_page = moderator_client.get(reverse("admin:django_rq_failed_jobs", args=[0]))
    assert job.id in failed_page.content.decode()

    moderator_client.post(reverse("admin:django_rq_requeue_job", args=[0, job.id]))

    assert job.id in queue.get_job_ids()
    assert job.id not in FailedJobRegistry(queue=queue).get_job_ids()
