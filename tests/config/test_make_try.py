"""`make try`: the bot with the Graph and Groq stand-ins, a Messenger user's lines piped in."""

import subprocess
import sys

import pytest

from devtools.processes import BASE_DIR

pytestmark = pytest.mark.e2e


def test_a_piped_message_gets_the_bots_reply_and_exits_0():
    result = subprocess.run(
        [sys.executable, "-m", "devtools.local", "try"],
        cwd=BASE_DIR,
        input="Do you ship to Norway?\n",
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert result.returncode == 0, result.stderr
    # Groq's stand-in echoes the person's words; the line is what Graph's stand-in was sent.
    assert result.stdout == "Echo: Do you ship to Norway?\n"
