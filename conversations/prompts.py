"""The one-string prompt the LLM gets, and text that cannot fake its sections:
<SYSTEM>, <KNOWLEDGE>, <HISTORY>, <CURRENT_USER_QUERY>.

Pure functions over messages and articles; nothing here reads the database.
"""

import re
from collections.abc import Iterable

from conversations.models import KnowledgeArticle, Message

SECTIONS = ("SYSTEM", "KNOWLEDGE", "HISTORY", "CURRENT_USER_QUERY")
NO_KNOWLEDGE = "No article of the business matches this message."
# Characters of text worth giving of an article cut to fit KNOWLEDGE_MAX_CHARS.
_KNOWLEDGE_MIN_CUT = 200
# Any spelling a model might read as one of our tags: any case, inner spaces, attributes.
_SECTION_TAG = re.compile(r"<(\s*/?\s*(?:{})\b[^<>]*)>".format("|".join(SECTIONS)), re.IGNORECASE)

ROLE_LABELS = {
    Message.Role.CLIENT: "user",
    Message.Role.AI: "assistant",
    Message.Role.STAFF: "staff",
    Message.Role.SYSTEM: "notice",
}
_ATTACHMENT_NAMES = {
    "image": "an image",
    "video": "a video",
    "audio": "a voice message",
    "file": "a file",
    "location": "a location",
    "sticker": "a sticker",
    "fallback": "a link",
    "template": "a card",
}
_SENDER_NAMES = {Message.Role.CLIENT: "the user", Message.Role.STAFF: "staff"}


def text_neutralise(text: str) -> str:
    """`text` with every section tag defused (`<SYSTEM>` becomes `‹SYSTEM›`): it cannot open or close one."""
    return _SECTION_TAG.sub(r"‹\1›", text)


def section_tags(text: str) -> list[str]:
    """The section tags in `text`, in any spelling text_neutralise defuses."""
    return [match.group(0) for match in _SECTION_TAG.finditer(text)]


def message_render(message: Message) -> str:
    """The message's text and a short description of each attachment, neutralised."""
    sender = _SENDER_NAMES.get(message.role, "the page")
    descriptions = [
        f"[{sender} sent {_attachment_name(attachment)}]" for attachment in message.attachments or []
    ]
    return text_neutralise("\n".join(filter(None, [message.text.strip(), *descriptions])))


def prompt_build(
    *,
    system_prompt: str,
    knowledge: Iterable[KnowledgeArticle],
    history: Iterable[Message],
    query: Iterable[Message],
    knowledge_max_chars: int,
    person_first_name: str = "",
) -> str:
    """The whole prompt: the system prompt (and the person's first name, when known), the
    articles best first, history oldest first (one labelled entry per message), then the
    query's messages."""
    history_lines = [_history_entry(message) for message in history]
    query_text = "\n\n".join(message_render(message) for message in query)
    system = system_prompt.strip()
    if person_first_name.strip():
        system += f"\n\nThe person's first name is {' '.join(person_first_name.split())}."
    return (
        f"<SYSTEM>\n{text_neutralise(system)}\n</SYSTEM>\n"
        f"<KNOWLEDGE>\n{_knowledge_text(knowledge, max_chars=knowledge_max_chars)}\n</KNOWLEDGE>\n"
        f"<HISTORY>\n{chr(10).join(filter(None, history_lines))}\n</HISTORY>\n"
        f"<CURRENT_USER_QUERY>\n{query_text}\n</CURRENT_USER_QUERY>"
    )


def _knowledge_text(articles: Iterable[KnowledgeArticle], *, max_chars: int) -> str:
    """Each article as `## <title>` and its text, best first, within `max_chars` in all.

    The article that does not fit is cut, unless too little of its text would be left.
    """
    entries, left = [], max_chars
    for article in articles:
        entry = text_neutralise(f"## {article.title.strip()}\n{article.body.strip()}")
        if len(entry) > left:
            if left < len(article.title) + _KNOWLEDGE_MIN_CUT:
                break
            entry = entry[: left - 1].rstrip() + "…"
        entries.append(entry)
        left -= len(entry) + 2  # and the blank line before the next one
    return "\n\n".join(entries) or NO_KNOWLEDGE


def _history_entry(message: Message) -> str:
    text = message_render(message)
    if not text:
        return ""
    # Continuation lines are indented so a line of user text cannot pose as another entry.
    return f"{ROLE_LABELS.get(message.role, message.role)}: " + text.replace("\n", "\n  ")


def _attachment_name(attachment: object) -> str:
    kind = attachment.get("type") if isinstance(attachment, dict) else None
    if isinstance(attachment, dict) and attachment.get("sticker_id"):
        kind = "sticker"
    return _ATTACHMENT_NAMES.get(kind, "an attachment")
