"""What people sent, as staff see it on the conversation page: voice messages and images with
their transcript or description (or why they could not be read), quotes, edits and reactions; the
kept files served to staff who may read messages, and to nobody else."""

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from conversations.models import Message, MessageAttachment
from tests.conversations.admin.test_inbox import page_url

VOICE = b"\x00\x00\x00\x18ftypM4A hello"


@pytest.fixture
def conversation(make_conversation):
    return make_conversation("Ada Lovelace", "2400000000000001")


def client_message(conversation, **fields) -> Message:
    return Message.objects.create(conversation=conversation, role="client", status="answered", **fields)


def read_attachment(
    message, position=0, *, body=b"", content_type="audio/mp4", **fields
) -> MessageAttachment:
    attachment = MessageAttachment(message=message, position=position, content_type=content_type, **fields)
    if body:
        attachment.file.save("sent", ContentFile(body), save=False)
    attachment.save()
    return attachment


def media_url(attachment: MessageAttachment, conversation_id: int | None = None) -> str:
    return reverse(
        "admin:conversations_conversation_media",
        args=[conversation_id or attachment.message.conversation_id, attachment.pk],
    )


def test_the_page_shows_each_file_with_how_the_bot_read_it(moderator_client, conversation):
    message = client_message(
        conversation,
        attachments=[
            {"type": "audio", "url": "https://cdn.fbsbx.com/v.mp4"},
            {"type": "image", "url": "https://scontent.fbcdn.net/p.jpg"},
            {"type": "image", "url": "https://scontent.fbcdn.net/q.jpg"},
        ],
    )
    voice = read_attachment(
        message,
        body=VOICE,
        kind="audio",
        state="understood",
        text="Where is my parcel?",
        model="whisper-large-v3-turbo",
        latency_ms=412,
    )
    read_attachment(
        message,
        1,
        kind="image",
        state="unreadable",
        error_code="too_large",
        error_detail="The file has more than MEDIA_MAX_BYTES (25,000,000 bytes)",
    )
    read_attachment(
        message,
        2,
        kind="image",
        state="understood",
        text="A torn zip",
        model="vision",
        file_removed_at=timezone.now(),
    )

    html = moderator_client.get(page_url(conversation)).content.decode()

    assert f'<audio controls preload="none" src="{media_url(voice)}">' in html
    assert "Transcript:</strong> Where is my parcel?" in html and "whisper-large-v3-turbo · 412 ms" in html
    assert "Could not be read: The file has more than MEDIA_MAX_BYTES" in html
    assert "What it shows:</strong> A torn zip" in html and "File removed" in html
    assert 'src="https://scontent.fbcdn.net/q.jpg"' in html  # no kept file: Meta's link, as before


def test_quotes_edits_and_reactions_are_shown(moderator_client, conversation):
    answer = Message.objects.create(
        conversation=conversation, role="ai", status="sent", text="It ships on Monday.", reaction="❤"
    )
    client_message(
        conversation,
        text="Can it be Friday?",
        reply_to=answer,
        details={"edit": {"original_text": "Can it be Fridya?", "num_edit": 1, "edited_at": "2026-01-01"}},
    )

    html = moderator_client.get(page_url(conversation)).content.decode()

    assert "Replying to AI: “It ships on Monday.”" in html
    assert "<summary>Edited (1×)</summary>Originally: Can it be Fridya?" in html
    assert "Reacted ❤" in html


def test_staff_who_may_read_messages_get_the_file_served_safely(moderator_client, conversation):
    attachment = read_attachment(
        client_message(conversation), body=VOICE, kind="audio", content_type="audio/mp4"
    )

    response = moderator_client.get(media_url(attachment))

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == VOICE
    assert response["Content-Type"] == "audio/mp4"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]


def test_a_file_that_is_not_media_is_only_ever_a_download(moderator_client, conversation):
    attachment = read_attachment(
        client_message(conversation),
        body=b"<script>alert(1)</script>",
        kind="image",
        content_type="text/html",
    )

    response = moderator_client.get(media_url(attachment))

    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")


def test_without_the_permission_to_read_messages_no_file_is_served(client, db, conversation):
    attachment = read_attachment(client_message(conversation), body=VOICE, kind="audio")
    staff = get_user_model().objects.create_user("helper", password="pw", is_staff=True)
    client.force_login(staff)

    assert client.get(media_url(attachment)).status_code == 403
    client.logout()
    response = client.get(media_url(attachment))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_a_file_of_another_conversation_or_no_longer_kept_is_not_found(
    moderator_client, conversation, make_conversation
):
    other = make_conversation("Grace", "2400000000000002")
    attachment = read_attachment(client_message(conversation), body=VOICE, kind="audio")
    removed = read_attachment(client_message(conversation), kind="audio", file_removed_at=timezone.now())

    assert moderator_client.get(media_url(attachment, other.pk)).status_code == 404
    assert moderator_client.get(media_url(removed)).status_code == 404


@pytest.mark.parametrize("deleted", ["message", "conversation"])
def test_deleting_a_message_or_a_conversation_in_the_admin_deletes_its_files(
    client, conversation, django_capture_on_commit_callbacks, deleted
):
    attachment = read_attachment(client_message(conversation), body=VOICE, kind="audio")
    name = attachment.file.name
    client.force_login(get_user_model().objects.create_superuser("root", password="pw"))
    target = attachment.message if deleted == "message" else conversation

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse(f"admin:conversations_{deleted}_delete", args=[target.pk]), {"post": "yes"}
        )

    assert response.status_code == 302
    assert not default_storage.exists(name)
