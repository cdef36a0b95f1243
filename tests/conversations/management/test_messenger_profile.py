"""manage.py messenger_profile show | apply [FILE.json], against the Graph stand-in; the profile's checks."""

import json
import uuid

import pytest
from django.core.management import execute_from_command_line

from conversations import payloads
from conversations.models import Message
from conversations.services.inbound import inbound_events_store
from conversations.services.replies import reply_produce
from devtools.processes import BASE_DIR
from devtools.standins.graph import PAGE_ID
from devtools.standins.server import closed_port_url
from devtools.webhook import postback
from messenger.parser import parse_webhook
from messenger.profile import (
    ProfileError,
    messenger_profile_build,
    messenger_profile_parse,
    messenger_profile_validate,
)
from tests.pages import environment_page_registered, page_connected

# The command finds the Page to speak for in the database.
pytestmark = pytest.mark.django_db
EXAMPLE = BASE_DIR / "docs" / "messenger_profile.example.json"
GREETING = "Hi {{user_first_name}}! Ask us anything."
QUESTIONS = ["Do you ship abroad?", "Where is my order?", "Can I pay by invoice?"]
MENU = {
    "locale": "default",
    "composer_input_disabled": False,
    "call_to_actions": [
        {"type": "postback", "title": "Talk to a person", "payload": "HUMAN_AGENT"},
        {"type": "postback", "title": "Delete my data", "payload": "DELETE_MY_DATA"},
    ],
}


def messenger_profile(*args: str) -> int:
    """Run the command as `manage.py` would; its exit status."""
    try:
        execute_from_command_line(["manage.py", "messenger_profile", *args])
    except SystemExit as exit:
        return exit.code
    return 0


def profile_file(tmp_path, content: bytes | dict) -> str:
    path = tmp_path / "profile.json"
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    return str(path)


def posted(graph) -> list[dict]:
    return [call["json"] for call in graph.calls(kind="messenger_profile_set")]


def one_error_line(capsys) -> str:
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    [line] = err.strip().splitlines()
    return line


def ice_breakers(count: int) -> list[dict]:
    questions = [{"question": f"Question {number}?", "payload": f"Q{number}"} for number in range(count)]
    return [{"locale": "default", "call_to_actions": questions}]


# --- apply ----------------------------------------------------------------------------------


def test_apply_from_settings_sends_get_started_greeting_ice_breakers_and_the_menu(graph, settings, capsys):
    settings.MESSENGER_GREETING = GREETING
    settings.MESSENGER_ICE_BREAKERS = json.dumps(QUESTIONS)

    assert messenger_profile("apply") == 0

    [call] = graph.calls(kind="messenger_profile_set")
    assert call["headers"]["authorization"] == "Bearer test-page-token"
    assert call["json"] == {
        "get_started": {"payload": "GET_STARTED"},
        "greeting": [{"locale": "default", "text": GREETING}],
        "ice_breakers": [
            {
                "call_to_actions": [{"question": question, "payload": question} for question in QUESTIONS],
                "locale": "default",
            }
        ],
        "persistent_menu": [MENU],
    }
    assert capsys.readouterr().out == (
        "Applied: get started (GET_STARTED), greeting, 3 ice breakers, persistent menu (2 items)\n"
    )


def test_the_menu_sends_the_payloads_the_service_answers(graph):
    assert messenger_profile("apply") == 0

    [profile] = posted(graph)
    sent = [item["payload"] for item in profile["persistent_menu"][0]["call_to_actions"]]
    assert sent == [payloads.HUMAN_AGENT, payloads.DELETE_MY_DATA]


def test_apply_from_default_settings_leaves_the_get_started_button_visible(graph, capsys):
    # Ice breakers set through the API take the Get Started button's place on the welcome screen.
    assert messenger_profile("apply") == 0

    [profile] = posted(graph)
    assert "ice_breakers" not in profile
    assert profile["greeting"][0]["text"].startswith("Hi {{user_first_name}}!")
    assert (
        capsys.readouterr().out == "Applied: get started (GET_STARTED), greeting, persistent menu (2 items)\n"
    )


def test_a_blank_greeting_sends_none(graph, settings):
    settings.MESSENGER_GREETING = "   "

    assert messenger_profile("apply") == 0

    assert set(posted(graph)[0]) == {"get_started", "persistent_menu"}


def test_apply_from_a_file_sends_it_as_written_and_show_prints_it(graph, capsys):
    assert messenger_profile("apply", str(EXAMPLE)) == 0
    assert capsys.readouterr().out == (
        "Applied: get started (GET_STARTED), greeting, 3 ice breakers, persistent menu (3 items)\n"
    )
    assert posted(graph) == [json.loads(EXAMPLE.read_text())]

    assert messenger_profile("show") == 0

    [get] = graph.calls(kind="messenger_profile_get")
    assert get["query"]["fields"] == "get_started,greeting,ice_breakers,persistent_menu"
    assert capsys.readouterr().out == (
        "Get started: GET_STARTED\n"
        "Greeting:\n"
        "  default: Hi {{user_first_name}}! Ask us about orders, delivery and returns; we answer right away.\n"
        "Ice breakers:\n"
        "  default:\n"
        "    Where is my order? → Where is my order?\n"
        "    Do you ship abroad? → Do you ship abroad?\n"
        "    How do I return something? → How do I return something?\n"
        "Persistent menu:\n"
        "  default:\n"
        "    Talk to a person → HUMAN_AGENT\n"
        "    Delete my data → DELETE_MY_DATA\n"
        "    Our shop → https://shop.example.com\n"
    )


def test_ice_breakers_in_metas_older_format_are_sent_as_written(graph, tmp_path, capsys):
    older = {"get_started": {"payload": "GET_STARTED"}, "ice_breakers": ice_breakers(4)[0]["call_to_actions"]}

    assert messenger_profile("apply", profile_file(tmp_path, older)) == 0

    assert capsys.readouterr().out == "Applied: get started (GET_STARTED), 4 ice breakers\n"
    assert posted(graph) == [older]


# --- show -----------------------------------------------------------------------------------


def test_show_says_what_is_not_set(graph, capsys):
    assert messenger_profile("show") == 0

    assert capsys.readouterr().out == (
        "Get started: not set\nGreeting: not set\nIce breakers: not set\nPersistent menu: not set\n"
    )


def test_show_reads_ice_breakers_set_in_metas_older_format(graph, capsys):
    older = {"ice_breakers": [{"question": "Are you open today?", "payload": "OPEN"}]}
    graph.script([{"on": "messenger_profile_get", "body": {"data": [older]}}])

    assert messenger_profile("show") == 0

    assert "Ice breakers:\n  default:\n    Are you open today? → OPEN\n" in capsys.readouterr().out


# --- refused before anything is sent -------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason_part"),
    [
        (b'\xff{"get_started": {"payload": "GET_STARTED"}}', "not UTF-8 text"),
        (b'{"get_started": ', "not JSON"),
        (b'[{"get_started": {"payload": "GET_STARTED"}}]', "a profile is a JSON object"),
        (b"{}", "the profile is empty"),
        (
            {"get_started": {"payload": "GET_STARTED"}, "ice_breakers": ice_breakers(5)},
            "5 questions; Meta allows at most 4",
        ),
        (
            {
                "get_started": {"payload": "GET_STARTED"},
                "ice_breakers": ice_breakers(5)[0]["call_to_actions"],
            },
            "5 questions; Meta allows at most 4",
        ),
        ({"greeting": [{"locale": "default", "text": "x" * 161}]}, "161 characters; Meta allows at most 160"),
        ({"persistent_menu": [MENU]}, "a persistent_menu needs get_started"),
        (
            {"greeting": [{"locale": "en_US", "text": "Hi!"}]},
            'greeting needs an entry with "locale": "default"',
        ),
        (
            {"get_started": {"payload": "GET_STARTED"}, "whitelisted_domains": []},
            "unknown field 'whitelisted_domains'",
        ),
    ],
)
def test_a_profile_meta_would_refuse_is_one_line_and_nothing_is_sent(
    graph, tmp_path, capsys, content, reason_part
):
    file = profile_file(tmp_path, content)

    assert messenger_profile("apply", file) == 1

    line = one_error_line(capsys)
    assert line.startswith(f"CommandError: {file}: ")
    assert reason_part in line
    assert line.endswith("Nothing was sent.")
    assert graph.calls() == []


@pytest.mark.parametrize(
    ("name", "reason_part"), [("missing.json", "No such file or directory"), (".", "Is a directory")]
)
def test_a_file_that_cannot_be_read_is_one_line(graph, tmp_path, capsys, name, reason_part):
    assert messenger_profile("apply", str(tmp_path / name)) == 1

    assert reason_part in one_error_line(capsys)
    assert graph.calls() == []


@pytest.mark.parametrize(
    ("greeting", "questions", "reason_part"),
    [
        (
            GREETING,
            json.dumps(["One?", "Two?", "Three?", "Four?", "Five?"]),
            "5 questions; Meta allows at most 4",
        ),
        (GREETING, "Do you ship abroad?", "MESSENGER_ICE_BREAKERS must be a JSON list of questions"),
        (
            GREETING,
            '{"question": "Do you ship abroad?"}',
            "MESSENGER_ICE_BREAKERS must be a JSON list of questions",
        ),
        ("x" * 161, "[]", "161 characters; Meta allows at most 160"),
    ],
)
def test_settings_meta_would_refuse_are_one_line_and_nothing_is_sent(
    graph, settings, capsys, greeting, questions, reason_part
):
    settings.MESSENGER_GREETING, settings.MESSENGER_ICE_BREAKERS = greeting, questions

    assert messenger_profile("apply") == 1

    line = one_error_line(capsys)
    assert line.startswith("CommandError: settings: ")
    assert reason_part in line
    assert graph.calls() == []


# --- Graph refusing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "reason_part"),
    [
        ({"status": 400, "code": 190}, "Invalid OAuth access token"),
        ({"status": 400, "code": 100, "message": '(#100) Invalid keys "greeting"'}, "Invalid keys"),
        ({"status": 500}, "retry your request later"),
        ({"status": 200, "body": {"result": "failure"}}, "did not confirm the Messenger profile"),
    ],
)
def test_graph_refusing_the_profile_is_one_line(graph, capsys, script, reason_part):
    graph.script([{"on": "messenger_profile_set", **script}])

    assert messenger_profile("apply") == 1

    line = one_error_line(capsys)
    assert line.startswith("CommandError: Not applied: ")
    assert reason_part in line


def test_graph_refusing_to_show_is_one_line(graph, capsys):
    graph.script([{"on": "messenger_profile_get", "status": 400, "code": 190}])

    assert messenger_profile("show") == 1

    assert "Could not read the Messenger profile: Invalid OAuth access token" in one_error_line(capsys)


@pytest.mark.parametrize("args", [["show"], ["apply"]])
def test_graph_out_of_reach_is_one_line(settings, capsys, args):
    settings.FACEBOOK_GRAPH_API_URL = closed_port_url()

    assert messenger_profile(*args) == 1

    assert "Could not connect to the Facebook Graph API" in one_error_line(capsys)


# --- the checks themselves ------------------------------------------------------------------


def test_the_example_file_is_a_profile_meta_takes():
    profile = messenger_profile_parse(data=EXAMPLE.read_bytes())

    messenger_profile_validate(profile=profile)
    assert "{{user_first_name}}" in profile["greeting"][0]["text"]


def test_the_profile_from_settings_passes_its_own_checks():
    messenger_profile_validate(
        profile=messenger_profile_build(
            greeting=GREETING,
            ice_breakers=json.dumps(QUESTIONS + ["Four?"]),
            get_started_payload=payloads.GET_STARTED,
            menu=payloads.MENU,
        )
    )


@pytest.mark.parametrize(
    "profile",
    [
        {"get_started": {"payload": "GET_STARTED"}, "ice_breakers": ice_breakers(4)},
        {"greeting": [{"locale": "default", "text": "é" * 160}, {"locale": "de_DE", "text": "Hallo!"}]},
        {"get_started": {"payload": "GET_STARTED"}},
    ],
)
def test_profiles_at_metas_limits_pass(profile):
    messenger_profile_validate(profile=profile)


def menu_with(item: dict) -> dict:
    return {
        "get_started": {"payload": "GET_STARTED"},
        "persistent_menu": [{"locale": "default", "call_to_actions": [item]}],
    }


@pytest.mark.parametrize(
    ("profile", "reason_part"),
    [
        (
            menu_with({"type": "postback", "title": "Talk to a person"}),
            "'Talk to a person': payload must be a non-empty text",
        ),
        (
            menu_with({"type": "web_url", "title": "Shop", "payload": "SHOP"}),
            "'Shop': url must be a non-empty text",
        ),
        (menu_with({"type": "nested", "title": "More"}), "a menu item is one of postback, web_url"),
        (
            menu_with({"type": "postback", "title": "x" * 31, "payload": "X"}),
            "31 characters; Meta allows at most 30",
        ),
        ({"get_started": {"payload": "  "}}, "get_started: payload must be a non-empty text"),
        (
            {"ice_breakers": [{"locale": "default", "call_to_actions": [{"question": "Open?"}]}]},
            "payload must be",
        ),
        ({"greeting": {"locale": "default", "text": "Hi"}}, "greeting must be a non-empty list"),
    ],
)
def test_profiles_meta_would_refuse_name_the_problem(profile, reason_part):
    with pytest.raises(ProfileError) as raised:
        messenger_profile_validate(profile=profile)

    assert reason_part in str(raised.value)
    assert "\n" not in str(raised.value)


# --- the Get Started tap --------------------------------------------------------------------


@pytest.mark.django_db
def test_tapping_get_started_is_answered_by_the_bot(graph, groq, redis_conn):
    psid = "7395028461739202"
    inbound_events_store(
        events=parse_webhook(
            postback(mid=f"m_{uuid.uuid4().hex}", title="Get Started", payload="GET_STARTED", psid=psid)
        )
    )

    reply_produce(message_id=Message.objects.get(role=Message.Role.CLIENT).pk, final_attempt=True)

    [llm_call] = groq.calls()
    assert "Get Started" in llm_call["prompt"]
    [sent] = [call["json"]["message"]["text"] for call in graph.calls(kind="message")]
    assert sent == Message.objects.get(role=Message.Role.AI).text


def test_with_several_pages_page_says_whose_profile(graph, redis_conn, settings, capsys):
    settings.FACEBOOK_PAGE_ID = PAGE_ID
    environment_page_registered(graph)
    page_connected(graph, token="EAAshop", page_id="2002", name="Shop Aarhus")

    assert messenger_profile("show") == 1
    assert capsys.readouterr().err.splitlines()[-1].startswith("CommandError: --page: 2 Pages are connected")
    assert messenger_profile("apply", "--page", "2002") == 0
    [call] = graph.calls(kind="messenger_profile_set")
    assert call["token"] == "EAAshop"
