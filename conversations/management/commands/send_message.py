"""manage.py send_message RECIPIENT_ID TEXT [--page PAGE_ID]: write to a person as a Page, from a shell."""

from django.core.management.base import CommandError, CommandParser

from conversations.apis.send import MessageSendInputSerializer
from conversations.management.base import Need, ServiceCommand
from conversations.pages import PageChoiceError
from conversations.services.staff import staff_message_send
from messenger.errors import DeliveryError


class Command(ServiceCommand):
    # Not Redis: a message is sent without it (the new contact's profile is fetched later).
    needs = (Need.PAGE_TOKEN, Need.DATABASE)
    help = (
        "Send TEXT to the person with page-scoped ID RECIPIENT_ID, store it as a staff message and "
        "print Messenger's message id. --page PAGE_ID: as which Page, needed when several are connected. "
        "Fails (exit 1, one line on stderr) if it was not delivered."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("recipient_id", help="the person's PSID (digits)")
        parser.add_argument("text", help="the message; long texts are sent as several messages")
        parser.add_argument("--page", metavar="PAGE_ID", help="the Page to send as (manage.py pages list)")

    def handle(
        self, *args: object, recipient_id: str, text: str, page: str | None, **options: object
    ) -> None:
        # The API's own validation, so the command and the endpoint accept the same input.
        data = {"recipient_id": recipient_id, "text": text, **({"page_id": page} if page is not None else {})}
        serializer = MessageSendInputSerializer(data=data)
        if not serializer.is_valid():
            raise CommandError(
                "; ".join(
                    f"{field}: {' '.join(map(str, errors))}" for field, errors in serializer.errors.items()
                )
            )
        try:
            messages = staff_message_send(
                psid=serializer.validated_data["recipient_id"],
                text=serializer.validated_data["text"],
                page_id=serializer.validated_data.get("page_id"),
            )
        except PageChoiceError as error:
            raise CommandError(f"--page: {error}") from None
        except DeliveryError as error:
            raise CommandError(f"Not delivered: {error.reason}") from error
        self.stdout.write(messages[0].external_id)
