"""manage.py chat: talk to the bot in a terminal (conversations.services.console)."""

import getpass
import logging
import sys

from django.core.management.base import CommandError, CommandParser

from conversations.llm import LLMError
from conversations.management.base import Need, ServiceCommand
from conversations.services.console import console_conversation_get_or_create, console_message_answer


class Command(ServiceCommand):
    # Redis: without it knowledge search fails, and the bot would answer as if it knew nothing.
    needs = (Need.GROQ_KEY, Need.DATABASE, Need.REDIS)
    help = (
        "Talk to the bot through the same prompt, knowledge and LLM as on Messenger. Interactive in a "
        "terminal (Ctrl-D or Ctrl-C to leave); piped, one reply per line of input. Stored under the "
        "console channel and shown in the admin."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--as", dest="name", default=None, help="whose console conversation (default: your login name)"
        )

    def handle(self, *args: object, name: str | None, verbosity: int, **options: object) -> None:
        if verbosity < 2:
            # The service's INFO lines (each HTTP request) would interleave with the conversation.
            logging.getLogger().setLevel(logging.WARNING)
        name = (name or _login_name()).strip()[:64] or "operator"
        conversation = console_conversation_get_or_create(name=name)
        interactive = sys.stdin.isatty()
        if interactive:
            self.stdout.write(
                f"Talking to the bot as {name} (conversation {conversation.pk} in the admin). "
                "Ctrl-D to leave."
            )
        failures = 0
        try:
            for text in _lines(interactive=interactive):
                failures += not self._answer(conversation=conversation, text=text, interactive=interactive)
        except KeyboardInterrupt:
            self.stdout.write("")
        if failures and not interactive:
            raise CommandError(f"{failures} message(s) got no answer.")

    def _answer(self, *, conversation, text: str, interactive: bool) -> bool:
        try:
            parts = console_message_answer(conversation=conversation, text=text)
        except LLMError as error:
            self.stderr.write(f"No answer: {error.reason}")
            return False
        answer = "\n".join(part.text for part in parts)
        self.stdout.write(f"bot> {answer}" if interactive else answer)
        return True


def _lines(*, interactive: bool):
    """Each non-blank line the operator writes, until end of input."""
    while True:
        try:
            line = input("you> ") if interactive else sys.stdin.readline()
        except EOFError:
            print()
            return
        if not interactive and not line:
            return
        if line.strip():
            yield line.strip()


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"
