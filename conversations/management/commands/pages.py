"""manage.py pages connect | list | disconnect PAGE_ID | reencrypt: the Facebook Pages (and their
Instagram accounts) the service answers for."""

import getpass
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from conversations.management.base import Need, ServiceCommand
from conversations.models import Page
from conversations.services.pages import PageConnectError, page_connect, page_disconnect, pages_reencrypt


class Command(ServiceCommand):
    needs = (Need.DATABASE, Need.REDIS)
    help = (
        "connect: connect the Page a Page access token is for (the token from --token, else one line "
        "read from stdin, not echoed): subscribes the app to its webhooks and finds its Instagram "
        "account. list: one line per Page. disconnect PAGE_ID: stop answering a Page (its "
        "conversations stay). reencrypt: encrypt every token again with the newest key, after "
        "rotating SECRET_KEY or FIELD_ENCRYPTION_SALTS. Any error is one line on stderr and exit 1."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(
            dest="action", required=True, metavar="connect|list|disconnect|reencrypt"
        )
        connect = actions.add_parser("connect", help="connect the Page of a Page access token (again)")
        connect.add_argument(
            "--token",
            help="the Page access token; safer left out: it is then read from stdin, and not shown in "
            "the list of processes",
        )
        actions.add_parser("list", help="one line per Page: id, name, Instagram account, token state")
        disconnect = actions.add_parser("disconnect", help="stop answering a Page; its conversations stay")
        disconnect.add_argument("page_id", metavar="PAGE_ID")
        actions.add_parser("reencrypt", help="encrypt every stored token again with the newest key")

    def handle(self, *args: object, action: str, **options: Any) -> None:
        if action == "connect":
            self._connect(token=options["token"])
        elif action == "list":
            self._list()
        elif action == "disconnect":
            self._disconnect(page_id=options["page_id"])
        else:
            self._reencrypt()

    def _connect(self, *, token: str | None) -> None:
        if token is None:
            # Never echoed: the terminal does not show it, and nothing here prints it.
            token = getpass.getpass("Page access token: ") if sys.stdin.isatty() else sys.stdin.readline()
        try:
            page = page_connect(access_token=token)
        except PageConnectError as error:
            raise CommandError(error.reason) from None
        self.stdout.write(f"Connected {page.name} ({page.page_id})")
        if page.instagram_account_id:
            self.stdout.write(f"Instagram: @{page.instagram_username} ({page.instagram_account_id})")

    def _list(self) -> None:
        lines = [_page_line(page) for page in Page.objects.order_by("name", "page_id")]
        if settings.FACEBOOK_PAGE_ACCESS_TOKEN:
            which = settings.FACEBOOK_PAGE_ID or "every Page not connected here"
            lines.append(
                f"{which}  (FACEBOOK_PAGE_ACCESS_TOKEN)  Instagram: none  token: from the environment"
            )
        self.stdout.write("\n".join(lines) if lines else "No Page is connected: manage.py pages connect")

    def _disconnect(self, *, page_id: str) -> None:
        try:
            page = page_disconnect(page_id=page_id)
        except Page.DoesNotExist:
            raise CommandError(f"No Page {page_id} was ever connected (manage.py pages list).") from None
        self.stdout.write(f"Disconnected {page.name} ({page.page_id}): its conversations stay.")

    def _reencrypt(self) -> None:
        result = pages_reencrypt()
        if result.unreadable:
            names = ", ".join(str(page) for page in result.unreadable)
            raise CommandError(
                f"{result.rewritten} token(s) re-encrypted; the tokens of {names} cannot be decrypted with "
                "SECRET_KEY, SECRET_KEY_FALLBACKS and FIELD_ENCRYPTION_SALTS: restore the old key, or "
                "connect those Pages again."
            )
        self.stdout.write(f"Re-encrypted {result.rewritten} Page token(s) with the newest key.")


def _page_line(page: Page) -> str:
    instagram = (
        f"@{page.instagram_username} ({page.instagram_account_id})" if page.instagram_account_id else "none"
    )
    if page.disconnected_at is not None:
        state = f"disconnected {timezone.localtime(page.disconnected_at):%Y-%m-%d %H:%M}"
    else:
        state = page.get_token_state_display().lower()
        if page.token_checked_at is not None:
            state += f", checked {timezone.localtime(page.token_checked_at):%Y-%m-%d %H:%M}"
    return f"{page.page_id}  {page.name}  Instagram: {instagram}  token: {state}"
