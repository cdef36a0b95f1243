"""manage.py messenger_profile show | apply [FILE.json] [--page PAGE_ID]: a Page's welcome screen and
menu in Messenger."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from conversations import payloads
from conversations.management.base import Need, ServiceCommand
from conversations.pages import PageChoiceError, page_for_sending
from messenger.errors import DeliveryError, InvalidTokenError
from messenger.graph import GraphClient
from messenger.profile import (
    ProfileError,
    messenger_profile_build,
    messenger_profile_describe,
    messenger_profile_parse,
    messenger_profile_summarize,
    messenger_profile_validate,
)


class Command(ServiceCommand):
    needs = (Need.PAGE_TOKEN, Need.DATABASE)
    help = (
        "Show the Page's Messenger profile (get started, greeting, ice breakers, persistent menu), or "
        "apply one from FILE.json (Meta's format) or, without a file, from MESSENGER_GREETING and "
        "MESSENGER_ICE_BREAKERS with the menu 'Talk to a person' and 'Delete my data'. "
        "A profile is checked before it is sent; any error is one line on stderr and exit 1. "
        "--page PAGE_ID says which Page, needed when several are connected."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="show|apply")
        show = actions.add_parser("show", help="print the profile the Page has now")
        apply = actions.add_parser("apply", help="set the profile from FILE.json, else from settings")
        apply.add_argument("file", nargs="?", metavar="FILE.json", help="a profile in Meta's JSON format")
        for action in (show, apply):
            action.add_argument(
                "--page", metavar="PAGE_ID", help="the Page (manage.py pages list); needed when several are"
            )

    def handle(self, *args: object, action: str, page: str | None, **options: Any) -> None:
        try:
            client = page_for_sending(page_id=page).graph_client()
        except PageChoiceError as error:
            raise CommandError(f"--page: {error}") from None
        except InvalidTokenError as error:  # a stored token no key decrypts
            raise CommandError(error.reason) from None
        if action == "show":
            self._show(client=client)
        else:
            self._apply(client=client, file=options["file"])

    def _show(self, *, client: GraphClient) -> None:
        try:
            profile = client.messenger_profile_get()
        except DeliveryError as error:
            raise CommandError(f"Could not read the Messenger profile: {error.reason}") from error
        self.stdout.write("\n".join(messenger_profile_describe(profile=profile)))

    def _apply(self, *, client: GraphClient, file: str | None) -> None:
        try:
            profile = _profile_load(file=file)
            messenger_profile_validate(profile=profile)
        except ProfileError as error:
            raise CommandError(f"{file or 'settings'}: {error}. Nothing was sent.") from error
        try:
            client.messenger_profile_set(profile=profile)
        except DeliveryError as error:
            raise CommandError(f"Not applied: {error.reason}") from error
        self.stdout.write(f"Applied: {messenger_profile_summarize(profile=profile)}")


def _profile_load(*, file: str | None) -> dict[str, Any]:
    """The profile in `file`, or the one settings describe when there is none."""
    if file is None:
        return messenger_profile_build(
            greeting=settings.MESSENGER_GREETING,
            ice_breakers=settings.MESSENGER_ICE_BREAKERS,
            get_started_payload=payloads.GET_STARTED,
            menu=payloads.MENU,
        )
    try:
        data = Path(file).read_bytes()
    except OSError as error:
        raise ProfileError(error.strerror or type(error).__name__) from error
    return messenger_profile_parse(data=data)
