import pytest
from django.core.management import execute_from_command_line

from conversations.models import Message
from devtools.standins.graph import PAGE_ID
from tests.pages import environment_page_registered, page_connected

PSID = "2400000000000001"  # the PSID of the ada_conversation fixture


def send_message(*args: str) -> int:
    """Run the command as `manage.py` would; its exit status."""
    try:
        execute_from_command_line(["manage.py", "send_message", *args])
    except SystemExit as exit:
        return exit.code
    return 0


def test_prints_the_message_id_and_exits_0(graph, ada_conversation, capsys):
    assert send_message(PSID, "Your order shipped.") == 0

    message = ada_conversation.messages.get()
    assert capsys.readouterr().out.strip() == message.external_id
    assert (message.role, message.status, message.text) == ("staff", "sent", "Your order shipped.")
    assert [call["json"]["message"]["text"] for call in graph.calls(kind="message")] == [
        "Your order shipped."
    ]


@pytest.mark.parametrize(
    ("args", "script", "reason_part"),
    [
        ((PSID, "Hi"), {"status": 400, "code": 10, "subcode": 2018278}, "outside of allowed window"),
        ((PSID, "Hi"), {"status": 401, "code": 190}, "access token"),
        ((PSID, "Hi"), {"status": 500}, "retry your request later"),
        (("999", "Hi"), {"status": 400, "code": 100, "subcode": 2018001}, "No matching user found"),
        (("not-a-psid", "Hi"), None, "recipient_id: A PSID is a string of digits."),
        (("٢٤٠٠٠٠٠٠٠٠٠٠٠٠٠١", "Hi"), None, "recipient_id: A PSID is a string of digits."),
        ((PSID, "   "), None, "text: This field may not be blank."),
    ],
)
def test_failure_is_one_line_on_stderr_and_a_non_zero_exit(
    graph, ada_conversation, capsys, args, script, reason_part
):
    if script:
        graph.script([{"on": "message", **script}])

    assert send_message(*args) != 0

    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert reason_part in err
    assert "Traceback" not in err
    if not script:
        assert graph.calls() == []
        assert not ada_conversation.messages.exists()


def test_the_psid_sent_and_stored_is_the_one_checked(graph, db):
    # Spaces and a newline (a PSID pasted from a file) are trimmed, as the API trims them.
    assert send_message(" 555\n", "Your parcel is here") == 0

    assert [call["psid"] for call in graph.calls(kind="message")] == ["555"]
    assert Message.objects.get().conversation.identity.external_id == "555"


def test_with_several_pages_page_says_which_one(graph, db, redis_conn, settings, capsys):
    settings.FACEBOOK_PAGE_ID = PAGE_ID
    environment_page_registered(graph)
    page_connected(graph, token="EAAshop", page_id="2002", name="Shop Aarhus")

    assert send_message("555", "Hi") == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "CommandError: --page: 2 Pages are connected (2002, 104728561934527): say which one to send as."
    )
    assert send_message("555", "Hi", "--page", "2002") == 0
    [call] = graph.calls(kind="message")
    assert (call["token"], call["psid"]) == ("EAAshop", "555")
