"""manage.py chat, run as an operator runs it: piped and in a terminal, through the Groq stand-in."""

import os
import pty
import select
import signal
import subprocess
import sys
import time

import pytest

from conversations.models import ChannelIdentity, Message, UnansweredQuestion
from devtools.processes import BASE_DIR
from tests.processes import process_environment

pytestmark = pytest.mark.django_db(transaction=True)


def chat(groq_url: str, *, stdin: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "chat", "--as", "ops"],
        cwd=BASE_DIR,
        env=process_environment(GROQ_BASE_URL=groq_url, **env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_piped_lines_get_one_answer_each_stored_under_the_console_channel(groq_service_standin):
    groq_service_standin.reset()
    groq_service_standin.script([{"text": "Monday to Friday, 10-18."}, {"text": "Yes, we do!"}])

    result = chat(groq_service_standin.url, stdin="What are your opening hours?\n\nDo you ship to Norway?\n")

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "Monday to Friday, 10-18.\nYes, we do!\n"
    conversation = ChannelIdentity.objects.get(channel="console", external_id="ops").conversation
    assert [(m.role, m.status) for m in conversation.messages.order_by("id")] == [
        ("client", "answered"),
        ("ai", "sent"),
        ("client", "answered"),
        ("ai", "sent"),
    ]
    # Answered like a Messenger message: the second prompt holds the first exchange.
    assert "user: What are your opening hours?" in groq_service_standin.calls()[1]["prompt"]
    assert UnansweredQuestion.objects.count() == 2  # there are no articles yet


def test_an_llm_failure_is_one_line_and_the_message_is_marked_failed(groq_service_standin):
    groq_service_standin.reset()
    groq_service_standin.script([{"status": 401}, {"text": "Yes, still here."}])

    result = chat(groq_service_standin.url, stdin="hello?\nstill there?\n")

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "No answer: Groq answered HTTP 401: Invalid API Key",
        "CommandError: 1 message(s) got no answer.",
    ]
    assert result.stdout == "Yes, still here.\n"
    failed = Message.objects.get(status=Message.Status.FAILED)
    assert (failed.text, failed.error_code) == ("hello?", "llm:401")


@pytest.mark.parametrize("leave", ["ctrl-d", "ctrl-c"])
def test_in_a_terminal_it_prompts_answers_and_leaves_cleanly(groq_service_standin, leave):
    groq_service_standin.reset()
    groq_service_standin.script(default={"text": "Yes, we do!"})
    master, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "chat", "--as", "ops"],
        cwd=BASE_DIR,
        env=process_environment(GROQ_BASE_URL=groq_service_standin.url),
        # A terminal is all three (Python's input() writes its prompt to either).
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    screen = _read_until(master, "you> ")
    assert "Talking to the bot as ops" in screen and "Ctrl-D to leave" in screen

    os.write(master, b"Do you ship to Norway?\n")
    assert "bot> Yes, we do!" in _read_until(master, "you> ")
    if leave == "ctrl-d":
        os.write(master, b"\x04")
    else:
        # As a person would, a moment after the prompt: a signal in the microseconds between
        # the prompt's write and the read that follows waits for the next line (CPython).
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)

    assert process.wait(timeout=20) == 0
    assert "Traceback" not in _read_rest(master)
    os.close(master)


def _read_rest(fd: int) -> str:
    rest = ""
    while select.select([fd], [], [], 0.2)[0]:
        try:
            rest += os.read(fd, 4096).decode(errors="replace")
        except OSError:  # the other end has closed
            break
    return rest


def _read_until(fd: int, marker: str, timeout: float = 20) -> str:
    screen, deadline = "", time.monotonic() + timeout
    while marker not in screen:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {marker!r} in {screen!r}")
        if select.select([fd], [], [], 0.5)[0]:
            screen += os.read(fd, 4096).decode(errors="replace")
    return screen
